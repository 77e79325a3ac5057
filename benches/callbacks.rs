//! Criterion benches of the callback paths, driven by the in-process mock QEMU
//! (the `qemu-plugin-mock` crate), so every event goes through the crate's real `extern "C"`
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
//! Run with `cargo bench --bench callbacks` (optionally followed by a
//! criterion filter such as `exec/shard`), then `python3 scripts/plot-benchmarks.py`.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use qemu_plugin::install::{qemu_plugin_install, set_installer};
use qemu_plugin::{
    Args, HasCallbacks, Info, InlineCounter, PerVcpu, PluginId, Register, Result, Syscall,
    SyscallReturn, Translation, TranslationBlock, VCPUIndex, Vcpu, sys,
};
use qemu_plugin_mock::{Block, InstallFn, MockHost, Workload};

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
        let counter = (mode == Mode::Inline)
            .then(InlineCounter::new)
            .transpose()?;
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
// Path 0 (the mock's floor for a callback): a C-style plugin on the raw C API whose
// callback adds to a padded per-vCPU slot, as a C plugin would, with no crate code at all.
// ---------------------------------------------------------------------------------------

/// One vCPU's counter of the raw plugin, alone on its cache line.
#[repr(align(128))]
struct Padded(AtomicU64);

/// Per-vCPU counters of the raw plugin (the benches use at most 8 vCPUs).
static RAW: [Padded; 8] = [const { Padded(AtomicU64::new(0)) }; 8];

/// The raw plugin's exec callback: a plain (non-atomic read-modify-write) add to the
/// executing vCPU's own slot, like `cpu.n += 1`.
extern "C" fn raw_count(vcpu: c_uint, _udata: *mut c_void) {
    let slot = &RAW[vcpu as usize].0;
    slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The dispatch floor's exec callback: nothing at all. What remains of its cost is the
/// mock calling a plugin function through a pointer, as QEMU's generated code does.
extern "C" fn raw_empty(_vcpu: c_uint, _udata: *mut c_void) {}

/// The raw plugin's translation callback: `raw_count` (or, if `EMPTY`, `raw_empty`) on
/// every instruction.
extern "C" fn raw_trans<const EMPTY: bool>(
    _id: sys::qemu_plugin_id_t,
    tb: *mut sys::qemu_plugin_tb,
) {
    let cb: extern "C" fn(c_uint, *mut c_void) = if EMPTY { raw_empty } else { raw_count };
    // SAFETY:
    // - `tb` is the block the host is translating, valid for this callback.
    let n = unsafe { sys::qemu_plugin_tb_n_insns(tb) };
    for i in 0..n {
        // SAFETY:
        // - as above, and `i` is below the block's instruction count; `raw_count` has the
        //   callback signature and ignores its userdata (as does `raw_empty`).
        unsafe {
            let insn = sys::qemu_plugin_tb_get_insn(tb, i);
            sys::qemu_plugin_register_vcpu_insn_exec_cb(
                insn,
                Some(cb),
                sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                std::ptr::null_mut(),
            );
        }
    }
}

unsafe extern "C" fn raw_install<const EMPTY: bool>(
    id: sys::qemu_plugin_id_t,
    _info: *const sys::qemu_info_t,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    for slot in &RAW {
        slot.0.store(0, Ordering::Relaxed);
    }
    // The crate's raw registration takes the id-first shape under every API (under
    // API 7 through an adapter, at translation only; the exec callbacks are direct).
    let _ = qemu_plugin::qemu_plugin_register_vcpu_tb_trans_cb(id, Some(raw_trans::<EMPTY>));
    0
}

fn raw_total() -> u64 {
    RAW.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
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
        Self::with_install(threads, prepare, qemu_plugin_install, args)
    }

    /// As [`Rig::new`], installing with `install` (the crate's entry point, or a raw one).
    fn with_install(threads: u32, prepare: fn(), install: InstallFn, args: &[&str]) -> Self {
        let mut host = MockHost::system(threads);
        prepare();
        assert_eq!(host.install(install, args), 0, "install");
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

/// One of the exec paths: how to install it and how to read what it counted.
struct Path {
    name: &'static str,
    prepare: fn(),
    install: InstallFn,
    args: &'static [&'static str],
    total: fn() -> u64,
}

fn no_prepare() {}

fn shard_total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// The paths of the `exec` group, in the order of the results table.
static PATHS: [Path; 5] = [
    Path {
        name: "mutex",
        prepare: install_mutex,
        install: qemu_plugin_install,
        args: &[],
        total: mutex_total,
    },
    Path {
        name: "atomic",
        prepare: install_atomic,
        install: qemu_plugin_install,
        args: &[],
        total: || SHARED.load(Ordering::Relaxed),
    },
    Path {
        name: "shard",
        prepare: install_bench,
        install: qemu_plugin_install,
        args: &["mode=shard"],
        total: shard_total,
    },
    Path {
        name: "inline",
        prepare: install_bench,
        install: qemu_plugin_install,
        args: &["mode=inline"],
        total: shard_total,
    },
    Path {
        name: "c",
        prepare: no_prepare,
        install: raw_install::<false>,
        args: &[],
        total: raw_total,
    },
];

impl Path {
    fn rig(&self, threads: u32) -> Rig {
        Rig::with_install(threads, self.prepare, self.install, self.args)
    }
}

/// The mock's own dispatch cost: one thread executing blocks whose every instruction
/// carries an empty C callback. No path that calls a plugin function per event can be
/// cheaper than this on the same machine.
fn floor_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    timing(&mut g, 0.7, 3.0);
    g.throughput(Throughput::Elements(1));
    let mut rig = Rig::with_install(1, no_prepare, raw_install::<true>, &[]);
    g.bench_function(BenchmarkId::new("c-empty", 1), |b| {
        b.iter_custom(|iters| rig.time_events(iters))
    });
    rig.host.atexit();
    g.finish();
}

fn exec_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("exec");
    timing(&mut g, 0.7, 3.0);
    for &n in &THREADS {
        g.throughput(Throughput::Elements(u64::from(n)));
        for path in &PATHS {
            let mut rig = path.rig(n);
            g.bench_function(BenchmarkId::new(path.name, n), |b| {
                b.iter_custom(|iters| rig.time_events(iters))
            });
            rig.finish(path.name, path.total);
        }
    }
    g.finish();
}

/// `BENCH_PROFILE=<path> [BENCH_THREADS=n] [BENCH_EVENTS=e]`: run one exec path once,
/// outside criterion, and print ns/event (for `valgrind --tool=callgrind` or a quick look).
fn profile(name: &str) {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let threads = env("BENCH_THREADS", 1) as u32;
    let events = env("BENCH_EVENTS", 10_000_000);
    let path = PATHS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("BENCH_PROFILE: no path {name}"));
    let mut rig = path.rig(threads);
    let t = rig.time_events(events);
    println!(
        "{name} x{threads}: {:.3} ns/event per thread",
        t.as_nanos() as f64 / events as f64
    );
    rig.finish(name, path.total);
}

fn config_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("config");
    timing(&mut g, 0.5, 2.0);
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

/// Sets a group's timing: `warm_up` and `measure` seconds, a fifth of that when the
/// environment has `BENCH_QUICK` (for trying changes, not for the recorded numbers).
fn timing<M: criterion::measurement::Measurement>(
    g: &mut criterion::BenchmarkGroup<'_, M>,
    warm_up: f64,
    measure: f64,
) {
    let scale = if std::env::var_os("BENCH_QUICK").is_some() {
        0.2
    } else {
        1.0
    };
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs_f64(warm_up * scale))
        .measurement_time(Duration::from_secs_f64(measure * scale));
}

/// Blocks translated per timed pass (then flushed, so the next pass translates again).
const POOL_BLOCKS: usize = 256;

fn translate_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    timing(&mut g, 0.5, 2.0);
    g.throughput(Throughput::Elements(1));
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
    timing(&mut g, 0.5, 2.0);
    g.throughput(Throughput::Elements(1));
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

/// `criterion_main!` by hand (the macro's generated `pub fn` would trip `missing_docs`).
fn main() {
    if let Ok(name) = std::env::var("BENCH_PROFILE") {
        return profile(&name);
    }
    let mut c = Criterion::default().configure_from_args();
    floor_benches(&mut c);
    exec_benches(&mut c);
    config_benches(&mut c);
    translate_benches(&mut c);
    syscall_benches(&mut c);
    c.final_summary();
}
