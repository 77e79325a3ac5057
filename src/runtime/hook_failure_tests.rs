//! A failure in user code at every hook of the per-vCPU runtime, driven through the mock
//! host. One plugin type, [`Faulty`], fails on purpose where its arguments say (`at=`)
//! and how they say (`how=panic|err`), while four vCPUs run a workload that reaches every
//! hook. For each (hook, how) the test checks that:
//!
//! - nothing escapes: the test thread that drives the host survives;
//! - the failure is reported exactly once, and the plugin prints nothing else: the one
//!   line has the message, the callback it happened in and, for a panic, this file's
//!   line of the `panic!`;
//! - the plugin is uninstalled, except for a failure at QEMU's exit (`merge` of the
//!   remaining shards, `on_exit`): QEMU is ending the run, so the crate does not ask, and
//!   says nothing about uninstalling;
//! - every vCPU runs its workload to the end, and every event the host delivers returns;
//! - after the failure no hook runs user code again (exec closures already in translated
//!   blocks excepted, until QEMU's uninstall discards those blocks), so `on_exit` never
//!   sees a total that a failed `merge` may have left half-updated, and after the
//!   uninstall nothing runs at all.
//!
//! A failure in [`PerVcpu::new`] cannot uninstall anything: the install is refused with
//! one line instead (QEMU then exits without running the guest).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::callbacks::trampoline::{Hook, guard};
use crate::runtime::{self, PerVcpu, Translation, Vcpu};
use crate::{Args, DisconTypes, Discontinuity, Error, Info, Result, Syscall, SyscallReturn};
use crate::{VCPUIndex, qemu_plugin_outs};
use qemu_plugin_mock::{Block, DisconKind, MockHost, Workload};

/// Where [`Faulty`] fails: a hook of [`PerVcpu`], or a place one of them is called from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    /// `PerVcpu::new`, at install.
    New,
    /// `PerVcpu::new_shard`, at vCPU 1's init.
    Init,
    /// `PerVcpu::merge` of the shard of a vCPU that exits (vCPU 3).
    Exit,
    /// `PerVcpu::translate`, every call.
    Translate,
    /// An exec closure, at vCPU 1's 500th instruction.
    Exec,
    /// `PerVcpu::syscall` on vCPU 1.
    Syscall,
    /// `PerVcpu::syscall_return` on vCPU 1.
    SyscallRet,
    /// `PerVcpu::idle` on vCPU 1.
    Idle,
    /// `PerVcpu::resume` on vCPU 1.
    Resume,
    /// `PerVcpu::discontinuity` on vCPU 1.
    Discon,
    /// `PerVcpu::merge` at QEMU's exit, every call.
    Merge,
    /// `PerVcpu::on_exit`.
    OnExit,
}

const ALL: [Where; 12] = [
    Where::New,
    Where::Init,
    Where::Exit,
    Where::Translate,
    Where::Exec,
    Where::Syscall,
    Where::SyscallRet,
    Where::Idle,
    Where::Resume,
    Where::Discon,
    Where::Merge,
    Where::OnExit,
];

/// The `at=` values: every [`Where`] by name, and `none`.
const NAMES: [&str; 13] = [
    "none",
    "new",
    "init",
    "exit",
    "translate",
    "exec",
    "syscall",
    "syscall_ret",
    "idle",
    "resume",
    "discon",
    "merge",
    "on_exit",
];

impl Where {
    fn name(self) -> &'static str {
        NAMES[self as usize + 1]
    }

    fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|w| w.name() == name)
    }

    /// The callback the crate's report names (`Hook::name`).
    fn callback(self) -> &'static str {
        match self {
            Where::New => "install",
            Where::Init => "vcpu_init",
            Where::Exit => "vcpu_exit",
            Where::Translate => "translate",
            Where::Exec => "exec",
            Where::Syscall => "syscall",
            Where::SyscallRet => "syscall_return",
            Where::Idle => "vcpu_idle",
            Where::Resume => "vcpu_resume",
            Where::Discon => "discontinuity",
            // Both run inside QEMU's atexit callback.
            Where::Merge | Where::OnExit => "on_exit",
        }
    }

    /// Whether the crate uninstalls the plugin after a failure here: not at QEMU's exit,
    /// where QEMU ends the run anyway (and in user mode would queue the request on a vCPU
    /// that never runs again).
    fn uninstalls(self) -> bool {
        !matches!(self, Where::Merge | Where::OnExit)
    }

    /// Idle and resume are system-mode events; everything else runs in user mode, where
    /// guest threads exit and make syscalls.
    fn system_mode(self) -> bool {
        matches!(self, Where::Idle | Where::Resume)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Panic,
    Err,
}

impl How {
    fn name(self) -> &'static str {
        match self {
            How::Panic => "panic",
            How::Err => "err",
        }
    }

    /// The word the crate's report starts with.
    fn reported_as(self) -> &'static str {
        match self {
            How::Panic => "panic",
            How::Err => "error",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    at: Option<Where>,
    how: How,
}

/// The vCPU whose per-vCPU hooks fail.
const FAULTY_VCPU: VCPUIndex = 1;
/// Its instruction at which an exec closure panics.
const EXEC_FAULT_AT: u64 = 500;

/// Calls of user code, per [`Where`].
static CALLS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
/// Calls of user code that began after the plugin failed, per [`Where`].
static AFTER: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
/// How many times the plugin failed on purpose.
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// The line of the `panic!` below.
static PANIC_LINE: AtomicU32 = AtomicU32::new(0);
/// Set by the test just before QEMU's exit: `merge` is then a final merge.
static FINAL_MERGES: AtomicBool = AtomicBool::new(false);
/// What `on_exit` received.
static TOTAL: Mutex<Option<u64>> = Mutex::new(None);

fn reset_statics() {
    for c in CALLS.iter().chain(AFTER.iter()) {
        c.store(0, Ordering::Relaxed);
    }
    FAULTS.store(0, Ordering::Relaxed);
    FINAL_MERGES.store(false, Ordering::Relaxed);
    *TOTAL.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

fn calls() -> [u64; 12] {
    std::array::from_fn(|i| CALLS[i].load(Ordering::Relaxed))
}

/// Counts instructions per vCPU; fails where its plan says.
struct Faulty {
    plan: Plan,
}

impl Faulty {
    /// User code at `here` was called; fails if the plan says so and `fault` holds.
    fn reached(plan: Plan, here: Where, fault: bool) -> Result<()> {
        CALLS[here as usize].fetch_add(1, Ordering::Relaxed);
        if FAULTS.load(Ordering::Relaxed) > 0 {
            AFTER[here as usize].fetch_add(1, Ordering::Relaxed);
        }
        if plan.at != Some(here) || !fault {
            return Ok(());
        }
        FAULTS.fetch_add(1, Ordering::Relaxed);
        match plan.how {
            How::Panic => {
                PANIC_LINE.store(line!() + 1, Ordering::Relaxed);
                panic!("deliberate panic in {}", here.name())
            }
            How::Err => Err(Error::msg(format!("deliberate error in {}", here.name()))),
        }
    }

    fn at(&self, here: Where, fault: bool) -> Result<()> {
        Self::reached(self.plan, here, fault)
    }
}

impl PerVcpu for Faulty {
    type Config = ();
    type Shard = u64;
    type Total = u64;
    const DISCONTINUITIES: DisconTypes = DisconTypes::EXCEPTION;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["at", "how"])?;
        let plan = Plan {
            at: Where::from_name(args.choice("at", "none", &NAMES)?),
            how: match args.choice("how", "panic", &["panic", "err"])? {
                "err" => How::Err,
                _ => How::Panic,
            },
        };
        if plan.at == Some(Where::Exec) && plan.how == How::Err {
            return Err(Error::msg(
                "exec closures return nothing: at=exec needs how=panic",
            ));
        }
        Self::reached(plan, Where::New, true)?;
        Ok((Faulty { plan }, ()))
    }

    fn new_shard(&self, vcpu: VCPUIndex) -> Result<u64> {
        self.at(Where::Init, vcpu == FAULTY_VCPU)?;
        Ok(0)
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        self.at(Where::Translate, true)?;
        let plan = self.plan;
        for insn in tb.instructions() {
            insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                **cpu += 1;
                let fault = cpu.index() == FAULTY_VCPU && **cpu == EXEC_FAULT_AT;
                // `new` refuses at=exec with how=err, so this can only panic.
                let _ = Self::reached(plan, Where::Exec, fault);
            });
        }
        Ok(())
    }

    fn syscall(&self, cpu: &mut Vcpu<Self>, _call: &Syscall) -> Result<()> {
        self.at(Where::Syscall, cpu.index() == FAULTY_VCPU)
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, _ret: &SyscallReturn) -> Result<()> {
        self.at(Where::SyscallRet, cpu.index() == FAULTY_VCPU)
    }

    fn idle(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        self.at(Where::Idle, cpu.index() == FAULTY_VCPU)
    }

    fn resume(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        self.at(Where::Resume, cpu.index() == FAULTY_VCPU)
    }

    fn discontinuity(&self, cpu: &mut Vcpu<Self>, _event: &Discontinuity) -> Result<()> {
        self.at(Where::Discon, cpu.index() == FAULTY_VCPU)
    }

    fn merge(&self, total: &mut u64, cpu: Vcpu<Self>) -> Result<()> {
        let here = if FINAL_MERGES.load(Ordering::Relaxed) {
            Where::Merge
        } else {
            Where::Exit
        };
        self.at(here, true)?;
        *total += *cpu;
        Ok(())
    }

    fn on_exit(&self, total: u64) -> Result<()> {
        self.at(Where::OnExit, true)?;
        *TOTAL.lock().unwrap_or_else(|p| p.into_inner()) = Some(total);
        qemu_plugin_outs(format!("faulty: total {total}\n"))
    }
}

fn install(host: &mut MockHost, at: Option<Where>, how: How) -> i32 {
    reset_statics();
    crate::install::set_installer("faulty", runtime::install::<Faulty>);
    let at = format!("at={}", at.map_or("none", Where::name));
    let how = format!("how={}", how.name());
    host.install(crate::install::qemu_plugin_install, &[&at, &how])
}

/// 2,000 instructions per vCPU.
fn workload() -> Workload {
    Workload::new()
        .step(Block::synthetic(0x40_1000, 10), 100)
        .step(Block::synthetic(0x40_2000, 25), 40)
}

/// What a run of the host did.
struct Driven {
    /// Instructions executed by all vCPUs, as the host counted them.
    insns: u64,
    /// What the workload makes them execute.
    expected_insns: u64,
    /// The user-code calls when the host first saw the plugin uninstalled.
    at_uninstall: Option<[u64; 12]>,
}

/// Runs four vCPUs through every hook of `at`'s mode, then QEMU's exit.
///
/// User mode: 4 threads start (init), run the workload (translate, exec), each makes a
/// syscall (syscall, syscall return) and takes an exception (discontinuity); vCPU 3
/// exits (merge at exit); the other three run the workload again and vCPU 0 makes one
/// more syscall; then QEMU exits (merge of the rest, on_exit).
/// System mode: 4 vCPUs boot, run, each goes idle and resumes, they run again, QEMU exits.
fn drive(host: &mut MockHost, system: bool) -> Driven {
    let id = host.plugin_ids()[0];
    let w = workload();
    let n = w.insns_per_vcpu();
    let mut d = Driven {
        insns: 0,
        expected_insns: 0,
        at_uninstall: None,
    };
    let note = |host: &MockHost, d: &mut Driven| {
        if d.at_uninstall.is_none() && host.is_uninstalled(id) {
            d.at_uninstall = Some(calls());
        }
    };
    if system {
        assert_eq!(host.boot(), [0, 1, 2, 3]);
    } else {
        assert_eq!(host.spawn_vcpus(4), [0, 1, 2, 3]);
    }
    note(host, &mut d);
    d.insns += host.run(&w).insns;
    d.expected_insns += 4 * n;
    note(host, &mut d);
    for v in 0..4 {
        if system {
            host.idle(v);
            note(host, &mut d);
            host.resume(v);
        } else {
            host.syscall(v, 39, [0; 8], 7);
            note(host, &mut d);
            host.discon(v, DisconKind::Exception, 0x40_1004, 0x40_3000);
        }
        note(host, &mut d);
    }
    let live = if system {
        4
    } else {
        host.exit_vcpu(3);
        note(host, &mut d);
        3
    };
    d.insns += host.run(&w).insns;
    d.expected_insns += live * n;
    note(host, &mut d);
    if !system {
        host.syscall(0, 39, [0; 8], 7);
        note(host, &mut d);
    }
    FINAL_MERGES.store(true, Ordering::Relaxed);
    host.atexit();
    d
}

/// Runs one (hook, how) case; panics with what went wrong.
fn check(at: Where, how: How) {
    let mut host = if at.system_mode() {
        MockHost::system(4)
    } else {
        MockHost::user()
    };
    let rc = install(&mut host, Some(at), how);
    let out = host.output();
    let lines: Vec<&str> = out.lines().collect();
    let verb = how.reported_as();
    if at == Where::New {
        assert_ne!(rc, 0, "the install must be refused");
        assert!(host.plugin_ids().is_empty());
        assert_eq!(lines.len(), 1, "one line:\n{out}");
        let expected = match how {
            How::Panic => format!(
                "faulty: in install: panic: deliberate panic in new at src/runtime/hook_failure_tests.rs:{}:",
                PANIC_LINE.load(Ordering::Relaxed)
            ),
            How::Err => "faulty: deliberate error in new".to_string(),
        };
        assert!(lines[0].starts_with(&expected), "{out}");
        // Nothing of the plugin runs afterwards.
        host.spawn_vcpus(2);
        host.run(&workload());
        host.atexit();
        assert_eq!(
            calls()[1..],
            [0; 11],
            "user code ran after a refused install"
        );
        return;
    }
    assert_eq!(rc, 0, "{out}");
    let id = host.plugin_ids()[0];
    let d = drive(&mut host, at.system_mode());

    assert_eq!(
        d.insns, d.expected_insns,
        "every vCPU ran its workload to the end"
    );
    let out = host.output();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line from the plugin:\n{out}");
    let line = lines[0];
    let head = format!("faulty: {verb}: deliberate {verb} in {}", at.name());
    assert!(line.starts_with(&head), "expected `{head}...`, got\n{out}");
    if how == How::Panic {
        let location = format!(
            " at src/runtime/hook_failure_tests.rs:{}:",
            PANIC_LINE.load(Ordering::Relaxed)
        );
        assert!(line.contains(&location), "no `{location}` in\n{out}");
    }
    let callback = format!("(in the {} callback)", at.callback());
    assert!(line.contains(&callback), "no `{callback}` in\n{out}");
    assert_eq!(
        line.ends_with("; uninstalling the plugin, the guest continues"),
        at.uninstalls(),
        "{out}"
    );
    assert_eq!(host.is_uninstalled(id), at.uninstalls());

    let faults = FAULTS.load(Ordering::Relaxed);
    if at == Where::Translate {
        // vCPUs translate concurrently; each may fail before the uninstall stops them.
        assert!((1..=4).contains(&faults), "{faults} faults");
    } else {
        assert_eq!(faults, 1, "the plugin failed once");
    }
    // After the failure, hooks call no user code. Exec closures already translated run
    // until QEMU's uninstall discards their blocks; and while vCPUs run, another one may
    // enter `translate` between the plugin's failure and the crate's report of it.
    let concurrent = matches!(at, Where::Translate | Where::Exec);
    for w in ALL {
        let after = AFTER[w as usize].load(Ordering::Relaxed);
        let allowed = w == Where::Exec || (concurrent && w == Where::Translate);
        assert!(
            allowed || after == 0,
            "{} ran {after} time(s) after the failure",
            w.name()
        );
    }
    // Once QEMU has uninstalled the plugin, nothing of it runs at all.
    if at.uninstalls() {
        let snap = d
            .at_uninstall
            .expect("the uninstall completed during the run");
        assert_eq!(calls(), snap, "user code ran after the uninstall");
    }
    let on_exit = CALLS[Where::OnExit as usize].load(Ordering::Relaxed);
    assert_eq!(on_exit, u64::from(at == Where::OnExit), "on_exit calls");
    assert_eq!(
        *TOTAL.lock().unwrap_or_else(|p| p.into_inner()),
        None,
        "on_exit got no total"
    );
}

/// Every (hook, how): a panic everywhere, an `Err` wherever the hook returns `Result`.
fn cases() -> Vec<(Where, How)> {
    ALL.into_iter()
        .flat_map(|w| [(w, How::Panic), (w, How::Err)])
        .filter(|&(w, how)| !(w == Where::Exec && how == How::Err))
        .collect()
}

#[test]
fn the_workload_reaches_every_hook_and_the_plugin_counts_it_all() {
    for system in [false, true] {
        let mut host = if system {
            MockHost::system(4)
        } else {
            MockHost::user()
        };
        assert_eq!(install(&mut host, None, How::Panic), 0, "{}", host.output());
        let d = drive(&mut host, system);
        assert_eq!(d.insns, d.expected_insns);
        assert_eq!(
            host.output(),
            format!("faulty: total {}\n", d.expected_insns)
        );
        let c = calls();
        let reached: Vec<&str> = ALL
            .into_iter()
            .filter(|&w| c[w as usize] > 0)
            .map(Where::name)
            .collect();
        let expected: &[&str] = if system {
            &[
                "new",
                "init",
                "translate",
                "exec",
                "idle",
                "resume",
                "merge",
                "on_exit",
            ]
        } else {
            &[
                "new",
                "init",
                "exit",
                "translate",
                "exec",
                "syscall",
                "syscall_ret",
                "discon",
                "merge",
                "on_exit",
            ]
        };
        assert_eq!(reached, expected, "{c:?}");
        assert_eq!(c[Where::Init as usize], 4, "one shard per vCPU");
        assert_eq!(c[Where::Exit as usize], u64::from(!system));
        assert_eq!(c[Where::Merge as usize], if system { 4 } else { 3 });
        assert!(!host.is_uninstalled(host.plugin_ids()[0]));
    }
}

#[test]
fn a_failure_at_any_hook_is_contained_reported_once_and_stops_the_plugin() {
    let mut failed = Vec::new();
    let all = cases();
    assert_eq!(all.len(), 23);
    for (at, how) in all {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(at, how))) {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("at={} how={}: {why}", at.name(), how.name()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// A vCPU whose `new_shard` failed has no shard, and its next events would create one
/// lazily: the runtime must not call the failing `new_shard` again on every event.
#[test]
fn a_failing_new_shard_is_not_called_again_on_later_events() {
    for how in [How::Panic, How::Err] {
        let mut host = MockHost::system(2);
        assert_eq!(install(&mut host, Some(Where::Init), how), 0);
        // No vCPU booted: exec-time events for vCPU 1 arrive on this thread, each one
        // through the trampoline's guard as QEMU's call would be.
        for _ in 0..3 {
            guard(Hook::Exec, (), || {
                runtime::shard_access::on_exec::<Faulty, true>(FAULTY_VCPU, |cpu| **cpu += 1);
                Ok(())
            });
        }
        assert_eq!(
            CALLS[Where::Init as usize].load(Ordering::Relaxed),
            1,
            "how={}: new_shard called again after it failed",
            how.name()
        );
        let out = host.output();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("in the exec callback"), "{out}");
        assert!(host.is_uninstalled(host.plugin_ids()[0]));
    }
}

/// x86-64 `execve`, as the mock's `x86_64-linux-user` target numbers it.
const X86_64_EXECVE: i64 = 59;

/// Before an execve replaces the process, the runtime merges the calling vCPU's shard
/// and hands the total so far to `on_exit`: user code too, which must not run once a
/// failure is reported, not even in the very syscall whose hook failed.
#[test]
fn after_a_failure_an_execve_reports_nothing() {
    for how in [How::Panic, How::Err] {
        let mut host = MockHost::user();
        assert_eq!(install(&mut host, Some(Where::Syscall), how), 0);
        assert_eq!(host.spawn_vcpus(2), [0, 1]);
        let w = workload();
        assert_eq!(host.run(&w).insns, 2 * w.insns_per_vcpu());
        // vCPU 1's syscall hook fails on the execve (the path at 0 cannot be read, so
        // the runtime takes it for an execve that will replace the process).
        host.syscall(FAULTY_VCPU, X86_64_EXECVE, [0; 8], -2);
        let out = host.output();
        assert_eq!(out.lines().count(), 1, "how={}: {out}", how.name());
        assert!(out.contains("(in the syscall callback)"), "{out}");
        let c = calls();
        assert_eq!(
            (c[Where::Exit as usize], c[Where::OnExit as usize]),
            (0, 0),
            "how={}: merge or on_exit ran after the failure",
            how.name()
        );
        assert!(host.is_uninstalled(host.plugin_ids()[0]));
    }
}
