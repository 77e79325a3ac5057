//! A set-associative cache model, block for block the one of QEMU's
//! `contrib/plugins/cache.c` (same geometry checks, same victim choice for LRU and FIFO),
//! for the `cache` example. Holds tags only; counts accesses and misses.

use std::collections::VecDeque;

/// How a full set picks the block to replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The least recently used block (per-set generation counters, as cache.c).
    Lru,
    /// The block filled longest ago.
    Fifo,
    /// A random block.
    Rand,
}

/// One cache: `num_sets` sets of `assoc` blocks.
pub struct Cache {
    assoc: usize,
    blksize_shift: u32,
    set_mask: u64,
    tag_mask: u64,
    /// (tag, valid) of every block, set by set.
    blocks: Vec<(u64, bool)>,
    /// LRU: each block's last-use generation, and each set's next generation.
    lru_priority: Vec<u64>,
    lru_gen: Vec<u64>,
    /// FIFO: each set's blocks in fill order, newest first.
    fifo: Vec<VecDeque<usize>>,
    policy: Policy,
    rng: u64,
    pub accesses: u64,
    pub misses: u64,
}

/// Why cache.c refuses a geometry (its `cache_config_error`), or `None` if it is valid.
pub fn config_error(blksize: i64, assoc: i64, cachesize: i64) -> Option<&'static str> {
    if blksize <= 0 || assoc <= 0 || cachesize <= 0 {
        Some("block size, associativity and cache size must be positive")
    } else if cachesize % blksize != 0 {
        Some("cache size must be divisible by block size")
    } else if cachesize % (blksize * assoc) != 0 {
        Some("cache size must be divisible by set size (assoc * block size)")
    } else if !(blksize as u64).is_power_of_two()
        || !((cachesize / (blksize * assoc)) as u64).is_power_of_two()
    {
        // cache.c asserts these (its masks need them); refused here instead.
        Some("block size and number of sets must be powers of two")
    } else {
        None
    }
}

impl Cache {
    /// A cache of `cachesize` bytes in blocks of `blksize`, `assoc`-way; the geometry must
    /// have passed [`config_error`]. `seed` seeds the random policy.
    pub fn new(blksize: i64, assoc: i64, cachesize: i64, policy: Policy, seed: u64) -> Self {
        let assoc = assoc as usize;
        let num_sets = (cachesize / (blksize * assoc as i64)) as usize;
        let blksize_shift = (blksize as u64).trailing_zeros();
        let set_mask = ((num_sets as u64) - 1) << blksize_shift;
        let tag_mask = !(set_mask | (blksize as u64 - 1));
        Cache {
            assoc,
            blksize_shift,
            set_mask,
            tag_mask,
            blocks: vec![(0, false); num_sets * assoc],
            lru_priority: vec![0; num_sets * assoc],
            lru_gen: vec![0; num_sets],
            fifo: if policy == Policy::Fifo {
                vec![VecDeque::new(); num_sets]
            } else {
                Vec::new()
            },
            policy,
            rng: seed | 1,
            accesses: 0,
            misses: 0,
        }
    }

    fn lru_touch(&mut self, set: usize, blk: usize) {
        self.lru_priority[set * self.assoc + blk] = self.lru_gen[set];
        self.lru_gen[set] += 1;
    }

    /// cache.c's `lru_get_lru_block`, including its `int` minimum (truncated, then
    /// compared as an unsigned 64-bit value).
    fn lru_victim(&self, set: usize) -> usize {
        let prio = &self.lru_priority[set * self.assoc..(set + 1) * self.assoc];
        let mut min = prio[0] as i32;
        let mut idx = 0;
        for (i, &p) in prio.iter().enumerate().skip(1) {
            if p < min as i64 as u64 {
                min = p as i32;
                idx = i;
            }
        }
        idx
    }

    fn random_block(&mut self) -> usize {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % self.assoc as u64) as usize
    }

    /// One access: true on a hit. Counts it, and the miss. The hit path is inlined into
    /// the callback; the miss (replacement) path is out of line.
    #[inline(always)]
    pub fn access(&mut self, addr: u64) -> bool {
        self.accesses += 1;
        let tag = addr & self.tag_mask;
        let set = ((addr & self.set_mask) >> self.blksize_shift) as usize;
        let base = set * self.assoc;
        let ways = &self.blocks[base..base + self.assoc];
        if let Some(hit) = ways.iter().position(|&(t, v)| v && t == tag) {
            if self.policy == Policy::Lru {
                self.lru_touch(set, hit);
            }
            return true;
        }
        self.miss(tag, set);
        false
    }

    /// The miss path of [`Self::access`]: picks a victim in `set` and puts `tag` there.
    #[cold]
    #[inline(never)]
    fn miss(&mut self, tag: u64, set: usize) {
        self.misses += 1;
        let base = set * self.assoc;
        let ways = &self.blocks[base..base + self.assoc];
        let victim = match ways.iter().position(|&(_, v)| !v) {
            Some(free) => free,
            None => match self.policy {
                Policy::Lru => self.lru_victim(set),
                Policy::Fifo => self.fifo[set].pop_back().unwrap_or(0),
                Policy::Rand => self.random_block(),
            },
        };
        match self.policy {
            Policy::Lru => self.lru_touch(set, victim),
            Policy::Fifo => self.fifo[set].push_front(victim),
            Policy::Rand => {}
        }
        self.blocks[base + victim] = (tag, true);
    }
}
