//! The fixed, never-moving array of cache-padded per-vCPU slots, indexed by vCPU index.
//!
//! Segment 0 ([`First`]) holds [`FIRST`] slots, a compile-time count, in one allocation
//! made up front, followed by a pointer to its owner: the exec hot path gets a
//! `&First` from QEMU's userdata and reaches slot `i < FIRST` with a bounds check against a
//! constant and no load. Indexes past it (user mode, where every guest thread is a vCPU
//! and indexes have no fixed bound, or a system-mode machine of more than [`FIRST`]
//! vCPUs) land in further segments: segment `k >= 1` holds `FIRST << (k - 1)` slots, is
//! allocated on first use, installed once by compare-and-swap (the loser frees its own
//! allocation), and never moves. A reference to a slot is therefore valid for the life of
//! the array, whatever other vCPUs do.

use std::sync::atomic::{AtomicPtr, Ordering};

use crossbeam_utils::CachePadded;

use crate::annotate;

/// Slots in segment 0.
pub(crate) const FIRST: usize = 64;

/// Enough segments for any `u32` vCPU index with `base >= 1`.
const SEGMENTS: usize = 33;

/// Where a vCPU index lives: segment, offset in it, and that segment's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: usize,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl Location {
    /// Segment 0 covers `[0, base)`; segment `k >= 1` covers `[base << (k-1), base << k)`.
    #[inline]
    pub(crate) fn of(base: usize, index: usize) -> Self {
        if index < base {
            return Location {
                segment: 0,
                offset: index,
                len: base,
            };
        }
        let q = index / base; // >= 1
        let k = (usize::BITS - 1 - q.leading_zeros()) as usize + 1;
        let start = base << (k - 1);
        Location {
            segment: k,
            offset: index - start,
            len: base << (k - 1),
        }
    }
}

/// Segment 0: the first [`FIRST`] slots, then the owner's address on a line of its own.
#[repr(C)]
pub(crate) struct First<T> {
    slots: [CachePadded<T>; FIRST],
    owner: AtomicPtr<()>,
}

impl<T> First<T> {
    /// The slot for `index` if it is below [`FIRST`].
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.slots.get(index).map(|s| &**s)
    }

    /// What [`Shards::set_owner`] stored (null before).
    #[inline]
    pub(crate) fn owner(&self) -> *const () {
        self.owner.load(Ordering::Acquire)
    }
}

/// Per-vCPU slots of `T`, each on its own cache line.
pub(crate) struct Shards<T> {
    first: Box<First<T>>,
    rest: [AtomicPtr<CachePadded<T>>; SEGMENTS],
}

impl<T: Default> Shards<T> {
    /// An array of [`FIRST`] slots, growing on demand.
    pub(crate) fn new() -> Self {
        let mut first = Box::<First<T>>::new_uninit();
        let p = first.as_mut_ptr();
        // Built in place: segment 0 can be large (FIRST times the plugin's shard), too
        // large for a temporary on the stack of a QEMU thread.
        for i in 0..FIRST {
            // SAFETY: `p` is a live, exclusively owned allocation of a `First<T>`; the
            // place projection writes slot `i` without reading or referencing the rest.
            unsafe { (&raw mut (*p).slots[i]).write(CachePadded::new(T::default())) };
        }
        // SAFETY: as above, for the owner field.
        unsafe { (&raw mut (*p).owner).write(AtomicPtr::new(std::ptr::null_mut())) };
        Self {
            // SAFETY: every field was written just above.
            first: unsafe { first.assume_init() },
            rest: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// Segment 0, whose address never changes while `self` lives.
    #[inline(always)]
    pub(crate) fn first(&self) -> &First<T> {
        &self.first
    }

    /// Records `owner` in segment 0, for code that holds only a `&First`.
    pub(crate) fn set_owner(&self, owner: *const ()) {
        self.first.owner.store(owner.cast_mut(), Ordering::Release);
    }

    /// The slot for `index`, allocating its segment on first use.
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> &T {
        match self.first.get(index) {
            Some(slot) => slot,
            None => self.get_in_segment(index),
        }
    }

    #[cold]
    #[inline(never)]
    fn get_in_segment(&self, index: usize) -> &T {
        let loc = Location::of(FIRST, index);
        let seg = &self.rest[loc.segment];
        let mut ptr = seg.load(Ordering::Acquire);
        if ptr.is_null() {
            let fresh: Box<[CachePadded<T>]> = (0..loc.len)
                .map(|_| CachePadded::new(T::default()))
                .collect();
            let fresh = Box::into_raw(fresh).cast::<CachePadded<T>>();
            // The release half of the compare-and-swap below: the slots' initialisation
            // happens before any use through the published pointer. (Issued before we
            // know whether we win; a loser's annotation only adds an ordering.)
            annotate::happens_before(seg);
            match seg.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => ptr = fresh,
                Err(winner) => {
                    // SAFETY: `fresh` is our own allocation of `loc.len` slots, never published.
                    drop(unsafe {
                        Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, loc.len))
                    });
                    ptr = winner;
                }
            }
        }
        // The acquire half: the load or the compare-and-swap above saw the publication.
        annotate::happens_after(seg);
        // SAFETY: `ptr` is segment `loc.segment`, installed once with exactly `loc.len`
        // initialised slots and never freed or moved before `self` drops; `offset < len`.
        unsafe { &*ptr.add(loc.offset) }
    }

    /// Every slot allocated so far, with its vCPU index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        let first = self.first.slots.iter().enumerate().map(|(i, s)| (i, &**s));
        let rest = (1..SEGMENTS).flat_map(move |k| {
            let ptr = self.rest[k].load(Ordering::Acquire);
            let len = if ptr.is_null() {
                0
            } else {
                // This acquire load saw the segment's publication in `get_in_segment`.
                annotate::happens_after(&self.rest[k]);
                FIRST << (k - 1)
            };
            let start = FIRST << (k - 1);
            (0..len).map(move |o| {
                // SAFETY: as in `get_in_segment`: a published segment of `len` slots.
                (start + o, unsafe { &**ptr.add(o) })
            })
        });
        first.chain(rest)
    }

    /// How many slots are allocated (memory is this times the padded slot size).
    pub(crate) fn allocated(&self) -> usize {
        FIRST
            + (1..SEGMENTS)
                .filter(|&k| !self.rest[k].load(Ordering::Acquire).is_null())
                .map(|k| FIRST << (k - 1))
                .sum::<usize>()
    }
}

impl<T> Drop for Shards<T> {
    fn drop(&mut self) {
        for k in 1..SEGMENTS {
            let ptr = *self.rest[k].get_mut();
            if !ptr.is_null() {
                // SAFETY: published segment of `FIRST << (k-1)` slots; we have `&mut self`.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, FIRST << (k - 1)))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn location_table() {
        // (base, index) -> (segment, offset, len), worked out by hand from the layout rule.
        let table = [
            (4, 0, (0, 0, 4)),
            (4, 3, (0, 3, 4)),
            (4, 4, (1, 0, 4)),
            (4, 7, (1, 3, 4)),
            (4, 8, (2, 0, 8)),
            (4, 15, (2, 7, 8)),
            (4, 16, (3, 0, 16)),
            (3, 3, (1, 0, 3)),
            (3, 5, (1, 2, 3)),
            (3, 6, (2, 0, 6)),
            (3, 11, (2, 5, 6)),
            (3, 12, (3, 0, 12)),
            (1, 0, (0, 0, 1)),
            (1, 1, (1, 0, 1)),
            (1, 2, (2, 0, 2)),
            (1, 3, (2, 1, 2)),
            (1, 4, (3, 0, 4)),
        ];
        for (base, index, (segment, offset, len)) in table {
            assert_eq!(
                Location::of(base, index),
                Location {
                    segment,
                    offset,
                    len
                },
                "base {base} index {index}"
            );
        }
        // Every index up to a large bound maps to a distinct (segment, offset) in range.
        for base in [1usize, 2, 3, 4, 7, 16] {
            let mut seen = std::collections::HashSet::new();
            for index in 0..5000 {
                let l = Location::of(base, index);
                assert!(l.offset < l.len && l.segment < SEGMENTS);
                assert!(seen.insert((l.segment, l.offset)));
            }
        }
        assert!(Location::of(1, u32::MAX as usize).segment < SEGMENTS);
    }

    #[test]
    fn slots_are_a_cache_line_apart() {
        let s: Shards<AtomicU64> = Shards::new();
        let a = s.get(0) as *const _ as usize;
        let b = s.get(1) as *const _ as usize;
        assert_eq!(b - a, align_of::<CachePadded<AtomicU64>>());
        assert!(align_of::<CachePadded<AtomicU64>>() >= 64);
        // Segment 0 starts where the hot path expects it, and its owner is on its own line.
        assert_eq!(s.first() as *const First<AtomicU64> as usize, a);
        let owner = &s.first().owner as *const _ as usize;
        assert_eq!(owner - a, FIRST * align_of::<CachePadded<AtomicU64>>());
        let c = s.get(FIRST + 9) as *const _ as usize;
        let d = s.get(FIRST + 10) as *const _ as usize;
        assert_eq!(d - c, align_of::<CachePadded<AtomicU64>>());
        assert_eq!(s.allocated(), FIRST + FIRST);
    }

    #[test]
    fn growth_under_concurrency_never_moves_slots() {
        let s: Shards<AtomicU64> = Shards::new();
        let addr0 = s.get(1) as *const _ as usize;
        std::thread::scope(|scope| {
            for t in 0..8usize {
                let s = &s;
                scope.spawn(move || {
                    for round in 0..200usize {
                        let i = (round * 8 + t) % (10 * FIRST);
                        s.get(i).fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(s.get(1) as *const _ as usize, addr0);
        let total: u64 = s.iter().map(|(_, c)| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 8 * 200);
        for (i, slot) in s.iter() {
            assert!(std::ptr::eq(slot, s.get(i)));
        }
        assert!(s.allocated() >= 10 * FIRST);
    }
}
