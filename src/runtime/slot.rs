//! One vCPU's slot: its shard, plus the two flags that let exit-time code take the shard
//! from a slot whose vCPU may still be entering a lifecycle or syscall hook.
//!
//! Ownership rules (argued in docs/architecture.md):
//! - exec-time callbacks (block, instruction, memory) touch slot `i` only from vCPU `i`'s
//!   thread, serialised by QEMU, and never while QEMU runs atexit (user mode: callbacks
//!   are unregistered and blocks flushed under the exclusive lock first; system mode:
//!   vCPUs are paused), so they use the shard with no flag at all;
//! - lifecycle and syscall hooks run on vCPU `i`'s thread but, in user mode, may overlap
//!   atexit on another thread; they bracket their access with [`Slot::enter`];
//! - atexit closes every slot, waits for the ones in use, then takes their shards.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::barrier;
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;

pub(crate) struct Slot<P: PerVcpu> {
    busy: AtomicBool,
    closed: AtomicBool,
    vcpu: UnsafeCell<Option<Vcpu<P>>>,
}

impl<P: PerVcpu> Default for Slot<P> {
    fn default() -> Self {
        Self {
            busy: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            vcpu: UnsafeCell::new(None),
        }
    }
}

// SAFETY: the cell is only accessed under the ownership rules in the module doc: by the
// owning vCPU's thread (exec hooks, or hooks inside `enter`), or by atexit after
// `close_and_wait` has proven the owner is outside every hook and will not enter again.
// `Vcpu<P>` is `Send`, so it may be taken and dropped on the atexit thread.
unsafe impl<P: PerVcpu> Sync for Slot<P> {}

/// Proof that the owner is inside a hook of slot `'s`; clears `busy` on drop.
pub(crate) struct Entered<'s, P: PerVcpu>(&'s Slot<P>);

impl<P: PerVcpu> Drop for Entered<'_, P> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl<P: PerVcpu> Slot<P> {
    /// The shard cell, for an exec-time callback of this slot's vCPU.
    ///
    /// # Safety
    /// The caller is running an exec-time callback (block, instruction or memory) for this
    /// slot's vCPU, on that vCPU's thread, and holds no other reference from this cell.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn exec_cell(&self) -> &mut Option<Vcpu<P>> {
        // SAFETY: per the contract, QEMU serialises this vCPU's callbacks on its thread,
        // and atexit never overlaps exec-time callbacks (module doc).
        unsafe { &mut *self.vcpu.get() }
    }

    /// Marks the owner busy, unless atexit has closed the slot.
    #[inline]
    pub(crate) fn enter(&self) -> Option<Entered<'_, P>> {
        self.busy.store(true, Ordering::Relaxed);
        barrier::light();
        if self.closed.load(Ordering::Relaxed) {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        Some(Entered(self))
    }

    /// The shard cell, while entered.
    ///
    /// # Safety
    /// Called on this slot's vCPU thread, with no other live reference from this cell.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn entered_cell<'a>(
        &'a self,
        _proof: &'a Entered<'_, P>,
    ) -> &'a mut Option<Vcpu<P>> {
        // SAFETY: the owner thread is the only one touching the cell until atexit closes
        // the slot, and atexit waits for `busy` to clear before touching it.
        unsafe { &mut *self.vcpu.get() }
    }

    /// Whether the owner is inside a hook of this slot (for tests of the exit protocol).
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Closes the slot to its owner (step 1 of taking it at exit).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// In a just-forked child: reopens the slot and abandons the parent's copy of the
    /// shard (never merged, never dropped: it may own copies of the parent's resources).
    ///
    /// # Safety
    /// The calling thread is the only thread of the process.
    pub(crate) unsafe fn reset_in_child(&self) {
        self.busy.store(false, Ordering::Relaxed);
        self.closed.store(false, Ordering::Relaxed);
        // SAFETY: no other thread exists, so no other reference to the cell does.
        std::mem::forget(unsafe { &mut *self.vcpu.get() }.take());
    }

    /// After [`Self::close`] on every slot and one [`barrier::heavy`]: waits (until
    /// `deadline`) until the owner is outside its hook, then takes the shard. `Err(())`
    /// if the owner is still busy at the deadline: the shard is then left alone.
    pub(crate) fn take_closed(&self, deadline: Instant) -> Result<Option<Vcpu<P>>, ()> {
        while self.busy.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err(());
            }
            std::thread::yield_now();
        }
        // SAFETY: the slot is closed and its owner is not busy; by the barrier protocol
        // (barrier.rs) any later `enter` sees `closed` and backs off, and exec-time
        // callbacks no longer run (module doc). So no other reference exists.
        Ok(unsafe { &mut *self.vcpu.get() }.take())
    }
}
