//! The fixed, never-moving array of cache-padded per-vCPU slots, indexed by vCPU index.
//!
//! Segment 0 holds `base` slots (system mode: the machine's maximum vCPUs) and is
//! allocated up front. Indexes past it (user mode, where every guest thread is a vCPU
//! and indexes have no fixed bound) land in further segments: segment `k >= 1` holds
//! `base << (k - 1)` slots, is allocated on first use, installed once by compare-and-swap
//! (the loser frees its own allocation), and never moves. A reference to a slot is
//! therefore valid for the life of the array, whatever other vCPUs do.

use std::sync::atomic::{AtomicPtr, Ordering};

use crossbeam_utils::CachePadded;

use crate::annotate;

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

/// Per-vCPU slots of `T`, each on its own cache line.
pub(crate) struct Shards<T> {
    base: usize,
    first: Box<[CachePadded<T>]>,
    rest: [AtomicPtr<CachePadded<T>>; SEGMENTS],
}

impl<T: Default> Shards<T> {
    /// An array whose first segment holds `base` slots (at least 1).
    pub(crate) fn new(base: usize) -> Self {
        let base = base.max(1);
        Self {
            base,
            first: (0..base).map(|_| CachePadded::new(T::default())).collect(),
            rest: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// The slot for `index`, allocating its segment on first use.
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> &T {
        if index < self.base {
            &self.first[index]
        } else {
            self.get_in_segment(index)
        }
    }

    /// The slot for `index` if it is in the first segment (one bounds check).
    #[inline(always)]
    pub(crate) fn get_first(&self, index: usize) -> Option<&T> {
        self.first.get(index).map(|s| &**s)
    }

    #[cold]
    #[inline(never)]
    fn get_in_segment(&self, index: usize) -> &T {
        let loc = Location::of(self.base, index);
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
        let first = self.first.iter().enumerate().map(|(i, s)| (i, &**s));
        let rest = (1..SEGMENTS).flat_map(move |k| {
            let ptr = self.rest[k].load(Ordering::Acquire);
            let len = if ptr.is_null() {
                0
            } else {
                // This acquire load saw the segment's publication in `get_in_segment`.
                annotate::happens_after(&self.rest[k]);
                self.base << (k - 1)
            };
            let start = self.base << (k - 1);
            (0..len).map(move |o| {
                // SAFETY: as in `get_in_segment`: a published segment of `len` slots.
                (start + o, unsafe { &**ptr.add(o) })
            })
        });
        first.chain(rest)
    }

    /// How many slots are allocated (memory is this times the padded slot size).
    pub(crate) fn allocated(&self) -> usize {
        self.base
            + (1..SEGMENTS)
                .filter(|&k| !self.rest[k].load(Ordering::Acquire).is_null())
                .map(|k| self.base << (k - 1))
                .sum::<usize>()
    }
}

impl<T> Drop for Shards<T> {
    fn drop(&mut self) {
        for k in 1..SEGMENTS {
            let ptr = *self.rest[k].get_mut();
            if !ptr.is_null() {
                // SAFETY: published segment of `base << (k-1)` slots; we have `&mut self`.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                        ptr,
                        self.base << (k - 1),
                    ))
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
        let s: Shards<AtomicU64> = Shards::new(4);
        let a = s.get(0) as *const _ as usize;
        let b = s.get(1) as *const _ as usize;
        assert_eq!(b - a, align_of::<CachePadded<AtomicU64>>());
        assert!(align_of::<CachePadded<AtomicU64>>() >= 64);
        let c = s.get(9) as *const _ as usize;
        let d = s.get(10) as *const _ as usize;
        assert_eq!(d - c, align_of::<CachePadded<AtomicU64>>());
    }

    #[test]
    fn growth_under_concurrency_never_moves_slots() {
        let s: Shards<AtomicU64> = Shards::new(2);
        let addr0 = s.get(1) as *const _ as usize;
        std::thread::scope(|scope| {
            for t in 0..8usize {
                let s = &s;
                scope.spawn(move || {
                    for round in 0..200usize {
                        let i = (round * 8 + t) % 600;
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
        assert!(s.allocated() >= 600);
    }
}
