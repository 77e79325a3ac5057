//! The exec-time hot path: from a vCPU index (and segment 0 of the shard array, which
//! QEMU's userdata carries) to `&mut` that vCPU's shard, with the shard created on the
//! cold path when the vCPU has none yet. Every access is bracketed by [`Slot::enter`], so
//! that QEMU's exit, if a device runs it on another vCPU's thread while this one
//! executes, waits for the callback instead of taking the shard from under it.

use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::shards::First;
use super::slot::Slot;
use super::vcpu::Vcpu;
use crate::VCPUIndex;
use crate::callbacks::failure;
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::Result;

/// Runs `f` on vCPU `index`'s shard from an exec-time callback (block, instruction,
/// memory), given segment 0 of the runtime's shard array, creating the shard first if
/// this vCPU has none yet. No lock, no atomic read-modify-write. A panic in `f` is caught
/// and reported as `Hook::Exec`'s. Once QEMU's exit has closed the slot, `f` does not
/// run: the event comes after the final report.
///
/// Only the common case is inlined into the trampoline (index below
/// [`FIRST`](super::shards::FIRST), a constant; shard present); everything else is in the
/// cold [`on_shard_slow`], which catches its own panics and so cannot unwind: the
/// trampoline reaches it by a tail jump and needs no stack frame.
#[inline(always)]
pub(crate) fn on_shard<P: PerVcpu, const FENCED: bool>(
    first: &'static First<Slot<P>>,
    index: VCPUIndex,
    f: impl FnOnce(&mut Vcpu<P>),
) {
    // `_entered` (the busy mark) lives until the closure has returned.
    if let Some(slot) = first.get(index as usize)
        && let Some((_entered, vcpu)) = slot.enter_exec::<FENCED>()
    {
        return guard(Hook::Exec, (), || {
            f(vcpu);
            Ok(())
        });
    }
    on_shard_slow(first, index, f)
}

/// The rest of [`on_shard`]: a vCPU index past segment 0, or a shard to create.
///
/// `extern "C"` only to tell the compiler that nothing unwinds out of it (its `guard`
/// catches every panic), so that the trampoline can jump to it instead of calling it
/// under a landing pad; it is never called from C.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)]
extern "C" fn on_shard_slow<P: PerVcpu, F: FnOnce(&mut Vcpu<P>)>(
    first: &'static First<Slot<P>>,
    index: VCPUIndex,
    f: F,
) {
    guard(Hook::Exec, (), || {
        let rt = Runtime::of_first(first)?;
        // No shard is created after a reported failure: a failing `new_shard` would
        // otherwise run again at every event until QEMU's uninstall takes effect.
        // SAFETY: QEMU runs exec-time callbacks of vCPU `index` on its thread, one at a
        // time.
        unsafe {
            on_entered_shard(
                rt,
                index,
                || !failure::stopped(true),
                |vcpu| {
                    f(vcpu);
                    Ok(())
                },
            )
        }
    })
}

/// Enters vCPU `index`'s slot of `rt` and runs `f` on its shard, creating the shard
/// first if the vCPU has none and `may_create()` says so. Does nothing once QEMU's exit
/// has closed the slot (the event comes after the final report). The cold path of exec
/// callbacks and every lifecycle and syscall hook go through here.
///
/// # Safety
/// The caller runs on vCPU `index`'s thread, in a callback QEMU runs for that vCPU, so
/// that nothing else on this thread holds the shard.
pub(crate) unsafe fn on_entered_shard<P: PerVcpu>(
    rt: &'static Runtime<P>,
    index: VCPUIndex,
    may_create: impl FnOnce() -> bool,
    f: impl FnOnce(&mut Vcpu<P>) -> Result<()>,
) -> Result<()> {
    let slot = rt.shards.get(index as usize);
    let Some(entered) = slot.enter() else {
        return Ok(());
    };
    // SAFETY: the caller's contract (this is vCPU `index`'s thread, in its callback),
    // and we hold the slot's entry guard.
    let shard = unsafe { slot.shard(&entered) };
    let vcpu = match shard {
        Some(vcpu) => vcpu,
        None if !may_create() => return Ok(()),
        // SAFETY: as above; the shard reference above is gone.
        None => unsafe { slot.put(&entered, rt.fresh(index)?) },
    };
    f(vcpu)
}

/// [`on_shard`] on the installed runtime (the tests' way in; hooks find their shards
/// from their userdata or closure).
#[cfg(test)]
pub(crate) fn on_exec<P: PerVcpu, const FENCED: bool>(
    index: VCPUIndex,
    f: impl FnOnce(&mut Vcpu<P>),
) {
    match Runtime::<P>::get() {
        Ok(rt) => on_shard::<P, FENCED>(rt.shards.first(), index, f),
        Err(e) => failure::error(Hook::Exec, &e),
    }
}
