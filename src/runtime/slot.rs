//! One vCPU's slot: its shard, plus the two flags that let exit-time code take the shard
//! from a slot whose vCPU may still be running a callback.
//!
//! Ownership rules (argued in docs/architecture.md):
//! - every callback of vCPU `i` that touches its shard (exec-time callbacks, lifecycle
//!   and syscall hooks) runs on vCPU `i`'s thread, serialised by QEMU, and brackets its
//!   access with [`Slot::enter`] (or [`Slot::enter_exec`], the hot path's): QEMU's exit
//!   may run meanwhile on another thread (user mode: a syscall or lifecycle hook overlaps
//!   atexit; system mode: a device calls `exit()` from one vCPU thread while the others
//!   execute translated code);
//! - atexit closes every slot, waits for the ones in use, then takes their shards; an
//!   entry that finds its slot closed does nothing.
//!
//! The slot's `state` byte is 0 exactly when the owner may use its shard at once (the
//! slot is open and holds one), so the hot path tests one byte for both conditions.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

use super::barrier;
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;
use crate::annotate;

/// `state` bit: QEMU's exit has closed the slot (set by the exit, never cleared but in a
/// forked child).
const CLOSED: u8 = 1;
/// `state` bit: the slot holds no shard (set and cleared by the owner, inside `enter`).
const EMPTY: u8 = 2;
/// `state` bit: the owner merged its shard and is ending the process from inside a
/// callback ([`Slot::abandon`]); set by the owner, never cleared but in a forked child.
/// Entries back off, and the exit neither waits for the owner nor touches the cell.
const ABANDONED: u8 = 4;

pub(crate) struct Slot<P: PerVcpu> {
    busy: AtomicBool,
    state: AtomicU8,
    vcpu: UnsafeCell<Option<Vcpu<P>>>,
}

impl<P: PerVcpu> Default for Slot<P> {
    fn default() -> Self {
        Self {
            busy: AtomicBool::new(false),
            state: AtomicU8::new(EMPTY),
            vcpu: UnsafeCell::new(None),
        }
    }
}

// SAFETY: the cell is only accessed under the ownership rules in the module doc: by the
// owning vCPU's thread inside `enter`, or by atexit after `take_closed` has proven the
// owner is outside every callback and will not enter again. `Vcpu<P>` is `Send`, so it
// may be taken and dropped on the atexit thread.
unsafe impl<P: PerVcpu> Sync for Slot<P> {}

/// Proof that the owner is inside a callback of slot `'s`; clears `busy` on drop.
pub(crate) struct Entered<'s, P: PerVcpu>(&'s Slot<P>);

impl<P: PerVcpu> Drop for Entered<'_, P> {
    #[inline(always)]
    fn drop(&mut self) {
        // The owner's use of the shard happens before an exit that sees it not busy.
        annotate::happens_before(&self.0.busy);
        self.0.busy.store(false, Ordering::Release);
    }
}

impl<P: PerVcpu> Slot<P> {
    /// The exec-time hot path's entry: marks the owner busy and returns its shard if the
    /// slot is open and holds one; otherwise (closed, or no shard yet) `None`, and the
    /// caller takes the cold path. Two plain stores (busy, then not busy on drop), one
    /// load and, unless `FENCED`, only a compiler fence: `FENCED` is chosen when the
    /// callback is registered ([`barrier::exec_fenced`]).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn enter_exec<const FENCED: bool>(&self) -> Option<(Entered<'_, P>, &mut Vcpu<P>)> {
        self.annotate_flags();
        self.busy.store(true, Ordering::Relaxed);
        barrier::light_exec::<FENCED>();
        if self.state.load(Ordering::Relaxed) != 0 {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        let entered = Entered(self);
        // SAFETY: we are the owner (exec-time callbacks of this slot's vCPU run on its
        // thread, one at a time) inside `enter`, and `state == 0` means not EMPTY: only
        // the owner sets or clears EMPTY, always together with the cell (`put`, `take`),
        // so the cell holds a shard. No other reference from the cell is live.
        let vcpu = unsafe { (*self.vcpu.get()).as_mut().unwrap_unchecked() };
        Some((entered, vcpu))
    }

    /// Marks the owner busy, unless atexit has closed the slot (lifecycle and syscall
    /// hooks, and the exec path's cold side).
    #[inline]
    pub(crate) fn enter(&self) -> Option<Entered<'_, P>> {
        self.annotate_flags();
        self.busy.store(true, Ordering::Relaxed);
        barrier::light();
        if self.state.load(Ordering::Relaxed) & (CLOSED | ABANDONED) != 0 {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        Some(Entered(self))
    }

    /// Gives the slot up for good, while entered, once the owner has merged what its
    /// shard held ([`Vcpu::exit_qemu`]): later entries back off, and QEMU's exit, which
    /// the owner is about to run from inside this callback, neither waits for it nor
    /// touches the cell (whose `Vcpu` the callback still borrows).
    ///
    /// # Safety
    /// Called by the owner, inside a callback of this slot's vCPU that entered it.
    pub(crate) unsafe fn abandon(&self) {
        self.annotate_flags();
        self.state.fetch_or(ABANDONED, Ordering::Relaxed);
        // The merge and the flag happen before an exit that sees the owner not busy.
        annotate::happens_before(&self.busy);
        self.busy.store(false, Ordering::Release);
    }

    /// The shard, while entered.
    ///
    /// # Safety
    /// Called on this slot's vCPU thread, with no other live reference from this cell.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn shard<'a>(
        &'a self,
        _proof: &'a Entered<'_, P>,
    ) -> Option<&'a mut Vcpu<P>> {
        // SAFETY: the owner thread is the only one touching the cell until atexit closes
        // the slot, and atexit waits for `busy` to clear before touching it.
        unsafe { (*self.vcpu.get()).as_mut() }
    }

    /// Stores a new shard, while entered, and returns it.
    ///
    /// # Safety
    /// As for [`Self::shard`].
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn put<'a>(
        &'a self,
        _proof: &'a Entered<'_, P>,
        vcpu: Vcpu<P>,
    ) -> &'a mut Vcpu<P> {
        // SAFETY: as in `shard`.
        let cell = unsafe { &mut *self.vcpu.get() };
        let mut vcpu = vcpu;
        vcpu.set_in_slot(true);
        let vcpu = cell.insert(vcpu);
        self.state.fetch_and(!EMPTY, Ordering::Relaxed);
        vcpu
    }

    /// Takes the shard out, while entered.
    ///
    /// # Safety
    /// As for [`Self::shard`].
    pub(crate) unsafe fn take(&self, _proof: &Entered<'_, P>) -> Option<Vcpu<P>> {
        self.state.fetch_or(EMPTY, Ordering::Relaxed);
        // SAFETY: as in `shard`.
        let mut taken = unsafe { &mut *self.vcpu.get() }.take();
        if let Some(v) = &mut taken {
            v.set_in_slot(false);
        }
        taken
    }

    /// Tells the race detectors that the two flags are atomics (a no-op unless built with
    /// the `race-check` feature). Their ordering is the barrier protocol's, described to
    /// the detectors by the happens-before pair on `busy`.
    #[inline(always)]
    fn annotate_flags(&self) {
        annotate::atomic_only(&self.busy);
        annotate::atomic_only(&self.state);
    }

    /// Whether the owner is inside a callback of this slot (for tests of the exit
    /// protocol).
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Closes the slot to its owner (step 1 of taking it at exit).
    pub(crate) fn close(&self) {
        self.annotate_flags();
        self.state.fetch_or(CLOSED, Ordering::Relaxed);
    }

    /// In a just-forked child: reopens the slot and abandons the parent's copy of the
    /// shard (never merged, never dropped: it may own copies of the parent's resources).
    ///
    /// # Safety
    /// The calling thread is the only thread of the process.
    pub(crate) unsafe fn reset_in_child(&self) {
        self.busy.store(false, Ordering::Relaxed);
        self.state.store(EMPTY, Ordering::Relaxed);
        // SAFETY: no other thread exists, so no other reference to the cell does.
        std::mem::forget(unsafe { &mut *self.vcpu.get() }.take());
    }

    /// After [`Self::close`] on every slot and one [`barrier::heavy`]: waits (until
    /// `deadline`) until the owner is outside its callback, then takes the shard.
    /// `Err(())` if the owner is still busy at the deadline: the shard is then left alone.
    pub(crate) fn take_closed(&self, deadline: Instant) -> Result<Option<Vcpu<P>>, ()> {
        while self.busy.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err(());
            }
            std::thread::yield_now();
        }
        annotate::happens_after(&self.busy);
        if self.state.load(Ordering::Relaxed) & ABANDONED != 0 {
            // Merged already; its callback may still hold a reference into the cell.
            return Ok(None);
        }
        self.state.fetch_or(EMPTY, Ordering::Relaxed);
        // SAFETY: the slot is closed and its owner is not busy; by the barrier protocol
        // (barrier.rs) any later entry sees CLOSED and backs off, so no callback of the
        // owner holds or will take a reference from the cell.
        let mut taken = unsafe { &mut *self.vcpu.get() }.take();
        if let Some(v) = &mut taken {
            v.set_in_slot(false);
        }
        Ok(taken)
    }
}
