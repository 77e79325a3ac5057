//! Storage for the closures registered on translation blocks and instructions.
//!
//! QEMU keeps a registered closure's `userdata` pointer inside the translated block and
//! never says when that block is freed. The older design leaked one box per callback per
//! (re)translation. Here every boxed closure goes into a per-host-thread list, and the
//! lists are emptied when QEMU flushes its translation cache: the flush callback runs
//! with every vCPU stopped, and no block (so no pointer to a closure) survives it. Memory
//! is therefore bounded by what one generation of the translation cache registers.
//!
//! A closure that captures nothing is a zero-sized type: it is never allocated.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use thread_local::ThreadLocal;

struct Stashed {
    ptr: *mut (),
    drop: unsafe fn(*mut ()),
}

// SAFETY: a `Stashed` only ever holds a `Box<F>` with `F: Send` (see `stash`), so moving
// it, and dropping it, on another thread is what `F: Send` permits.
unsafe impl Send for Stashed {}

static LISTS: ThreadLocal<Mutex<Vec<Stashed>>> = ThreadLocal::new();
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether a closure of type `F` needs no storage at all: zero-sized *and* without drop
/// glue. (A zero-sized closure may still capture a zero-sized value whose `Drop` does
/// something; such a closure is stored and dropped at the flush like any other.)
#[inline(always)]
pub(crate) const fn stateless<F>() -> bool {
    size_of::<F>() == 0 && !std::mem::needs_drop::<F>()
}

/// Moves `f` into storage that lives until the next translation-cache flush, and returns
/// the pointer to hand to QEMU as `userdata`. A [`stateless`] `f` costs nothing.
pub(crate) fn stash<F: Send + Sync + 'static>(f: F) -> *mut c_void {
    if stateless::<F>() {
        // No state and no drop glue: forgetting it is dropping it.
        std::mem::forget(f);
        return NonNull::<F>::dangling().as_ptr().cast();
    }
    unsafe fn drop_box<F>(p: *mut ()) {
        // SAFETY: `p` came from `Box::into_raw(Box<F>)` in `stash::<F>` and is dropped
        // exactly once, by `clear`.
        drop(unsafe { Box::from_raw(p.cast::<F>()) });
    }
    let ptr = Box::into_raw(Box::new(f));
    let list = LISTS.get_or(|| Mutex::new(Vec::new()));
    list.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Stashed {
            ptr: ptr.cast(),
            drop: drop_box::<F>,
        });
    LIVE.fetch_add(1, Ordering::Relaxed);
    ptr.cast()
}

/// Frees every stashed closure.
///
/// # Safety
/// No pointer returned by [`stash`] may be used afterwards: call this only when QEMU has
/// discarded every translated block (its flush callback, with all vCPUs stopped, or
/// after the last callback at exit).
pub(crate) unsafe fn clear() {
    for list in LISTS.iter() {
        let taken = std::mem::take(&mut *list.lock().unwrap_or_else(|p| p.into_inner()));
        LIVE.fetch_sub(taken.len(), Ordering::Relaxed);
        for s in taken {
            // SAFETY: each entry was pushed once by `stash` with the matching drop
            // function; the caller guarantees no translated block still points to it.
            unsafe { (s.drop)(s.ptr) };
        }
    }
}

/// How many stored closures are alive (stateless ones are not counted).
pub fn live_closures() -> usize {
    LIVE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Token;
    impl Drop for Token {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hole 9: a zero-sized closure capturing a zero-sized value with a `Drop` was
    /// forgotten, so the capture's drop never ran.
    #[test]
    fn hole9_zero_sized_closures_with_drop_glue_are_dropped_at_the_flush() {
        // Holding a host keeps every other mock-driven test (whose closures `clear`
        // would free) from running meanwhile.
        let _host = qemu_plugin_mock::MockHost::user();
        let token = Token;
        let f = move || {
            let _ = &token;
        };
        assert_eq!(size_of_val(&f), 0);
        let p = stash(f);
        assert!(!p.is_null());
        assert_eq!(DROPS.load(Ordering::Relaxed), 0, "not before the flush");
        // SAFETY: nothing uses the pointer afterwards.
        unsafe { clear() };
        assert_eq!(
            DROPS.load(Ordering::Relaxed),
            1,
            "dropped once, at the flush"
        );
    }
}
