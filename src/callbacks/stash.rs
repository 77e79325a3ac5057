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

/// Moves `f` into storage that lives until the next translation-cache flush, and returns
/// the pointer to hand to QEMU as `userdata`. A zero-sized `f` costs no allocation.
pub(crate) fn stash<F: Send + Sync + 'static>(f: F) -> *mut c_void {
    if size_of::<F>() == 0 {
        // A ZST has no state; "dropping" it later would do nothing observable but run
        // its drop glue, which a capture-free closure has none of.
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

/// How many boxed closures are alive (zero-sized ones are not counted).
pub fn live_closures() -> usize {
    LIVE.load(Ordering::Relaxed)
}
