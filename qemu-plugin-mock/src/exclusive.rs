//! Stopping the world: the running/exclusive protocol of QEMU's `cpus-common.c`
//! (`cpu_exec_start`, `start_exclusive`) and the queue of "safe work"
//! (`async_safe_run_on_cpu`) that runs while every vCPU is stopped.
//!
//! A vCPU marks itself running with one store to its own cache line and polls one
//! shared, read-mostly word at block boundaries; nothing on the execution path locks.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::sync::{Condvar, Mutex, MutexGuard};
use super::{ctx, vcpu};
use crate::annotate;

/// Bit of [`ATTENTION`]: an exclusive section is pending or active.
const EXCLUSIVE: u32 = 1;
/// Bit of [`ATTENTION`]: safe work is queued.
const WORK: u32 = 2;

/// Non-zero when vCPUs should leave their running section at the next block boundary.
static ATTENTION: AtomicU32 = AtomicU32::new(0);
/// Serialises exclusive sections.
static EXCLUSIVE_LOCK: Mutex<()> = Mutex::new(());
/// Lets vCPUs sleep until the exclusive section ends.
static WAIT: Mutex<()> = Mutex::new(());
static WAIT_CV: Condvar = Condvar::new();
/// Work to run with every vCPU stopped.
static QUEUE: Mutex<Vec<Work>> = Mutex::new(Vec::new());

/// A closure run with all vCPUs stopped.
pub(crate) type Work = Box<dyn FnOnce() + Send>;

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock()
}

/// A vCPU's "I am executing guest code or a callback" flag, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct RunningFlag(AtomicBool);

impl RunningFlag {
    /// Whether the vCPU is in its running section.
    fn is_running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether a vCPU should stop at its next block boundary (cheap poll).
#[inline(always)]
pub(crate) fn attention() -> bool {
    ATTENTION.load(Ordering::Relaxed) != 0
}

/// Enters the running section of the calling vCPU (`cpu_exec_start`): waits while an
/// exclusive section is pending.
pub(crate) fn exec_start(flag: &RunningFlag) {
    loop {
        // Dekker with `start_exclusive`: store our flag, then read theirs (both SeqCst).
        flag.0.store(true, Ordering::SeqCst);
        if ATTENTION.load(Ordering::SeqCst) & EXCLUSIVE == 0 {
            // This SeqCst load saw the end of the last exclusive section (the store in
            // `Exclusive::drop`): its work happens before this running section.
            annotate::happens_after(&ATTENTION);
            ctx::set_running(true);
            return;
        }
        flag.0.store(false, Ordering::SeqCst);
        let mut g = lock(&WAIT);
        while ATTENTION.load(Ordering::SeqCst) & EXCLUSIVE != 0 {
            g = WAIT_CV.wait(g);
        }
    }
}

/// Leaves the running section of the calling vCPU (`cpu_exec_end`).
pub(crate) fn exec_end(flag: &RunningFlag) {
    ctx::set_running(false);
    // Paired with `start_exclusive` seeing this store: the running section happens
    // before the exclusive section.
    annotate::happens_before(flag);
    flag.0.store(false, Ordering::SeqCst);
}

/// A block boundary that found [`attention`] set: stop, run queued work, resume.
#[cold]
pub(crate) fn safe_point(flag: &RunningFlag) {
    exec_end(flag);
    drain();
    exec_start(flag);
}

/// Proof that every vCPU is stopped; dropping it runs queued work, then resumes them.
pub(crate) struct Exclusive {
    guard: Option<MutexGuard<'static, ()>>,
}

/// Stops every vCPU (`start_exclusive`). Re-entrant on the thread that holds it.
///
/// Must not be called from a vCPU's running section, nor while holding any other
/// lock of the mock that a running vCPU may take.
pub(crate) fn start_exclusive() -> Exclusive {
    let depth = ctx::exclusive_depth();
    if depth > 0 {
        ctx::set_exclusive_depth(depth + 1);
        return Exclusive { guard: None };
    }
    debug_assert!(
        !ctx::running(),
        "start_exclusive from a running vCPU would deadlock"
    );
    let guard = lock(&EXCLUSIVE_LOCK);
    ATTENTION.fetch_or(EXCLUSIVE, Ordering::SeqCst);
    // vCPUs registered after this snapshot see EXCLUSIVE in `exec_start`.
    for v in vcpu::live_snapshot() {
        while v.running.is_running() {
            std::thread::yield_now();
        }
        // The SeqCst load above saw `exec_end`'s store (or the flag never set).
        annotate::happens_after(&v.running);
    }
    ctx::set_exclusive_depth(1);
    Exclusive { guard: Some(guard) }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if self.guard.is_none() {
            ctx::set_exclusive_depth(ctx::exclusive_depth() - 1);
            return;
        }
        run_queued();
        ctx::set_exclusive_depth(0);
        // Paired with `exec_start` seeing the bit cleared.
        annotate::happens_before(&ATTENTION);
        ATTENTION.fetch_and(!EXCLUSIVE, Ordering::SeqCst);
        drop(lock(&WAIT));
        WAIT_CV.notify_all();
        self.guard = None;
    }
}

/// Queues `work` to run with all vCPUs stopped (`async_safe_run_on_cpu`).
pub(crate) fn queue(work: Work) {
    let mut q = lock(&QUEUE);
    q.push(work);
    ATTENTION.fetch_or(WORK, Ordering::SeqCst);
}

/// Runs queued work now, inside an exclusive section, if there is any.
/// The caller must not be in a running section.
pub(crate) fn drain() {
    if ATTENTION.load(Ordering::SeqCst) & WORK != 0 {
        drop(start_exclusive());
    }
}

fn run_queued() {
    loop {
        let items = {
            let mut q = lock(&QUEUE);
            if q.is_empty() {
                ATTENTION.fetch_and(!WORK, Ordering::SeqCst);
                return;
            }
            std::mem::take(&mut *q)
        };
        for w in items {
            w();
        }
    }
}

/// Drops queued work and clears every flag (host teardown).
pub(crate) fn reset() {
    lock(&QUEUE).clear();
    ATTENTION.store(0, Ordering::SeqCst);
}
