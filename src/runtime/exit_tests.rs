//! Tests of the exit-side protocol (holes 1, 2, 3 and 8 of the second soundness review),
//! each named after the hole it closes and checking the property that was broken.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::installed::Runtime;
use super::report;
use crate::runtime::{self, PerVcpu, Translation, Vcpu};
use crate::{Args, Error, Info, Result, VCPUIndex};
use qemu_plugin_mock::{Block, MockHost, Workload};

/// For each merge: (vCPU index, whether its slot was still marked busy while merging).
static MERGES: Mutex<Vec<(VCPUIndex, bool)>> = Mutex::new(Vec::new());
static REPORTS: Mutex<Vec<Vec<VCPUIndex>>> = Mutex::new(Vec::new());
/// `hold=N`: vCPU N's exec closure is inside its held event.
static HOLDING: AtomicBool = AtomicBool::new(false);
/// `hold=N`: the held event has happened (it happens once).
static HELD: AtomicBool = AtomicBool::new(false);
/// A merge has happened; set before `merge` records anything.
static MERGED: AtomicBool = AtomicBool::new(false);
/// Merges of the held vCPU that ran while its exec closure was inside the held event.
static MERGED_WHILE_HELD: Mutex<Vec<VCPUIndex>> = Mutex::new(Vec::new());

/// Counts instructions; `fail=N` makes the merge of vCPU N add its entry and then fail
/// (`how=err`) or panic (`how=panic`); `hold=N` keeps vCPU N's first exec closure
/// running until some merge happens (at most 1 s).
struct Probe {
    fail: Option<VCPUIndex>,
    panic: bool,
    hold: Option<VCPUIndex>,
}

/// The held event of `hold=N`: inside vCPU N's exec closure, wait until some merge has
/// happened (which must not be this vCPU's, as the closure holds its shard) or 1 s.
fn hold_event() {
    if HELD.swap(true, Ordering::SeqCst) {
        return;
    }
    HOLDING.store(true, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(1);
    while !MERGED.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::yield_now();
    }
    HOLDING.store(false, Ordering::SeqCst);
}

impl PerVcpu for Probe {
    type Config = ();
    type Shard = u64;
    type Total = Vec<VCPUIndex>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["fail", "how", "hold"])?;
        let fail = args.string("fail")?.map(|v| v.parse().unwrap());
        let hold = args.string("hold")?.map(|v| v.parse().unwrap());
        let panic = args.choice("how", "err", &["err", "panic"])? == "panic";
        Ok((Probe { fail, panic, hold }, ()))
    }
    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }
    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        match self.hold {
            Some(hold) => tb.on_exec(move |cpu: &mut Vcpu<Self>| {
                if cpu.index() == hold {
                    hold_event();
                }
                **cpu += 1
            }),
            None => tb.on_exec(|cpu: &mut Vcpu<Self>| **cpu += 1),
        }
        Ok(())
    }
    fn merge(&self, total: &mut Vec<VCPUIndex>, cpu: Vcpu<Self>) -> Result<()> {
        let i = cpu.index();
        if self.hold == Some(i) && HOLDING.load(Ordering::SeqCst) {
            MERGED_WHILE_HELD.lock().unwrap().push(i);
        }
        MERGED.store(true, Ordering::SeqCst);
        let rt = Runtime::<Self>::get()?;
        MERGES
            .lock()
            .unwrap()
            .push((i, rt.shards.get(i as usize).is_busy()));
        total.push(i);
        if self.fail == Some(i) {
            if self.panic {
                panic!("merge of vCPU {i} panics");
            }
            return Err(Error::msg(format!("merge of vCPU {i} fails")));
        }
        Ok(())
    }
    fn on_exit(&self, total: Vec<VCPUIndex>) -> Result<()> {
        REPORTS.lock().unwrap().push(total);
        Ok(())
    }
}

fn install(host: &mut MockHost, args: &[&str]) {
    MERGES.lock().unwrap().clear();
    REPORTS.lock().unwrap().clear();
    MERGED_WHILE_HELD.lock().unwrap().clear();
    for flag in [&HOLDING, &HELD, &MERGED] {
        flag.store(false, Ordering::SeqCst);
    }
    crate::install::set_installer("probe", runtime::install::<Probe>);
    assert_eq!(
        host.install(crate::install::qemu_plugin_install, args),
        0,
        "{}",
        host.output()
    );
}

fn workload() -> Workload {
    Workload::new().step(Block::synthetic(0x1000, 5), 10)
}

/// Hole 1: in system mode a device can run QEMU's exit on one vCPU's thread while the
/// other vCPUs execute (`isa-debug-exit`, Arm semihosting `SYS_EXIT`), and the exit took
/// and dropped shards that running exec closures held as `&mut`. Forced here: vCPU 3
/// runs the exit while vCPU 0's closure is held inside an event (until a merge happens)
/// and vCPUs 1 and 2 execute. The exit must wait for the closure, then still merge
/// every vCPU.
#[test]
fn hole1_an_exit_from_a_vcpu_thread_waits_for_running_exec_closures() {
    let mut host = MockHost::system(4);
    install(&mut host, &["hold=0"]);
    let v = host.boot();
    assert_eq!(v, [0, 1, 2, 3]);
    let w = Workload::new().step(Block::synthetic(0x1000, 5), 2000);
    host.exit_from_vcpu(3, &[0, 1, 2], &w, || HOLDING.load(Ordering::SeqCst));
    assert!(HELD.load(Ordering::SeqCst));
    assert_eq!(
        *MERGED_WHILE_HELD.lock().unwrap(),
        [] as [VCPUIndex; 0],
        "the exit merged vCPU 0's shard while its exec closure held it"
    );
    let mut reports = REPORTS.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{}", host.output());
    reports[0].sort();
    assert_eq!(reports[0], [0, 1, 2, 3], "every vCPU is merged");
    assert!(
        !host.output().contains("stayed inside"),
        "{}",
        host.output()
    );
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 2: a vCPU's exit merged its shard after releasing its slot, so an exit of QEMU
/// running meanwhile could take the total first and the merge landed nowhere. The
/// slot must stay busy until the shard is in the total, in the vCPU exit hook and in the
/// report before an execve.
#[test]
fn hole2_vcpu_exit_and_execve_report_hold_the_slot_across_the_merge() {
    let mut host = MockHost::user();
    install(&mut host, &[]);
    let v = host.spawn_vcpus(3);
    host.run(&workload());
    host.exit_vcpu(v[1]);
    // x86-64 execve with an unreadable path, which counts as a program that exists.
    host.syscall(v[2], 59, [0; 8], -2);
    host.atexit();
    let merges = MERGES.lock().unwrap().clone();
    assert!(merges.contains(&(v[1], true)), "vCPU exit: {merges:?}");
    assert!(merges.contains(&(v[2], true)), "execve report: {merges:?}");
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 3: a merge that failed left its partial update in the total, and the failure was
/// recorded only after the total's lock was released, so an exit in that window handed
/// `on_exit` a half-updated total. The total must be unusable, under its lock, as soon
/// as a merge fails or panics.
#[test]
fn hole3_a_failed_merge_spoils_the_total_under_its_lock() {
    for how in ["err", "panic"] {
        let mut host = MockHost::user();
        install(&mut host, &["fail=1", &format!("how={how}")]);
        let v = host.spawn_vcpus(2);
        host.run(&workload());
        host.exit_vcpu(v[1]);
        let rt = Runtime::<Probe>::get().unwrap();
        assert!(
            rt.take_total(false).is_none(),
            "how={how}: the total still holds the failed merge's partial update"
        );
        assert!(
            host.output().contains("merge of vCPU 1"),
            "how={how}: {}",
            host.output()
        );
        host.atexit();
        assert!(REPORTS.lock().unwrap().is_empty(), "how={how}");
    }
}

/// Hole 8: QEMU's exit waited up to 2 s for each vCPU stuck inside a hook, restarting
/// the wait for every slot. One deadline must bound the whole exit.
#[test]
fn hole8_exit_waits_on_one_deadline_for_all_stuck_vcpus() {
    let mut host = MockHost::user();
    install(&mut host, &[]);
    let rt = Runtime::<Probe>::get().unwrap();
    // Three slots whose owners never leave their hook.
    let held: Vec<_> = (0..3).map(|i| rt.shards.get(i).enter().unwrap()).collect();
    let start = Instant::now();
    report::at_exit(rt).unwrap();
    let waited = start.elapsed();
    drop(held);
    assert!(
        waited < 2 * report::EXIT_WAIT,
        "exit waited {waited:?} for 3 stuck vCPUs (one deadline is {:?})",
        report::EXIT_WAIT
    );
    assert!(
        host.output()
            .contains("3 vCPU(s) stayed inside a callback during exit (indexes [0, 1, 2])"),
        "{}",
        host.output()
    );
}

/// Every total `Quitter::on_exit` received.
static QUIT_REPORTS: Mutex<Vec<Vec<(VCPUIndex, u64)>>> = Mutex::new(Vec::new());
/// What `leave_for_exit` answered: inside the exiting callback, then in a merge.
static QUIT_ANSWERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn answer_text(answer: Result<()>) -> String {
    match answer {
        Ok(()) => "Ok(())".into(),
        Err(e) => e.to_string(),
    }
}

/// Counts events per vCPU; vCPU `who`'s `at`-th event ends QEMU from inside its exec
/// closure, as `Vcpu::exit_qemu` does (the mock's `exit_from_callback` standing in for
/// `exit()`, which would end the test).
struct Quitter {
    who: VCPUIndex,
    at: u64,
}

impl PerVcpu for Quitter {
    type Config = ();
    type Shard = u64;
    type Total = Vec<(VCPUIndex, u64)>;

    fn new(_: &Args, _: &Info) -> Result<(Self, ())> {
        Ok((Quitter { who: 2, at: 4 }, ()))
    }
    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }
    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let (who, at) = (self.who, self.at);
        tb.on_exec(move |cpu: &mut Vcpu<Self>| {
            **cpu += 1;
            if cpu.index() == who && **cpu == at {
                let answer = cpu.leave_for_exit();
                QUIT_ANSWERS.lock().unwrap().push(answer_text(answer));
                qemu_plugin_mock::exit_from_callback();
            }
        });
        Ok(())
    }
    fn merge(&self, total: &mut Vec<(VCPUIndex, u64)>, cpu: Vcpu<Self>) -> Result<()> {
        total.push((cpu.index(), *cpu));
        // A `Vcpu` out of its slot cannot end QEMU.
        let mut cpu = cpu;
        let answer = cpu.leave_for_exit();
        QUIT_ANSWERS.lock().unwrap().push(answer_text(answer));
        Ok(())
    }
    fn on_exit(&self, total: Vec<(VCPUIndex, u64)>) -> Result<()> {
        QUIT_REPORTS.lock().unwrap().push(total);
        Ok(())
    }
}

/// `Vcpu::exit_qemu` (QEMU's stoptrigger plugin calls `exit()` from an exec callback):
/// QEMU's exit then runs on the exiting vCPU's thread *inside* its callback, whose slot
/// is entered. The exit must neither wait for that callback (it never returns: the wait
/// would time out and leave the shard out) nor touch its shard, and the total must hold
/// what the vCPU counted up to and including the exiting event, once. The other vCPUs
/// keep executing meanwhile (system mode, no pause), and are merged as at any exit.
#[test]
fn exit_from_inside_a_callback_merges_the_exiting_vcpu_without_waiting_for_it() {
    QUIT_REPORTS.lock().unwrap().clear();
    QUIT_ANSWERS.lock().unwrap().clear();
    let mut host = MockHost::system(4);
    crate::install::set_installer("quitter", runtime::install::<Quitter>);
    assert_eq!(
        host.install(crate::install::qemu_plugin_install, &[]),
        0,
        "{}",
        host.output()
    );
    assert_eq!(host.boot(), [0, 1, 2, 3]);
    host.run(&workload());
    let out = host.output();
    assert!(!out.contains("stayed inside a callback"), "{out}");
    let reports = QUIT_REPORTS.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "one report: {reports:?}\n{out}");
    let mut total = reports[0].clone();
    total.sort();
    let indexes: Vec<VCPUIndex> = total.iter().map(|t| t.0).collect();
    assert_eq!(indexes, [0, 1, 2, 3], "each vCPU merged once: {total:?}");
    assert_eq!(
        total[2],
        (2, 4),
        "the exiting vCPU's count, exit event included"
    );
    assert!(total.iter().all(|t| t.1 <= 10), "{total:?}");
    let answers = QUIT_ANSWERS.lock().unwrap().clone();
    assert_eq!(
        answers.iter().filter(|a| *a == "Ok(())").count(),
        1,
        "{answers:?}"
    );
    // The exit (whose own merge answers first), and the 4 merges.
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(answers[1], "Ok(())", "{answers:?}");
    for refused in answers.iter().filter(|a| *a != "Ok(())") {
        assert!(
            refused.contains("Vcpu::exit_qemu") && refused.contains("vCPU thread"),
            "{refused}"
        );
    }
}
