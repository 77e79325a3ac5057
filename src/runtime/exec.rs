//! The exec-time trampoline of the per-vCPU runtime: what QEMU calls for a block or an
//! instruction closure registered through [`Translation`](super::Translation).
//!
//! The userdata QEMU hands back carries segment 0 of the runtime's shard array (whose
//! owner is the runtime), so the hot path needs no global: for a closure that captures
//! nothing (a zero-sized type) the userdata *is* that segment; otherwise it is a stashed
//! `Bound { first, f }`, freed at the next flush like every exec closure. The hot path is
//! then [`on_shard`]'s: slot address (a bounds check against a constant), the slot's
//! entry (busy flag, barrier, state byte), the closure; the rest is in a cold function.
//! Each closure gets one of two trampolines, chosen when it is registered: with full
//! fences until `membarrier` is registered, with compiler fences after
//! (`barrier::exec_fenced`).

use std::ffi::c_void;
use std::ptr::NonNull;

use super::barrier::for_exec_barrier;
use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::shard_access::on_shard;
use super::shards::First;
use super::slot::Slot;
use super::vcpu::Vcpu;
use crate::VCPUIndex;
use crate::callbacks::exec::Udata;
use crate::callbacks::stash::{stash, stateless};

/// A closure stored with the shard array it runs on.
struct Bound<P: PerVcpu, F> {
    first: &'static First<Slot<P>>,
    f: F,
}

/// Pairs `f` (and `rt`'s shards) with [`shard_exec`], without allocating when `f` is
/// zero-sized.
pub(crate) fn shard_udata<P, F>(rt: &'static Runtime<P>, f: F) -> Udata
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
{
    Udata {
        cb: Some(for_exec_barrier!(shard_exec::<P, F>)),
        userdata: bind(rt, f),
    }
}

/// The userdata of closure `f` on `rt`'s shards: segment 0 itself when `f` is zero-sized,
/// else a stashed `Bound` (freed at the next flush).
pub(crate) fn bind<P: PerVcpu, F: Send + Sync + 'static>(
    rt: &'static Runtime<P>,
    f: F,
) -> *mut c_void {
    let first = rt.shards.first();
    if stateless::<F>() {
        // No state to keep and no drop glue: forgetting it is dropping it.
        std::mem::forget(f);
        (first as *const First<Slot<P>>).cast_mut().cast::<c_void>()
    } else {
        stash(Bound { first, f })
    }
}

/// Recovers segment 0 and the closure from `userdata`.
///
/// # Safety
/// `userdata` was produced by `bind::<P, F>` and (if boxed) not freed yet.
#[inline(always)]
pub(crate) unsafe fn unpack<'u, P: PerVcpu, F>(
    userdata: *mut c_void,
) -> (&'static First<Slot<P>>, &'u F) {
    if stateless::<F>() {
        // SAFETY: for a stateless `F`, `shard_udata` passed segment 0 of a leaked,
        // never-freed runtime, and any well-aligned non-null pointer is a valid `&F`.
        unsafe {
            (
                &*userdata.cast::<First<Slot<P>>>(),
                NonNull::<F>::dangling().as_ref(),
            )
        }
    } else {
        // SAFETY: otherwise it passed a stashed `Bound<P, F>`, alive until the next flush,
        // and no block that could call us survives a flush.
        let b = unsafe { &*userdata.cast::<Bound<P, F>>() };
        (b.first, &b.f)
    }
}

/// QEMU's `qemu_plugin_vcpu_udata_cb_t` for a per-vCPU closure `F` of plugin `P`.
pub(crate) extern "C" fn shard_exec<P, F, const FENCED: bool>(
    index: VCPUIndex,
    userdata: *mut c_void,
) where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
{
    // SAFETY: QEMU passes back the userdata `shard_udata::<P, F>` registered with this
    // very trampoline.
    let (first, f) = unsafe { unpack::<P, F>(userdata) };
    on_shard::<P, FENCED>(first, index, f)
}
