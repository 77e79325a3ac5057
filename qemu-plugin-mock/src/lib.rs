//! An in-process mock QEMU plugin host, for the tests and benches of `qemu-plugin`.
//!
//! It defines QEMU's plugin C API (`qemu_plugin_*`, and the bits of glib it uses)
//! with `#[unsafe(no_mangle)]`, so the crate's real code runs unchanged against it,
//! and drives a plugin the way QEMU does: install, vCPU threads (one OS thread per
//! vCPU), translation of synthetic blocks, execution, syscalls, flushes and exit.
//!
//! The C symbols are process-global, so one process holds one [`MockHost`] at a
//! time: [`MockHost::new`] takes a global lock (tests in one binary serialise) and
//! dropping the host resets every piece of global state.
//!
//! ```text
//! let mut host = MockHost::user();
//! assert_eq!(host.install(my_install, &["inline=on"]), 0);
//! host.spawn_vcpus(4);
//! let w = Workload::new().step(Block::synthetic(0x1000, 10), 1000);
//! let stats = host.run(&w);
//! assert_eq!(stats.insns, 4 * 10 * 1000);
//! host.atexit();
//! ```

// The mock's engine implements the newest API's semantics (scoreboards, conditions,
// memory values, time control); under APIs 0 to 3 the C functions that reach those parts
// are compiled out, and the parts stay, unused.
#![cfg_attr(not(since_api_4), allow(dead_code, unused_imports))]

mod abi;
// The crate's happens-before annotations for helgrind and DRD: the same file, compiled
// here too (this crate cannot depend on `qemu-plugin`, whose exported install symbols
// would then be linked twice into the crate's own unit tests).
#[path = "../../src/annotate.rs"]
#[allow(dead_code)]
mod annotate;
mod block;
mod callback_call;
mod ctx;
mod exclusive;
mod exec;
mod glib;
mod hostinfo;
mod memory;
mod plugin_lock;
mod registry;
mod scoreboard;
mod stderr;
mod sync;
pub mod sys;
mod translate;
mod vcpu;

pub use abi::*;
pub use block::{Block, Insn, MemAccess, Workload};
pub use glib::{
    g_array_free, g_byte_array_append, g_byte_array_free, g_byte_array_new, g_byte_array_set_size,
    g_free, g_malloc, g_malloc0,
};
pub use memory::{MMIO_BASE, MMIO_END, SYSTEM_PHYS_MASK};
pub use registry::qemu_plugin_vcpu_discon_cb_t;
pub use translate::TbSummary;
pub use vcpu::RunStats;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, c_char, c_int};
use std::sync::Arc;

use registry::Callbacks;
use sync::{Mutex, MutexGuard, channel};
use sys::{QEMU_PLUGIN_VERSION, qemu_info_t, qemu_plugin_id_t};
use vcpu::{Cmd, Reply, VcpuHandle};

/// A plugin's `qemu_plugin_install`.
pub type InstallFn = unsafe extern "C" fn(
    qemu_plugin_id_t,
    *const qemu_info_t,
    c_int,
    *const *const c_char,
) -> c_int;

/// The oldest plugin API version QEMU accepts (`QEMU_PLUGIN_MIN_VERSION`).
pub const QEMU_PLUGIN_MIN_VERSION: c_int = 2;

/// Serialises hosts: the C symbols are global.
static HOST_LOCK: Mutex<()> = Mutex::new(());

/// Linux-user or full-system emulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `qemu-x86_64`: one vCPU per guest thread, indexes reused.
    User,
    /// `qemu-system-x86_64 -smp smp_vcpus,maxcpus=max_vcpus`.
    System {
        /// vCPUs created at boot.
        smp_vcpus: u32,
        /// Maximum vCPUs (reported in `qemu_info_t`).
        max_vcpus: u32,
    },
}

/// How the mock host presents itself.
#[derive(Clone, Debug)]
pub struct Config {
    /// Emulation mode.
    pub mode: Mode,
    /// Also print plugin output to stderr.
    pub echo: bool,
    /// `qemu_plugin_path_to_binary` in user mode.
    pub path_to_binary: Option<String>,
    /// `qemu_plugin_start_code` in user mode.
    pub start_code: u64,
    /// `qemu_plugin_end_code` in user mode.
    pub end_code: u64,
    /// `qemu_plugin_entry_code` in user mode.
    pub entry_code: u64,
}

impl Config {
    /// Linux-user defaults: binary `/bin/mock-guest`, code at 0x400000..0x500000.
    pub fn user() -> Self {
        Self {
            mode: Mode::User,
            echo: false,
            path_to_binary: Some("/bin/mock-guest".into()),
            start_code: 0x40_0000,
            end_code: 0x50_0000,
            entry_code: 0x40_1000,
        }
    }

    /// System mode with `smp` vCPUs (max the same).
    pub fn system(smp: u32) -> Self {
        Self {
            mode: Mode::System {
                smp_vcpus: smp,
                max_vcpus: smp,
            },
            path_to_binary: None,
            ..Self::user()
        }
    }
}

/// Kinds of discontinuity (`enum qemu_plugin_discon_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconKind {
    /// `QEMU_PLUGIN_DISCON_INTERRUPT` (1).
    Interrupt,
    /// `QEMU_PLUGIN_DISCON_EXCEPTION` (2).
    Exception,
    /// `QEMU_PLUGIN_DISCON_HOSTCALL` (4).
    Hostcall,
}

/// A linux-user thread-churn workload: `total` guest threads, at most `max_alive`
/// at once, each one init → run `workload` → exit on its own OS thread.
///
/// The first `max_alive` threads (all of them if fewer) are alive together at some
/// point: each waits before its exit until the last of them has initialised. So a churn
/// reaches `max_alive` live vCPUs (and indexes up to `max_alive - 1`) whatever the
/// scheduling; under valgrind, which runs one thread at a time, a short-lived thread
/// would otherwise often be gone before the next one is created. Later threads come
/// and go freely.
#[derive(Clone, Debug)]
pub struct Churn {
    /// Threads to create in total.
    pub total: u64,
    /// Threads alive at once (at least 1).
    pub max_alive: u64,
    /// What each thread executes.
    pub workload: Workload,
}

/// What a churn run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChurnStats {
    /// Threads created (and exited).
    pub vcpus: u64,
    /// Highest vCPU index used.
    pub max_index: u32,
    /// Distinct indexes used.
    pub distinct_indexes: usize,
    /// Total executed by all of them.
    pub run: RunStats,
}

/// The mock QEMU. See the module docs.
pub struct MockHost {
    config: Config,
    vcpus: BTreeMap<u32, VcpuHandle>,
    plugins: Vec<qemu_plugin_id_t>,
    args: Vec<Vec<CString>>,
    exited: bool,
    _lock: MutexGuard<'static, ()>,
}

impl MockHost {
    /// A host with `config`; blocks while another host exists in this process.
    pub fn new(config: Config) -> Self {
        let lock = HOST_LOCK.lock();
        reset_globals();
        memory::set_system(matches!(config.mode, Mode::System { .. }));
        hostinfo::configure(
            hostinfo::Facts {
                path: config
                    .path_to_binary
                    .as_deref()
                    .and_then(|p| CString::new(p).ok()),
                start_code: config.start_code,
                end_code: config.end_code,
                entry_code: config.entry_code,
            },
            config.echo,
        );
        Self {
            config,
            vcpus: BTreeMap::new(),
            plugins: Vec::new(),
            args: Vec::new(),
            exited: false,
            _lock: lock,
        }
    }

    /// A linux-user host ([`Config::user`]).
    pub fn user() -> Self {
        Self::new(Config::user())
    }

    /// A system-mode host with `n` vCPUs ([`Config::system`]); call [`Self::boot`].
    pub fn system(n: u32) -> Self {
        Self::new(Config::system(n))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Installs a plugin like `plugin_load`: calls `install(id, info, argc, argv)`
    /// with `args` ("k=v") and returns its result; a non-zero result unregisters
    /// whatever the plugin registered.
    pub fn install(&mut self, install: InstallFn, args: &[&str]) -> c_int {
        let id = registry::add_plugin();
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.replace('\0', "")).unwrap_or_default())
            .collect();
        let argv: Vec<*const c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
        let mut info = qemu_info_t::default();
        info.version.min = QEMU_PLUGIN_MIN_VERSION;
        info.version.cur = QEMU_PLUGIN_VERSION as c_int;
        match self.config.mode {
            Mode::User => info.target_name = c"x86_64-linux-user".as_ptr(),
            Mode::System {
                smp_vcpus,
                max_vcpus,
            } => {
                info.target_name = c"x86_64-softmmu".as_ptr();
                info.system_emulation = true;
                info.__bindgen_anon_1.system.smp_vcpus = smp_vcpus as c_int;
                info.__bindgen_anon_1.system.max_vcpus = max_vcpus as c_int;
            }
        }
        ctx::set_installing(true);
        // What the plugin prints on stderr joins its output, as QEMU shows both.
        // SAFETY:
        // - `install` is a plugin entry point with QEMU's signature; `info` and `argv`
        //   (argc entries of NUL-terminated strings) live for the duration of the call
        //   (argv strings until the host is dropped, as QEMU keeps them with the plugin).
        let (rc, stderr) =
            stderr::capture(|| unsafe { install(id, &info, argv.len() as c_int, argv.as_ptr()) });
        ctx::set_installing(false);
        hostinfo::outs(&stderr);
        self.args.push(cargs);
        if rc == 0 {
            self.plugins.push(id);
        } else {
            registry::with_ctx(id, |c| c.cbs = Callbacks::default());
            registry::remove_plugin(id);
        }
        exclusive::drain();
        rc
    }

    /// Ids of the plugins installed successfully, in order.
    pub fn plugin_ids(&self) -> &[qemu_plugin_id_t] {
        &self.plugins
    }

    /// Whether plugin `id` has been uninstalled (its uninstall callback has run).
    pub fn is_uninstalled(&self, id: qemu_plugin_id_t) -> bool {
        registry::is_uninstalled(id)
    }

    /// System mode: creates vCPUs `0..smp_vcpus` at once (their init callbacks run
    /// concurrently) and returns their indexes.
    ///
    /// # Panics
    /// In user mode, or if already booted.
    pub fn boot(&mut self) -> Vec<u32> {
        let Mode::System { smp_vcpus, .. } = self.config.mode else {
            panic!("boot() is for system mode")
        };
        assert!(self.vcpus.is_empty(), "already booted");
        let hs: Vec<VcpuHandle> = (0..smp_vcpus).map(|i| VcpuHandle::start(Some(i))).collect();
        for h in hs {
            h.wait();
            self.vcpus.insert(h.index, h);
        }
        self.vcpu_indexes()
    }

    /// Creates `n` vCPUs one after the other (user mode: each gets the highest live
    /// index + 1, like linux-user; system mode: hot-plug after the highest index).
    /// Returns their indexes once each one's init callbacks have run.
    pub fn spawn_vcpus(&mut self, n: u32) -> Vec<u32> {
        self.assert_running();
        (0..n)
            .map(|_| {
                let h = VcpuHandle::spawn(None);
                let i = h.index;
                self.vcpus.insert(i, h);
                i
            })
            .collect()
    }

    /// Indexes of the live vCPUs the host drives (not churn threads).
    pub fn vcpu_indexes(&self) -> Vec<u32> {
        self.vcpus.keys().copied().collect()
    }

    fn vcpu(&self, index: u32) -> &VcpuHandle {
        self.vcpus
            .get(&index)
            .unwrap_or_else(|| panic!("no vCPU {index}"))
    }

    fn assert_running(&self) {
        assert!(!self.exited, "the host has exited (atexit ran)");
    }

    /// Every live vCPU executes `w` in parallel, each on its own thread; returns the
    /// total executed. Deterministic: each vCPU executes `w`'s totals exactly.
    pub fn run(&mut self, w: &Workload) -> RunStats {
        let all = self.vcpu_indexes();
        self.run_on(&all, w)
    }

    /// vCPUs `vcpus` execute `w` in parallel; returns the total executed.
    pub fn run_on(&mut self, vcpus: &[u32], w: &Workload) -> RunStats {
        self.assert_running();
        self.start_runs(vcpus, w);
        self.finish_runs(vcpus)
    }

    /// Sends `w` to every vCPU of `vcpus` without waiting.
    fn start_runs(&self, vcpus: &[u32], w: &Workload) {
        let w = Arc::new(w.clone());
        for &i in vcpus {
            self.vcpu(i).send(Cmd::Run(w.clone()));
        }
    }

    /// Waits for the runs [`Self::start_runs`] sent; returns what they executed.
    fn finish_runs(&self, vcpus: &[u32]) -> RunStats {
        let mut total = RunStats::default();
        for &i in vcpus {
            if let Reply::Ran(s) = self.vcpu(i).wait() {
                total += s;
            }
        }
        exclusive::drain();
        total
    }

    /// Translates `block` on vCPU `vcpu`'s thread (if not cached) and summarises the
    /// instrumentation the plugin recorded.
    pub fn translate_on(&mut self, vcpu: u32, block: &Arc<Block>) -> TbSummary {
        self.assert_running();
        match self.vcpu(vcpu).call(Cmd::Translate(block.clone())) {
            Reply::Translated(s) => s,
            _ => TbSummary::default(),
        }
    }

    /// [`Self::translate_on`] the lowest live vCPU.
    ///
    /// # Panics
    /// If there is no vCPU.
    pub fn translate(&mut self, block: &Arc<Block>) -> TbSummary {
        let v = *self.vcpus.keys().next().expect("translate needs a vCPU");
        self.translate_on(v, block)
    }

    fn event(&mut self, vcpu: u32, cmd: Cmd) {
        self.assert_running();
        self.vcpu(vcpu).call(cmd);
        exclusive::drain();
    }

    /// A syscall on vCPU `vcpu`: syscall callbacks, then syscall-return callbacks.
    pub fn syscall(&mut self, vcpu: u32, num: i64, args: [u64; 8], ret: i64) {
        self.syscalls(vcpu, 1, num, args, ret);
    }

    /// `count` syscalls in a row on vCPU `vcpu`, each exactly like [`Self::syscall`],
    /// delivered by one command to the vCPU thread (so a bench measures the callbacks,
    /// not the host-to-vCPU round trip).
    pub fn syscalls(&mut self, vcpu: u32, count: u64, num: i64, args: [u64; 8], ret: i64) {
        self.event(
            vcpu,
            Cmd::Syscall {
                num,
                args,
                ret,
                count,
            },
        );
    }

    /// vCPU `vcpu` goes idle (idle callbacks).
    pub fn idle(&mut self, vcpu: u32) {
        self.event(vcpu, Cmd::Idle);
    }

    /// vCPU `vcpu` resumes (resume callbacks).
    pub fn resume(&mut self, vcpu: u32) {
        self.event(vcpu, Cmd::Resume);
    }

    /// A discontinuity on vCPU `vcpu` from `from_pc` to `to_pc`.
    pub fn discon(&mut self, vcpu: u32, kind: DisconKind, from_pc: u64, to_pc: u64) {
        let (bit, ty) = match kind {
            DisconKind::Interrupt => (0, 1),
            DisconKind::Exception => (1, 2),
            DisconKind::Hostcall => (2, 4),
        };
        self.event(
            vcpu,
            Cmd::Discon {
                bit,
                ty,
                from: from_pc,
                to: to_pc,
            },
        );
    }

    /// Flushes every TB with all vCPUs stopped, then calls the flush callbacks.
    pub fn flush(&mut self) {
        let _stopped = exclusive::start_exclusive();
        translate::flush_locked();
    }

    /// vCPU `vcpu` exits (exit callbacks on its thread); its index is free for reuse
    /// once this returns.
    pub fn exit_vcpu(&mut self, vcpu: u32) {
        let h = self
            .vcpus
            .remove(&vcpu)
            .unwrap_or_else(|| panic!("no vCPU {vcpu}"));
        h.exit();
        exclusive::drain();
    }

    /// Linux-user thread churn: creates `spec.total` vCPUs, at most `spec.max_alive`
    /// alive at once (plus the host's own vCPUs), each on its own thread.
    pub fn churn(&mut self, spec: &Churn) -> ChurnStats {
        self.assert_running();
        let w = Arc::new(spec.workload.clone());
        let first = spec.max_alive.max(1).min(spec.total);
        let gate = Arc::new(sync::Gate::new(first));
        let (done_tx, done_rx) = channel();
        let mut joins = std::collections::VecDeque::new();
        let (mut created, mut alive) = (0u64, 0u64);
        let mut stats = ChurnStats::default();
        let mut seen = BTreeSet::new();
        while created < spec.total || alive > 0 {
            if created < spec.total && alive < spec.max_alive.max(1) {
                let g = (created < first).then(|| gate.clone());
                joins.push_back(vcpu::spawn_churn(w.clone(), done_tx.clone(), g));
                created += 1;
                alive += 1;
                continue;
            }
            let Ok((index, run)) = done_rx.recv() else {
                break;
            };
            alive -= 1;
            stats.vcpus += 1;
            stats.max_index = stats.max_index.max(index);
            seen.insert(index);
            stats.run += run;
            // Reap finished threads so thousands of cycles do not pile up.
            while joins
                .front()
                .is_some_and(|j: &std::thread::JoinHandle<()>| j.is_finished())
            {
                if let Some(j) = joins.pop_front() {
                    let _ = j.join();
                }
            }
        }
        for j in joins {
            let _ = j.join();
        }
        stats.distinct_indexes = seen.len();
        exclusive::drain();
        stats
    }

    /// Ends the run like QEMU. User mode (`qemu_plugin_user_exit`): stop the world,
    /// unregister every callback except atexit, flush, resume, then call atexit.
    /// System mode: stop every vCPU, then call atexit. No further runs are allowed.
    pub fn atexit(&mut self) {
        self.assert_running();
        self.exited = true;
        let stopped = exclusive::start_exclusive();
        if self.config.mode == Mode::User {
            registry::for_each_mut(|c| {
                *c = Callbacks {
                    atexit: c.atexit,
                    ..Callbacks::default()
                }
            });
            translate::flush_locked();
            drop(stopped);
            call_atexit();
        } else {
            call_atexit();
            drop(stopped);
        }
    }

    /// System mode: device code on vCPU `exiter` calls `exit()` (as `isa-debug-exit` or
    /// Arm semihosting `SYS_EXIT` do) while `runners` execute `w`, so QEMU's atexit runs
    /// on `exiter`'s thread with no vCPU stopped. The exit comes once `ready()` holds
    /// (polled while the runners run), and this returns once atexit has returned and the
    /// runners have finished `w`; it returns what they executed. No further runs.
    pub fn exit_from_vcpu(
        &mut self,
        exiter: u32,
        runners: &[u32],
        w: &Workload,
        ready: impl Fn() -> bool,
    ) -> RunStats {
        self.assert_running();
        assert!(
            self.config.mode != Mode::User,
            "exit_from_vcpu models a system-mode device exit"
        );
        assert!(
            !runners.contains(&exiter),
            "the exiting vCPU cannot also run"
        );
        self.start_runs(runners, w);
        while !ready() {
            std::thread::yield_now();
        }
        self.exited = true;
        self.vcpu(exiter).call(Cmd::AtExit);
        self.finish_runs(runners)
    }

    /// Everything the plugin printed with `qemu_plugin_outs`.
    pub fn output(&self) -> String {
        hostinfo::output()
    }

    /// Takes and clears the captured output.
    pub fn take_output(&mut self) -> String {
        hostinfo::take_output()
    }

    /// API misuse the mock detected (where QEMU would assert or behave undefinedly).
    pub fn violations(&self) -> Vec<String> {
        hostinfo::violations()
    }

    /// `qemu_plugin_num_vcpus` as the plugin sees it.
    pub fn num_vcpus(&self) -> u32 {
        scoreboard::num_vcpus()
    }

    /// Entries per scoreboard (QEMU's `scoreboard_alloc_size`: 16, doubling).
    pub fn scoreboard_capacity(&self) -> usize {
        scoreboard::capacity()
    }

    /// Number of TB flushes so far (explicit, growth, uninstall, exit).
    pub fn flushes(&self) -> u64 {
        translate::generation()
    }

    /// How many installed plugins have a `tb_trans` callback registered.
    pub fn translation_hooks(&self) -> usize {
        registry::collect(|_, c| c.tb_trans.map(|_| ())).len()
    }

    /// Number of translations so far (each runs every `tb_trans` callback).
    pub fn translations(&self) -> u64 {
        translate::translations()
    }

    /// The virtual time last set with `qemu_plugin_update_ns` (system mode).
    pub fn virtual_time_ns(&self) -> Option<i64> {
        hostinfo::time()
    }

    /// Writes guest physical memory (mapping pages). In user mode physical =
    /// virtual; in system mode virtual `v` maps to `v & SYSTEM_PHYS_MASK`.
    pub fn write_phys(&mut self, addr: u64, data: &[u8]) {
        memory::map_write(addr, data);
    }

    /// Reads guest physical memory; None if unmapped.
    pub fn read_phys(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        memory::read(addr, len)
    }

    /// The bytes of register `name` of vCPU `vcpu` (x86-64 names: rax..r15, rip, eflags).
    pub fn register(&self, vcpu: u32, name: &str) -> Option<Vec<u8>> {
        let i = memory::REGISTERS
            .iter()
            .position(|(n, _)| n.to_bytes() == name.as_bytes())?;
        let v = vcpu::get(vcpu)?;
        let regs = v.regs.lock();
        Some(regs[i].clone())
    }
}

/// What libc's `exit()` does when plugin code calls it from inside a callback (as QEMU's
/// `contrib/plugins/stoptrigger.c` does): QEMU's atexit handler runs every plugin's atexit
/// callback on the calling thread, without stopping the other vCPUs. Unlike `exit()` this
/// returns, so that a test can look at what was reported; start no further runs after it.
pub fn exit_from_callback() {
    call_atexit();
}

fn call_atexit() {
    for (id, f) in registry::collect(|id, c| c.atexit.map(|f| (id, f))) {
        // SAFETY:
        // - plugin's atexit callback with the userdata it registered, as QEMU calls it.
        ctx::outside_exec(|| unsafe { callback_call::call_atexit(&f, id) });
    }
}

fn reset_globals() {
    exclusive::reset();
    translate::reset();
    scoreboard::reset();
    registry::reset();
    vcpu::reset();
    memory::reset();
    hostinfo::reset();
}

impl Drop for MockHost {
    fn drop(&mut self) {
        for (_, h) in std::mem::take(&mut self.vcpus) {
            h.stop();
        }
        reset_globals();
    }
}

// The mock's own tests are plugins written by hand against the C API of APIs 4 and 5
// (the plugin id first in every lifecycle callback, scoreboards, memory values). Under
// the other APIs the mock is exercised through the crate's test suite, which is
// written once for every API.
#[cfg(all(test, since_api_4, not(since_api_6)))]
mod tests;
