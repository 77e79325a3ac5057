//! Scoreboards: one zero-filled entry per vCPU index, grown like QEMU's
//! `plugin_grow_scoreboards__locked` (stop the world, move every buffer, flush TBs).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use super::sync::{Mutex, MutexGuard};
use super::{exclusive, translate};
use crate::annotate;

/// QEMU's initial `scoreboard_alloc_size` (`plugin_init`: "avoid frequent reallocation").
pub(crate) const INITIAL_CAPACITY: usize = 16;
/// Alignment of scoreboard buffers (glib's allocator guarantees 16).
const ALIGN: usize = 16;

/// The mock's `struct qemu_plugin_scoreboard`.
pub(crate) struct Scoreboard {
    /// Start of the entries; replaced (moved) only inside an exclusive section.
    data: AtomicPtr<u8>,
    /// Bytes per entry.
    pub(crate) elem_size: usize,
    /// Entries allocated (`scoreboard_alloc_size` when it was last sized).
    capacity: AtomicUsize,
}

/// Raw pointer to a live scoreboard; only dereferenced under [`BOARDS`]' lock or by
/// the plugin that owns it.
struct BoardPtr(*mut Scoreboard);
// SAFETY:
// - `Scoreboard` holds only atomics and plain integers; the pointer is only used to
//   resize or free the board while holding `BOARDS`.
unsafe impl Send for BoardPtr {}

/// Every live scoreboard (QEMU's `plugin.scoreboards`).
static BOARDS: Mutex<Vec<BoardPtr>> = Mutex::new(Vec::new());
/// Entries each scoreboard has (QEMU's `plugin.scoreboard_alloc_size`).
static CAPACITY: AtomicUsize = AtomicUsize::new(INITIAL_CAPACITY);
/// Highest initialised vCPU index + 1 (QEMU's `plugin.num_vcpus`; never shrinks).
static NUM_VCPUS: AtomicU32 = AtomicU32::new(0);

fn boards() -> MutexGuard<'static, Vec<BoardPtr>> {
    BOARDS.lock()
}

fn layout(elem_size: usize, entries: usize) -> Layout {
    // Sizes are bounded by vCPU counts times a plugin-chosen entry size; an overflow
    // would be a plugin bug, reported as an (abort-free) minimal layout.
    Layout::from_size_align(elem_size.max(1).saturating_mul(entries).max(1), ALIGN)
        .unwrap_or(Layout::new::<u128>())
}

fn alloc_entries(elem_size: usize, entries: usize) -> *mut u8 {
    let l = layout(elem_size, entries);
    // SAFETY:
    // - `l` has non-zero size.
    let p = unsafe { alloc_zeroed(l) };
    if p.is_null() {
        std::alloc::handle_alloc_error(l);
    }
    p
}

impl Scoreboard {
    /// Base address of entry 0 (moves when the boards grow).
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.data.load(Ordering::Acquire)
    }

    /// Entries currently allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Acquire)
    }
}

/// `qemu_plugin_scoreboard_new`: a zero-filled board sized for the current capacity.
pub(crate) fn new(elem_size: usize) -> *mut Scoreboard {
    let mut list = boards();
    let cap = CAPACITY.load(Ordering::Acquire);
    let sb = Box::into_raw(Box::new(Scoreboard {
        data: AtomicPtr::new(alloc_entries(elem_size, cap)),
        elem_size,
        capacity: AtomicUsize::new(cap),
    }));
    list.push(BoardPtr(sb));
    sb
}

/// `qemu_plugin_scoreboard_free`. Unknown pointers are ignored (returns false).
pub(crate) fn free(sb: *mut Scoreboard) -> bool {
    let mut list = boards();
    let Some(pos) = list.iter().position(|b| b.0 == sb) else {
        return false;
    };
    list.swap_remove(pos);
    // SAFETY:
    // - `sb` was in BOARDS, so it came from `Box::into_raw` in `new` and is freed once.
    let b = unsafe { Box::from_raw(sb) };
    // SAFETY:
    // - `data` was allocated by `alloc_entries` with this layout.
    unsafe { dealloc(b.base(), layout(b.elem_size, b.capacity())) };
    true
}

/// Whether `sb` is a live scoreboard.
pub(crate) fn is_live(sb: *mut Scoreboard) -> bool {
    boards().iter().any(|b| b.0 == sb)
}

/// Current number of entries per board.
pub(crate) fn capacity() -> usize {
    CAPACITY.load(Ordering::Acquire)
}

/// `qemu_plugin_num_vcpus`.
pub(crate) fn num_vcpus() -> u32 {
    NUM_VCPUS.load(Ordering::Acquire)
}

/// vCPU `index` is being initialised (`qemu_plugin_vcpu_init__async`): bump
/// `num_vcpus` and grow every board if the index does not fit. Must be called
/// outside any running section.
pub(crate) fn vcpu_init(index: u32) {
    let plugin_lock = crate::plugin_lock::lock();
    NUM_VCPUS.fetch_max(index + 1, Ordering::AcqRel);
    let idx = index as usize;
    if idx < CAPACITY.load(Ordering::Acquire) {
        return;
    }
    {
        let list = boards();
        if list.is_empty() {
            let mut size = CAPACITY.load(Ordering::Acquire);
            while idx >= size {
                size *= 2;
            }
            CAPACITY.fetch_max(size, Ordering::AcqRel);
            return;
        }
    }
    // Like QEMU: drop the lock, stop all vCPUs, re-take the lock, re-check, grow, flush.
    drop(plugin_lock);
    let _excl = exclusive::start_exclusive();
    let _plugin_lock = crate::plugin_lock::lock();
    let list = boards();
    let old = CAPACITY.load(Ordering::Acquire);
    if idx < old {
        return;
    }
    let mut size = old;
    while idx >= size {
        size *= 2;
    }
    for b in list.iter() {
        // SAFETY:
        // - entries of BOARDS are live boards; we hold the BOARDS lock.
        let sb = unsafe { &*b.0 };
        let (old_ptr, old_cap) = (sb.base(), sb.capacity());
        let new_ptr = alloc_entries(sb.elem_size, size);
        // SAFETY:
        // - both buffers are live and distinct (the new one is allocated before the old
        //   one is freed, so the base pointer really moves); the old has
        //   `elem_size * old_cap` bytes, which fits in the new one.
        unsafe { std::ptr::copy_nonoverlapping(old_ptr, new_ptr, sb.elem_size * old_cap) };
        sb.data.store(new_ptr, Ordering::Release);
        sb.capacity.store(size, Ordering::Release);
        // SAFETY:
        // - every vCPU is stopped (exclusive section) and all TBs baking `old_ptr` are
        //   flushed below before any vCPU resumes; it was allocated with this layout.
        unsafe { dealloc(old_ptr, layout(sb.elem_size, old_cap)) };
    }
    CAPACITY.store(size, Ordering::Release);
    drop(list);
    // Force all TBs to be flushed, as scoreboard pointers were changed.
    translate::flush_locked();
}

/// Frees every board and restores the initial capacity (host teardown).
pub(crate) fn reset() {
    // Atomics read by any vCPU at its init (QEMU reads them under `plugin.lock`): their
    // accesses race by design; the buffers they describe change only in exclusive
    // sections, which is what orders their users.
    annotate::atomic_only(&CAPACITY);
    annotate::atomic_only(&NUM_VCPUS);
    let ptrs: Vec<*mut Scoreboard> = boards().iter().map(|b| b.0).collect();
    for p in ptrs {
        free(p);
    }
    CAPACITY.store(INITIAL_CAPACITY, Ordering::Release);
    NUM_VCPUS.store(0, Ordering::Release);
}
