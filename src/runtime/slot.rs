//! One vCPU's slot: its shard, plus the two flags that let exit-time code take the shard
//! from a slot whose vCPU may still be running a callback.
//!
//! Ownership rules (argued in docs/architecture.md):
//! - every callback of vCPU `i` that touches its shard (exec-time callbacks, lifecycle
//!   and syscall hooks) runs on vCPU `i`'s thread, serialised by QEMU, and brackets its
//!   access with [`Slot::enter`]: QEMU's exit may run meanwhile on another thread (user
//!   mode: a syscall or lifecycle hook overlaps atexit; system mode: a device calls
//!   `exit()` from one vCPU thread while the others execute translated code);
//! - atexit closes every slot, waits for the ones in use, then takes their shards; an
//!   entry that finds its slot closed does nothing.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::barrier;
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;
use crate::annotate;

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
// owning vCPU's thread inside `enter`, or by atexit after
// `close_and_wait` has proven the owner is outside every hook and will not enter again.
// `Vcpu<P>` is `Send`, so it may be taken and dropped on the atexit thread.
unsafe impl<P: PerVcpu> Sync for Slot<P> {}

/// Proof that the owner is inside a hook of slot `'s`; clears `busy` on drop.
pub(crate) struct Entered<'s, P: PerVcpu>(&'s Slot<P>);

impl<P: PerVcpu> Drop for Entered<'_, P> {
    fn drop(&mut self) {
        // The owner's use of the shard happens before an exit that sees it not busy.
        annotate::happens_before(&self.0.busy);
        self.0.busy.store(false, Ordering::Release);
    }
}

impl<P: PerVcpu> Slot<P> {
    /// Marks the owner busy, unless atexit has closed the slot. On the hot path of every
    /// exec-time callback: two plain stores, one load and (where `membarrier` works) only
    /// a compiler fence.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Option<Entered<'_, P>> {
        self.annotate_flags();
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

    /// Tells the race detectors that the two flags are atomics (a no-op unless built with
    /// the `race-check` feature). Their ordering is the barrier protocol's, described to
    /// the detectors by the happens-before pair on `busy`.
    #[inline(always)]
    fn annotate_flags(&self) {
        annotate::atomic_only(&self.busy);
        annotate::atomic_only(&self.closed);
    }

    /// Closes the slot to its owner (step 1 of taking it at exit).
    pub(crate) fn close(&self) {
        self.annotate_flags();
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
        annotate::happens_after(&self.busy);
        // SAFETY: the slot is closed and its owner is not busy; by the barrier protocol
        // (barrier.rs) any later `enter` sees `closed` and backs off, so no callback of
        // the owner holds or will take a reference from the cell.
        Ok(unsafe { &mut *self.vcpu.get() }.take())
    }
}
