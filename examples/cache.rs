//! `cache`: QEMU's `contrib/plugins/cache.c` on the per-vCPU runtime. Simulates an L1
//! data cache, an L1 instruction cache and optionally a unified L2 per core, feeds them
//! every memory access and instruction fetch, and prints the same report at exit: per-core
//! accesses, misses and miss rates, then the instructions with the most data misses, fetch
//! misses and (with L2) L2 misses.
//!
//! ```text
//! core #, data accesses, data misses, dmiss rate, insn accesses, insn misses, imiss rate
//! 0       996695         4133          0.4147%  2342903        9162          0.3911%
//! ```
//!
//! Arguments, with the C plugin's spellings: `dblksize`, `dassoc`, `dcachesize`,
//! `iblksize`, `iassoc`, `icachesize`, `l2blksize`, `l2assoc`, `l2cachesize` (bytes and
//! ways; any `l2*` turns L2 on), `l2=on|off`, `evict=lru|fifo|rand`, `cores=N` (default:
//! the vCPUs in system mode, 1 in user mode; vCPU `i` uses core `i % N`), `limit=N` (rows
//! per list, default 32). A geometry cache.c cannot build is refused with its reason.
//! One argument of its own: `batch=N` (below; default 64, 1 to 4096).
//!
//! cache.c locks a core's cache on every access, and counts each instruction's misses with
//! atomic adds on one shared record. Here each vCPU counts misses in a table of its own;
//! and when every vCPU has a core of its own (system mode with the default `cores`) its
//! caches live in its shard, with no lock. Otherwise (user mode, where every guest thread
//! is a vCPU, or `cores` other than the vCPU count) vCPUs share cores as in cache.c, each
//! core behind one lock, and a vCPU feeds its core its accesses in runs of `batch`: it
//! queues them in its shard, and takes the lock once per run (and at its exit, so none
//! is lost). With one vCPU per core the core sees the same accesses in the same order
//! either way, so the report is cache.c's. When vCPUs share a core, their accesses reach
//! it in runs of up to `batch` each, where cache.c interleaves them one by one as the
//! scheduler happens to run the threads: the access counts are the same, the misses
//! those of another interleaving (cache.c's own differ from run to run). `batch=1`
//! interleaves one by one as cache.c does, at cache.c's cost: a lock round trip between
//! the threads on every access. `evict=rand` draws from a generator of its own, so its
//! numbers differ from cache.c's (which seeds from the clock) run to run.

#[path = "support/api1.rs"]
mod api1;

use api1::{phys_addr, symbol};

#[path = "support/cache_sim.rs"]
mod cache_sim;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crossbeam_utils::CachePadded;

use cache_sim::{Cache, Policy, config_error};
use qemu_plugin::{
    Args, Failure, Info, MemRW, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

/// One core's caches: in a shard, or shared behind one lock (`Cores::Shared`).
struct Core {
    l1d: Cache,
    l1i: Cache,
    l2: Option<Cache>,
}

/// A geometry: block size, associativity, size.
type Geometry = (i64, i64, i64);

/// An instruction as translated (cache.c keeps one record per address).
struct Insn {
    addr: u64,
    symbol: Option<String>,
    disas: String,
}

#[derive(Default)]
struct Insns {
    ids: HashMap<u64, usize>,
    list: Vec<Insn>,
}

/// Where the cores live.
enum Cores {
    /// One per vCPU, in its shard (system mode, `cores` = the vCPUs).
    InShards,
    /// Shared by the vCPUs `i` with the same `i % cores`, each core behind one lock on
    /// cache lines of its own (padded), fed in runs of `batch` accesses.
    Shared(Vec<CachePadded<Mutex<Core>>>),
}

struct CachePlugin {
    l1d: Geometry,
    l1i: Geometry,
    l2: Option<Geometry>,
    policy: Policy,
    limit: usize,
    ncores: usize,
    /// Accesses a vCPU queues before feeding them to a shared core.
    batch: usize,
    system: bool,
    cores: Cores,
    insns: Mutex<Insns>,
}

/// Misses per instruction id: L1 data, L1 fetch, L2.
type Misses = Vec<[u64; 3]>;

/// An access queued for a shared core: instruction id, address, data (else fetch).
type Pending = (usize, u64, bool);

#[derive(Default)]
struct Shard {
    core: Option<Core>,
    misses: Misses,
    /// Accesses not yet fed to a shared core (at most `batch`).
    pending: Vec<Pending>,
}

/// (accesses, misses) of a core's L1d, L1i and L2.
type CoreStats = [(u64, u64); 3];

#[derive(Default)]
struct Total {
    misses: Misses,
    /// The stats of the cores that lived in shards, by core.
    cores: BTreeMap<usize, CoreStats>,
}

fn stats(l1d: &Cache, l1i: &Cache, l2: Option<&Cache>) -> CoreStats {
    [
        (l1d.accesses, l1d.misses),
        (l1i.accesses, l1i.misses),
        l2.map_or((0, 0), |c| (c.accesses, c.misses)),
    ]
}

/// Locks a shared core. A waiter does not spin (std's `lock` spins first): it yields its
/// CPU between tries, so the holder keeps the core's lines while it works through its
/// accesses, as with cache.c's glib mutex, whose waiters sleep at once. With two guest
/// threads on one simulated core and a lock per access this halved the run (16 s
/// against 33 s with `lock`; cache.c 31-38 s, on this 2-core machine).
fn lock(core: &Mutex<Core>) -> std::sync::MutexGuard<'_, Core> {
    loop {
        match core.try_lock() {
            Ok(guard) => return guard,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

/// cache.c's `append_stats_line`.
fn stats_line(s: &CoreStats) -> String {
    let rate = |(a, m): (u64, u64)| {
        if a > 0 {
            m as f64 / a as f64 * 100.0
        } else {
            0.0
        }
    };
    let mut line = format!(
        "{:<14} {:<12} {:9.4}%  {:<14} {:<12} {:9.4}%",
        s[0].0,
        s[0].1,
        rate(s[0]),
        s[1].0,
        s[1].1,
        rate(s[1])
    );
    let (a, m) = s[2];
    if a > 0 && m > 0 {
        line += &format!("  {a:<12} {m:<11} {:10.4}%", rate(s[2]));
    }
    line + "\n"
}

impl CachePlugin {
    fn new_core(&self, seed: u64) -> Core {
        let make = |(b, a, s): Geometry, salt: u64| Cache::new(b, a, s, self.policy, seed ^ salt);
        Core {
            l1d: make(self.l1d, 0x1d),
            l1i: make(self.l1i, 0x11),
            l2: self.l2.map(|g| make(g, 0x12)),
        }
    }

    /// Feeds one access of instruction `id` to the executing vCPU's core (L1 data if
    /// `data`, else L1 fetch; L2 on a miss) and counts its misses.
    #[inline(always)]
    fn access(&self, cpu: &mut Vcpu<Self>, id: usize, addr: u64, data: bool) {
        let index = cpu.index() as usize;
        let shard: &mut Shard = cpu;
        match &self.cores {
            Cores::InShards => {
                if let Some(Core { l1d, l1i, l2 }) = shard.core.as_mut() {
                    let l1_hit = if data { l1d } else { l1i }.access(addr);
                    let l2_missed = |a| l2.as_mut().is_some_and(|c| !c.access(a));
                    count(l1_hit, l2_missed, &mut shard.misses, id, addr, data);
                }
            }
            Cores::Shared(cores) => {
                shard.pending.push((id, addr, data));
                if shard.pending.len() >= self.batch {
                    feed(cores, self.ncores, index, shard);
                }
            }
        }
    }
}

/// Feeds vCPU `index`'s queued accesses to its shared core, in order, under one lock,
/// counting their misses in its table.
#[inline(never)]
fn feed(cores: &[CachePadded<Mutex<Core>>], ncores: usize, index: usize, shard: &mut Shard) {
    if shard.pending.is_empty() {
        return;
    }
    // One core (user mode's default): no division.
    let core = &cores[if ncores == 1 { 0 } else { index % ncores }];
    let mut core = lock(core);
    let Core { l1d, l1i, l2 } = &mut *core;
    for (id, addr, data) in shard.pending.drain(..) {
        let l1_hit = if data { &mut *l1d } else { &mut *l1i }.access(addr);
        let l2_missed = |a| l2.as_mut().is_some_and(|c| !c.access(a));
        count(l1_hit, l2_missed, &mut shard.misses, id, addr, data);
    }
}

/// Counts the misses of instruction `id` for one access that L1 hit or missed; on an L1
/// miss, feeds it to L2 (`l2_missed` says whether it missed there; false without L2).
/// Inlined, with the hit (almost every access) returning at once: only a miss looks at
/// the table (growing it, out of line, if `id` is new to this vCPU), as cache.c only
/// touches its per-instruction record on a miss.
#[inline(always)]
fn count(
    l1_hit: bool,
    l2_missed: impl FnOnce(u64) -> bool,
    misses: &mut Misses,
    id: usize,
    addr: u64,
    data: bool,
) {
    if l1_hit {
        return;
    }
    if id >= misses.len() {
        grow(misses, id);
    }
    misses[id][usize::from(!data)] += 1;
    if l2_missed(addr) {
        misses[id][2] += 1;
    }
}

/// Makes room for instruction `id` in a vCPU's miss table (the first miss of each
/// instruction only).
#[cold]
#[inline(never)]
fn grow(misses: &mut Misses, id: usize) {
    misses.resize(id + 1, [0; 3]);
}

/// A geometry from three integer arguments, or cache.c's reason to refuse it.
fn geometry(args: &Args, keys: [&str; 3], default: Geometry, what: &str) -> Result<Geometry> {
    let get = |key: &str, d: i64| -> Result<i64> {
        match args.text(key) {
            None => Ok(d),
            Some(t) => t.trim().parse::<i64>().map_err(|_| {
                Failure::InvalidArgument {
                    key: key.into(),
                    value: t.into(),
                    expected: "a whole number of bytes or ways".into(),
                }
                .into()
            }),
        }
    };
    let g = (
        get(keys[0], default.0)?,
        get(keys[1], default.1)?,
        get(keys[2], default.2)?,
    );
    match config_error(g.0, g.1, g.2) {
        None => Ok(g),
        Some(why) => Err(Failure::InvalidArgument {
            key: keys[2].into(),
            value: format!("{} with {}={} and {}={}", g.2, keys[0], g.0, keys[1], g.1),
            expected: format!("a {what} that can be built: {why}"),
        }
        .into()),
    }
}

impl PerVcpu for CachePlugin {
    type Config = ();
    type Shard = Shard;
    type Total = Total;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        const L2_KEYS: [&str; 3] = ["l2blksize", "l2assoc", "l2cachesize"];
        args.expect_only(&[
            "iblksize",
            "iassoc",
            "icachesize",
            "dblksize",
            "dassoc",
            "dcachesize",
            "limit",
            "cores",
            "l2cachesize",
            "l2blksize",
            "l2assoc",
            "l2",
            "evict",
            "batch",
        ])?;
        let system = !info.is_user_mode();
        if system && cfg!(not(since_api_1)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_hwaddr_phys_addr",
                needs: "6.0",
            }
            .into());
        }
        let l1d = geometry(
            args,
            ["dblksize", "dassoc", "dcachesize"],
            (64, 8, 64 * 8 * 32),
            "dcache",
        )?;
        let l1i = geometry(
            args,
            ["iblksize", "iassoc", "icachesize"],
            (64, 8, 64 * 8 * 32),
            "icache",
        )?;
        let l2_given = L2_KEYS.iter().any(|k| args.text(k).is_some());
        let use_l2 = args.bool("l2", l2_given)?;
        let l2 = if use_l2 {
            Some(geometry(
                args,
                L2_KEYS,
                (64, 16, 16 * 64 * 2048),
                "L2 cache",
            )?)
        } else {
            None
        };
        let policy = match args.choice("evict", "lru", &["lru", "fifo", "rand"])? {
            "fifo" => Policy::Fifo,
            "rand" => Policy::Rand,
            _ => Policy::Lru,
        };
        let vcpus = info
            .system
            .as_ref()
            .map_or(1, |s| s.smp_vcpus.max(1) as u64);
        let ncores = args.u64("cores", vcpus, 1..=4096)? as usize;
        let limit = args.u64("limit", 32, 0..=1 << 20)? as usize;
        let batch = args.u64("batch", 64, 1..=4096)? as usize;
        let mut plugin = CachePlugin {
            l1d,
            l1i,
            l2,
            policy,
            limit,
            ncores,
            batch,
            system,
            cores: Cores::InShards,
            insns: Mutex::default(),
        };
        if !(system && ncores as u64 == vcpus) {
            let cores = (0..ncores)
                .map(|i| CachePadded::new(Mutex::new(plugin.new_core(i as u64))))
                .collect();
            plugin.cores = Cores::Shared(cores);
        }
        Ok((plugin, ()))
    }

    fn new_shard(&self, vcpu: VCPUIndex) -> Result<Shard> {
        let (core, pending) = match self.cores {
            Cores::InShards => (Some(self.new_core(u64::from(vcpu))), Vec::new()),
            Cores::Shared(_) => (None, Vec::with_capacity(self.batch)),
        };
        Ok(Shard {
            core,
            misses: Vec::new(),
            pending,
        })
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            // cache.c fetches from the host address in system mode.
            let addr = if self.system {
                insn.haddr()
            } else {
                insn.vaddr()
            };
            let id = {
                let mut t = self.insns.lock().unwrap_or_else(|p| p.into_inner());
                let next = t.list.len();
                let id = *t.ids.entry(addr).or_insert(next);
                if id == next {
                    t.list.push(Insn {
                        addr,
                        symbol: symbol(&insn),
                        disas: insn.disas()?,
                    });
                }
                id
            };
            insn.on_mem(MemRW::QEMU_PLUGIN_MEM_RW, move |cpu: &mut Vcpu<Self>, a| {
                let hw = a.info.hwaddr(a.vaddr);
                if hw.as_ref().is_some_and(|h| h.is_io()) {
                    return;
                }
                let effective = hw.map_or(a.vaddr, |h| phys_addr(&h));
                cpu.handle().plugin().access(cpu, id, effective, true);
            });
            insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                cpu.handle().plugin().access(cpu, id, addr, false);
            });
        }
        Ok(())
    }

    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        let index = cpu.index() as usize;
        let mut shard = cpu.into_shard();
        // What the vCPU queued reaches its core before the report reads the core.
        if let Cores::Shared(cores) = &self.cores {
            feed(cores, self.ncores, index, &mut shard);
        }
        if total.misses.len() < shard.misses.len() {
            total.misses.resize(shard.misses.len(), [0; 3]);
        }
        for (t, m) in total.misses.iter_mut().zip(&shard.misses) {
            for k in 0..3 {
                t[k] += m[k];
            }
        }
        if let Some(core) = &shard.core {
            let s = total.cores.entry(index % self.ncores).or_default();
            for (k, (a, m)) in stats(&core.l1d, &core.l1i, core.l2.as_ref())
                .into_iter()
                .enumerate()
            {
                s[k].0 += a;
                s[k].1 += m;
            }
        }
        Ok(())
    }

    fn on_exit(&self, total: Total) -> Result<()> {
        let per_core: Vec<CoreStats> = (0..self.ncores)
            .map(|i| match &self.cores {
                Cores::InShards => total.cores.get(&i).copied().unwrap_or_default(),
                Cores::Shared(cores) => {
                    let c = lock(&cores[i]);
                    stats(&c.l1d, &c.l1i, c.l2.as_ref())
                }
            })
            .collect();
        let mut out = String::from(
            "core #, data accesses, data misses, dmiss rate, insn accesses, insn misses, imiss rate",
        );
        if self.l2.is_some() {
            out += ", l2 accesses, l2 misses, l2 miss rate";
        }
        out += "\n";
        for (i, s) in per_core.iter().enumerate() {
            out += &format!("{i:<8}{}", stats_line(s));
        }
        if self.ncores > 1 {
            let mut sum = CoreStats::default();
            for s in &per_core {
                for k in 0..3 {
                    sum[k].0 += s[k].0;
                    sum[k].1 += s[k].1;
                }
            }
            out += &format!("{:<8}{}", "sum", stats_line(&sum));
        }
        out += "\n";
        qemu_plugin_outs(out)?;

        let insns = self.insns.lock().unwrap_or_else(|p| p.into_inner());
        let misses = |id: usize, k: usize| total.misses.get(id).map_or(0, |m| m[k]);
        let mut rep = String::new();
        let lists: &[(usize, &str)] = if self.l2.is_some() {
            &[(0, "data misses"), (1, "fetch misses"), (2, "L2 misses")]
        } else {
            &[(0, "data misses"), (1, "fetch misses")]
        };
        for (n, &(k, title)) in lists.iter().enumerate() {
            if n > 0 {
                rep += "\n";
            }
            rep += &format!("address, {title}, instruction\n");
            let mut ids: Vec<usize> = (0..insns.list.len()).collect();
            // Descending; cache.c leaves ties in its hash table's order, here by address.
            ids.sort_by(|&a, &b| {
                misses(b, k)
                    .cmp(&misses(a, k))
                    .then(insns.list[a].addr.cmp(&insns.list[b].addr))
            });
            for &id in ids.iter().take(self.limit) {
                let insn = &insns.list[id];
                rep += &format!("0x{:x}", insn.addr);
                if let Some(s) = &insn.symbol {
                    rep += &format!(" ({s})");
                }
                rep += &format!(", {}, {}\n", misses(id, k), insn.disas);
            }
        }
        qemu_plugin_outs(rep)
    }
}

per_vcpu!(CachePlugin);
