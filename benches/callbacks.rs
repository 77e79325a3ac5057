//! Criterion benches of the callback paths, driven by the in-process mock QEMU
//! (`qemu_plugin::mock`), so every event goes through the crate's real `extern "C"`
//! trampolines exactly as QEMU would call them.
//!
//! Groups (results and discussion in `docs/benchmarks.md`):
//! - `exec/{mutex,atomic,shard,inline}/{1,2,4,8}`: one event per executed guest
//!   instruction, on 1, 2, 4 and 8 vCPU threads. One criterion iteration is one event on
//!   *each* thread, so the reported time is the wall time per event per thread and
//!   criterion's throughput (elements = threads) is the aggregate event rate.
//! - `translate/{no_capture,capture}`: translating blocks and registering one exec
//!   closure per instruction; one iteration is one translated instruction.
//! - `syscall/{batched,roundtrip}`: the `PerVcpu::syscall` and `syscall_return` hooks;
//!   one iteration is one syscall (both hooks).
//! - `config/{none,read}/{1,2}`: the shard path with and without `cpu.config()` in the
//!   closure; iterations as in `exec`.
//!
//! Run with `cargo bench --features mock --bench callbacks` (optionally followed by a
//! criterion filter such as `exec/shard`), then `python3 scripts/plot-benchmarks.py`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use qemu_plugin::install::{qemu_plugin_install, set_installer};
use qemu_plugin::mock::{Block, MockHost, Workload};
use qemu_plugin::{
    Args, HasCallbacks, Info, InlineCounter, PerVcpu, PluginId, Register, Result, Syscall,
    SyscallReturn, Translation, TranslationBlock, VCPUIndex, Vcpu,
};

/// Instructions per synthetic guest block (one event each).
const BLOCK_INSNS: usize = 32;
/// vCPU thread counts of the scaling benches (this machine has 2 cores).
const THREADS: [u32; 4] = [1, 2, 4, 8];

// ---------------------------------------------------------------------------------------
// Path 1: the 10.1-style compat plugin, state behind one global Mutex.
// ---------------------------------------------------------------------------------------

/// The plugin's state, behind one global lock as 10.1-style plugins keep it (an exec
/// closure cannot reach the `PLUGIN` instance itself: `Box<dyn Plugin>` has no downcast).
static MUTEX_STATE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

struct MutexPlugin;

impl HasCallbacks for MutexPlugin {
    fn on_vcpu_init(&mut self, _id: PluginId, vcpu: VCPUIndex) -> Result<()> {
        let mut counts = MUTEX_STATE.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() <= vcpu as usize {
            counts.resize(vcpu as usize + 1, 0);
        }
        Ok(())
    }

    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock<'_>,
    ) -> Result<()> {
        for insn in tb.instructions() {
            insn.register_execute_callback(|vcpu| {
                let mut counts = MUTEX_STATE.lock().unwrap_or_else(PoisonError::into_inner);
                counts[vcpu as usize] += 1;
            });
        }
        Ok(())
    }
}

impl Register for MutexPlugin {}

fn install_mutex() {
    MUTEX_STATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    qemu_plugin::plugin::register_plugin(MutexPlugin);
    set_installer("bench_mutex", qemu_plugin::plugin::install);
}

fn mutex_total() -> u64 {
    MUTEX_STATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .sum()
}

// ---------------------------------------------------------------------------------------
// Path 2: a compat exec closure doing `fetch_add` on one shared atomic.
// ---------------------------------------------------------------------------------------

static SHARED: AtomicU64 = AtomicU64::new(0);

struct AtomicPlugin;

impl HasCallbacks for AtomicPlugin {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock<'_>,
    ) -> Result<()> {
        for insn in tb.instructions() {
            insn.register_execute_callback(|_| {
                SHARED.fetch_add(1, Ordering::Relaxed);
            });
        }
        Ok(())
    }
}

impl Register for AtomicPlugin {}

fn install_atomic() {
    SHARED.store(0, Ordering::Relaxed);
    qemu_plugin::plugin::register_plugin(AtomicPlugin);
    set_installer("bench_atomic", qemu_plugin::plugin::install);
}

// ---------------------------------------------------------------------------------------
// Paths 3 and 4, and the config/syscall/translation benches: `PerVcpu` plugins.
// ---------------------------------------------------------------------------------------

/// What the last `PerVcpu` plugin's `on_exit` received.
static TOTAL: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Count {
    n: u64,
    last_pc: u64,
}

/// How [`Bench`] instruments each instruction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Path 3: `insn.on_exec(|cpu| cpu.n += 1)` (a capture-free closure).
    Shard,
    /// Path 4: `insn.inline_add(counter, 1)`.
    Inline,
    /// The shard path reading `cpu.config()` in the closure.
    ConfigRead,
    /// A closure capturing the instruction's address (one allocation per instruction).
    Capture,
}

struct Bench {
    mode: Mode,
    counter: Option<InlineCounter>,
}

impl PerVcpu for Bench {
    /// The increment the `ConfigRead` closure adds (always 1).
    type Config = u64;
    type Shard = Count;
    type Total = u64;

    fn new(args: &Args, _info: &Info) -> Result<(Self, u64)> {
        let mode = match args.choice("mode", "shard", &["shard", "inline", "config", "capture"])? {
            "inline" => Mode::Inline,
            "config" => Mode::ConfigRead,
            "capture" => Mode::Capture,
            _ => Mode::Shard,
        };
        let counter = (mode == Mode::Inline).then(InlineCounter::new);
        Ok((Bench { mode, counter }, 1))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Count> {
        Ok(Count::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            match self.mode {
                Mode::Shard => insn.on_exec(|cpu: &mut Vcpu<Self>| cpu.n += 1),
                Mode::Inline => {
                    if let Some(c) = &self.counter {
                        insn.inline_add(c, 1);
                    }
                }
                Mode::ConfigRead => insn.on_exec(|cpu: &mut Vcpu<Self>| {
                    let step = *cpu.config();
                    cpu.n += step;
                }),
                Mode::Capture => {
                    let pc = insn.vaddr();
                    insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                        cpu.n += 1;
                        cpu.last_pc = pc;
                    });
                }
            }
        }
        Ok(())
    }

    fn syscall(&self, cpu: &mut Vcpu<Self>, call: &Syscall) -> Result<()> {
        cpu.n += 1;
        cpu.last_pc = call.args[0];
        Ok(())
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        cpu.last_pc ^= ret.ret as u64;
        Ok(())
    }

    fn merge(&self, total: &mut u64, cpu: Vcpu<Self>) -> Result<()> {
        let inline = self.counter.map_or(0, |c| cpu.take_inline(&c));
        *total += cpu.n + inline;
        Ok(())
    }

    fn on_exit(&self, total: u64) -> Result<()> {
        TOTAL.store(total, Ordering::Relaxed);
        Ok(())
    }
}

fn install_bench() {
    TOTAL.store(0, Ordering::Relaxed);
    set_installer("bench", qemu_plugin::runtime::install::<Bench>);
}

// ---------------------------------------------------------------------------------------
// The rig: a booted mock machine with a pre-translated block.
// ---------------------------------------------------------------------------------------

/// A booted system-mode host running one plugin, and the block its vCPUs execute.
struct Rig {
    host: MockHost,
    block: Arc<Block>,
    threads: u32,
    /// Events executed on all vCPUs so far (the plugin must count exactly these).
    events: u64,
}

impl Rig {
    /// Boots `threads` vCPUs with the plugin `prepare` registers, installed with `args`,
    /// and translates the block (by running it once on every vCPU).
    fn new(threads: u32, prepare: fn(), args: &[&str]) -> Self {
        let mut host = MockHost::system(threads);
        prepare();
        assert_eq!(host.install(qemu_plugin_install, args), 0, "install");
        host.boot();
        let mut rig = Rig {
            host,
            block: Arc::new(Block::synthetic(0x40_1000, BLOCK_INSNS)),
            threads,
            events: 0,
        };
        rig.run(1);
        rig
    }

    /// Every vCPU executes the block `reps` times; returns the wall time.
    fn run(&mut self, reps: u64) -> Duration {
        let mut w = Workload::new();
        w.push_shared(self.block.clone(), reps);
        let start = Instant::now();
        let stats = self.host.run(&w);
        let elapsed = start.elapsed();
        let expected = reps * BLOCK_INSNS as u64 * u64::from(self.threads);
        assert_eq!(stats.insns, expected);
        self.events += expected;
        elapsed
    }

    /// Wall time for `iters` events on each vCPU (rounded up to whole blocks, and the
    /// time scaled back to `iters`).
    fn time_events(&mut self, iters: u64) -> Duration {
        let reps = iters.div_ceil(BLOCK_INSNS as u64).max(1);
        let elapsed = self.run(reps);
        elapsed.mul_f64(iters as f64 / (reps * BLOCK_INSNS as u64) as f64)
    }

    /// Runs atexit and checks that the plugin counted `total()` == events executed.
    fn finish(mut self, what: &str, total: impl FnOnce() -> u64) {
        self.host.atexit();
        assert_eq!(total(), self.events, "{what}: events counted");
        assert!(
            self.host.violations().is_empty(),
            "{:?}",
            self.host.violations()
        );
    }
}

fn exec_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("exec");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3));
    for &n in &THREADS {
        g.throughput(Throughput::Elements(u64::from(n)));

        let mut rig = Rig::new(n, install_mutex, &[]);
        g.bench_function(BenchmarkId::new("mutex", n), |b| {
            b.iter_custom(|iters| rig.time_events(iters))
        });
        rig.finish("mutex", mutex_total);

        let mut rig = Rig::new(n, install_atomic, &[]);
        g.bench_function(BenchmarkId::new("atomic", n), |b| {
            b.iter_custom(|iters| rig.time_events(iters))
        });
        rig.finish("atomic", || SHARED.load(Ordering::Relaxed));

        let mut rig = Rig::new(n, install_bench, &["mode=shard"]);
        g.bench_function(BenchmarkId::new("shard", n), |b| {
            b.iter_custom(|iters| rig.time_events(iters))
        });
        rig.finish("shard", || TOTAL.load(Ordering::Relaxed));

        let mut rig = Rig::new(n, install_bench, &["mode=inline"]);
        g.bench_function(BenchmarkId::new("inline", n), |b| {
            b.iter_custom(|iters| rig.time_events(iters))
        });
        rig.finish("inline", || TOTAL.load(Ordering::Relaxed));
    }
    g.finish();
}

fn config_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("config");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [1u32, 2] {
        g.throughput(Throughput::Elements(u64::from(n)));
        for (name, mode) in [("none", "mode=shard"), ("read", "mode=config")] {
            let mut rig = Rig::new(n, install_bench, &[mode]);
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| rig.time_events(iters))
            });
            rig.finish(name, || TOTAL.load(Ordering::Relaxed));
        }
    }
    g.finish();
}

/// Blocks translated per timed pass (then flushed, so the next pass translates again).
const POOL_BLOCKS: usize = 256;

fn translate_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    // Built once: the cache is keyed by block, and a flush makes every block new again.
    let pool: Vec<Arc<Block>> = (0..POOL_BLOCKS)
        .map(|i| Arc::new(Block::synthetic(0x40_0000 + 0x1000 * i as u64, BLOCK_INSNS)))
        .collect();
    let mut pass = Workload::new();
    for b in &pool {
        pass.push_shared(b.clone(), 1);
    }
    let per_pass = (POOL_BLOCKS * BLOCK_INSNS) as u64;
    for (name, mode) in [("no_capture", "mode=shard"), ("capture", "mode=config")] {
        let mode = if name == "capture" {
            "mode=capture"
        } else {
            mode
        };
        let mut host = MockHost::system(1);
        install_bench();
        assert_eq!(host.install(qemu_plugin_install, &[mode]), 0);
        host.boot();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let passes = iters.div_ceil(per_pass).max(1);
                let mut total = Duration::ZERO;
                for _ in 0..passes {
                    let before = host.translations();
                    let start = Instant::now();
                    host.run(&pass);
                    total += start.elapsed();
                    assert_eq!(host.translations() - before, POOL_BLOCKS as u64);
                    host.flush();
                }
                total.mul_f64(iters as f64 / (passes * per_pass) as f64)
            })
        });
        host.atexit();
    }
    g.finish();
}

fn syscall_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("syscall");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let mut host = MockHost::user();
    install_bench();
    assert_eq!(host.install(qemu_plugin_install, &["mode=shard"]), 0);
    let vcpu = host.spawn_vcpus(1)[0];
    let args = [1, 2, 3, 4, 5, 6, 7, 8];
    let mut calls = 0u64;
    g.bench_function("batched", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            host.syscalls(vcpu, iters, black_box(64), args, 0);
            calls += iters;
            start.elapsed()
        })
    });
    g.bench_function("roundtrip", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                host.syscall(vcpu, black_box(64), args, 0);
            }
            calls += iters;
            start.elapsed()
        })
    });
    host.atexit();
    assert_eq!(TOTAL.load(Ordering::Relaxed), calls, "syscalls counted");
    g.finish();
}

criterion_group!(
    benches,
    exec_benches,
    config_benches,
    translate_benches,
    syscall_benches
);
criterion_main!(benches);
