//! The mock's lock, condition variable and channel: `std::sync`'s, plus the
//! happens-before annotations that let valgrind's race detectors see them
//! ([`crate::annotate`]; nothing without the `race-check` feature).
//!
//! The std primitives are futex-based, which helgrind and DRD cannot see, so without
//! these every access the mock makes under a lock, or hands over through a channel,
//! would look like a race to them. The channel is a queue under such a lock, rather
//! than `std::sync::mpsc`, whose lock-free internals would be reported instead.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, PoisonError};

use crate::annotate;

/// `std::sync::Mutex`, poison-tolerant, with its ordering described to valgrind.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    inner: std::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            inner: std::sync::Mutex::new(value),
        }
    }

    /// Locks it (a panic while it was held does not poison it for the mock).
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // The std lock's acquire: everything done by earlier holders is visible now.
        annotate::happens_after(self);
        MutexGuard {
            guard: Some(guard),
            tag: self as *const Self as usize,
        }
    }
}

/// A held [`Mutex`]; unlocks on drop.
pub(crate) struct MutexGuard<'a, T> {
    guard: Option<std::sync::MutexGuard<'a, T>>,
    /// The mutex's address, naming it to valgrind.
    tag: usize,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("held until drop")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("held until drop")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The std lock's release: what this holder did happens before the next holder.
        annotate::happens_before(self.tag as *const ());
        self.guard = None;
    }
}

/// `std::sync::Condvar` for [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar {
    inner: std::sync::Condvar,
}

impl Condvar {
    /// A condition variable.
    pub(crate) const fn new() -> Self {
        Self {
            inner: std::sync::Condvar::new(),
        }
    }

    /// Releases `guard`'s lock, sleeps until notified (or spuriously), relocks.
    pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let std_guard = guard.guard.take().expect("held until drop");
        // `wait` releases the lock, then reacquires it before returning.
        annotate::happens_before(guard.tag as *const ());
        let std_guard = self
            .inner
            .wait(std_guard)
            .unwrap_or_else(PoisonError::into_inner);
        annotate::happens_after(guard.tag as *const ());
        guard.guard = Some(std_guard);
        guard
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        self.inner.notify_all();
    }
}

/// What a [`Sender`] and its [`Receiver`] share.
struct Channel<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver: bool,
}

/// The last owner of a channel drops it: `Arc`'s release (each owner's decrement) and
/// acquire (the last one's fence), described to valgrind.
struct Owner<T>(Option<Arc<Channel<T>>>);

impl<T> Owner<T> {
    fn new(chan: &Arc<Channel<T>>) -> Self {
        Self(Some(chan.clone()))
    }

    fn arc(&self) -> &Arc<Channel<T>> {
        self.0.as_ref().expect("owned until drop")
    }

    fn get(&self) -> &Channel<T> {
        self.arc()
    }
}

impl<T> Drop for Owner<T> {
    fn drop(&mut self) {
        if let Some(chan) = self.0.take() {
            let tag = Arc::as_ptr(&chan);
            annotate::happens_before(tag);
            // Before the decrement, since whoever turns out to be last reads the channel
            // inside `into_inner`. A non-last owner thereby also acquires the earlier
            // owners' releases: slightly more ordering than `Arc` gives, between the two
            // ends of one channel, each of which is done with it.
            annotate::happens_after(tag);
            drop(Arc::into_inner(chan));
        }
    }
}

/// The sending half of [`channel`].
pub(crate) struct Sender<T>(Owner<T>);

/// The receiving half of [`channel`].
pub(crate) struct Receiver<T>(Owner<T>);

/// The other half of the channel is gone.
#[derive(Debug)]
pub(crate) struct Disconnected;

/// An unbounded FIFO channel, like `std::sync::mpsc::channel`.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Channel {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver: true,
        }),
        ready: Condvar::new(),
    });
    (Sender(Owner::new(&chan)), Receiver(Owner::new(&chan)))
}

impl<T> Sender<T> {
    /// Queues `value`; fails if the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), Disconnected> {
        let chan = self.0.get();
        let mut s = chan.state.lock();
        if !s.receiver {
            return Err(Disconnected);
        }
        s.queue.push_back(value);
        drop(s);
        chan.ready.notify_all();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let chan = self.0.arc();
        chan.state.lock().senders += 1;
        Sender(Owner::new(chan))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let chan = self.0.get();
        chan.state.lock().senders -= 1;
        chan.ready.notify_all();
    }
}

impl<T> Receiver<T> {
    /// The next value, waiting for one; fails once every sender is gone and the queue
    /// is empty.
    pub(crate) fn recv(&self) -> Result<T, Disconnected> {
        let chan = self.0.get();
        let mut s = chan.state.lock();
        loop {
            if let Some(v) = s.queue.pop_front() {
                return Ok(v);
            }
            if s.senders == 0 {
                return Err(Disconnected);
            }
            s = chan.ready.wait(s);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.get().state.lock().receiver = false;
    }
}

/// A one-shot count-down: [`Gate::wait`] returns once [`Gate::arrive`] has been called
/// `n` times.
pub(crate) struct Gate {
    left: Mutex<u64>,
    open: Condvar,
}

impl Gate {
    /// A gate that opens after `n` arrivals.
    pub(crate) fn new(n: u64) -> Self {
        Self {
            left: Mutex::new(n),
            open: Condvar::new(),
        }
    }

    /// Counts one arrival.
    pub(crate) fn arrive(&self) {
        let mut left = self.left.lock();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.open.notify_all();
        }
    }

    /// Waits until the gate is open.
    pub(crate) fn wait(&self) {
        let mut left = self.left.lock();
        while *left > 0 {
            left = self.open.wait(left);
        }
    }
}
