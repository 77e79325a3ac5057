//! Tests of what plugin code may do on which thread (holes 5 and 11 of the second
//! soundness review): QEMU's "current vCPU" calls off a vCPU thread, and scoreboard
//! accesses outside `cpu_exec` while a new vCPU grows the scoreboards.

use std::sync::Mutex;

use crate::error::Failure;
use crate::runtime::{self, InlineCounter, PerVcpu, Translation, Vcpu};
use crate::{Args, Error, Info, Result, VCPUIndex};
use qemu_plugin_mock::{Block, Churn, MockHost, Workload};

/// What one probe returned: where it ran, then `get_registers` and `read_memory_vaddr`.
type Probe = (&'static str, Result<()>, Result<()>);

/// Every probe, in order.
static PROBES: Mutex<Vec<Probe>> = Mutex::new(Vec::new());
/// User-mode program-layout probes: where, `path_to_binary`, `entry_code`.
type Layout = (
    &'static str,
    Result<Option<std::path::PathBuf>>,
    Option<u64>,
);
static LAYOUT: Mutex<Vec<Layout>> = Mutex::new(Vec::new());

fn layout(at: &'static str) {
    LAYOUT.lock().unwrap().push((
        at,
        crate::qemu_plugin_path_to_binary(),
        crate::qemu_plugin_entry_code(),
    ));
}

/// Every total `on_exit` received: (callback count, inline count).
static REPORTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// Counts instructions by callback and inline; calls QEMU's "current vCPU" functions at
/// vCPU init (a vCPU thread) and at exit (QEMU's main thread in system mode).
struct Threads {
    inline: InlineCounter,
}

fn probe(at: &'static str) {
    let regs = crate::qemu_plugin_get_registers().map(drop);
    let mut byte = [0u8; 1];
    let mem = crate::qemu_plugin_read_memory_vaddr(0x1000, &mut byte);
    PROBES.lock().unwrap().push((at, regs, mem));
}

#[derive(Default)]
struct Total {
    callback: u64,
    inline: u64,
}

impl PerVcpu for Threads {
    type Config = ();
    type Shard = u64;
    type Total = Total;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        layout("install");
        Ok((
            Threads {
                inline: InlineCounter::new()?,
            },
            (),
        ))
    }
    fn new_shard(&self, vcpu: VCPUIndex) -> Result<u64> {
        if vcpu == 0 {
            probe("vcpu init");
            layout("vcpu init");
        }
        Ok(0)
    }
    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            insn.on_exec(|cpu: &mut Vcpu<Self>| **cpu += 1);
            insn.inline_add(&self.inline, 1);
        }
        Ok(())
    }
    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        total.inline += cpu.take_inline(&self.inline);
        total.callback += *cpu;
        Ok(())
    }
    fn on_exit(&self, total: Total) -> Result<()> {
        probe("exit");
        REPORTS.lock().unwrap().push((total.callback, total.inline));
        Ok(())
    }
}

fn install(host: &mut MockHost) {
    PROBES.lock().unwrap().clear();
    REPORTS.lock().unwrap().clear();
    LAYOUT.lock().unwrap().clear();
    crate::install::set_installer("threads", runtime::install::<Threads>);
    assert_eq!(
        host.install(crate::install::qemu_plugin_install, &[]),
        0,
        "{}",
        host.output()
    );
}

/// Hole 5: `qemu_plugin_get_registers`, register access and guest-memory reads hit
/// QEMU's `g_assert(current_cpu)` off a vCPU thread, so QEMU aborted where the docs
/// promised an error. Here a system-mode exit runs on the host's main thread (no vCPU),
/// and a thread of the plugin's own calls them too: each must be a clear error, and
/// nothing may reach the host (the mock records what would have aborted QEMU).
#[test]
fn hole5_current_vcpu_calls_off_a_vcpu_thread_are_errors_not_aborts() {
    let mut host = MockHost::system(2);
    install(&mut host);
    host.boot();
    host.run(&Workload::new().step(Block::synthetic(0x1000, 4), 10));
    std::thread::scope(|s| {
        s.spawn(|| probe("plugin thread"));
    });
    host.atexit();
    let probes = std::mem::take(&mut *PROBES.lock().unwrap());
    let wheres: Vec<_> = probes.iter().map(|p| p.0).collect();
    assert_eq!(wheres, ["vcpu init", "plugin thread", "exit"]);
    for (at, regs, mem) in probes {
        let off_vcpu = at != "vcpu init";
        for (api, r) in [
            ("qemu_plugin_get_registers", regs),
            ("qemu_plugin_read_memory_vaddr", mem),
        ] {
            match (r.as_ref().map_err(Error::failure), off_vcpu) {
                (Err(Some(Failure::NotOnVcpuThread { api: named })), true) => {
                    assert_eq!(*named, api)
                }
                // On the vCPU thread the call reaches QEMU (the read itself may fail).
                (Err(Some(Failure::NotOnVcpuThread { .. })), false) => {
                    panic!("{at}: {api} refused on a vCPU thread")
                }
                (other, true) => panic!("{at}: {api} returned {other:?} off a vCPU thread"),
                (_, false) => {}
            }
        }
    }
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 5, user mode: linux-user answers `qemu_plugin_path_to_binary` and the
/// start/end/entry-code queries from the calling vCPU's task state, a NULL dereference at
/// install (10.1.0-v2 plugins crash QEMU there). At install they must be an error (or
/// `None`); on a vCPU thread, the answers.
#[test]
fn hole5_user_mode_layout_queries_at_install_are_refused_not_crashes() {
    let mut host = MockHost::user();
    install(&mut host);
    host.spawn_vcpus(1);
    host.atexit();
    let layout = std::mem::take(&mut *LAYOUT.lock().unwrap());
    assert_eq!(layout.len(), 2, "{layout:?}");
    let (at, path, entry) = &layout[0];
    assert_eq!(*at, "install");
    assert!(
        matches!(
            path.as_ref().map_err(Error::failure),
            Err(Some(Failure::NotOnVcpuThread {
                api: "qemu_plugin_path_to_binary"
            }))
        ),
        "{path:?}"
    );
    assert_eq!(*entry, None);
    let (at, path, entry) = &layout[1];
    assert_eq!(*at, "vcpu init");
    assert_eq!(
        path.as_ref().unwrap().as_deref(),
        Some(std::path::Path::new("/bin/mock-guest"))
    );
    assert!(entry.is_some(), "{entry:?}");
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 11: when a new vCPU's index outgrows the scoreboards, QEMU moves them inside
/// `start_exclusive`, which waits only for threads inside `cpu_exec`; the merge at a
/// vCPU's exit read its inline counter outside `cpu_exec`, so it could read freed
/// memory. A linux-user thread storm grows the scoreboards (16 to 64 entries) while
/// threads exit and merge; every scoreboard access must happen where no growth can run
/// (the mock records any other as a violation), and no count may be lost.
#[test]
fn hole11_scoreboard_growth_while_vcpus_exit_never_races_a_merge() {
    let mut host = MockHost::user();
    install(&mut host);
    let stats = host.churn(&Churn {
        total: 120,
        max_alive: 40,
        workload: Workload::new().step(Block::synthetic(0x1000, 5), 20),
    });
    assert!(
        stats.max_index >= 32,
        "the storm must outgrow 32 entries: {stats:?}"
    );
    assert!(
        host.scoreboard_capacity() >= 64,
        "{}",
        host.scoreboard_capacity()
    );
    host.atexit();
    assert_eq!(
        *REPORTS.lock().unwrap(),
        [(stats.run.insns, stats.run.insns)]
    );
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// After a failure uninstalls the plugin, QEMU no longer knows its id, and
/// `qemu_plugin_vcpu_for_each` aborts on an unknown id. A scoreboard read from a thread
/// of the plugin's own must then not borrow QEMU's lock through it (the completion of the
/// failure's uninstall records that the id is gone).
#[test]
fn after_a_failure_uninstalls_the_plugin_scoreboard_reads_do_not_use_its_id() {
    let mut host = MockHost::user();
    install(&mut host);
    let v = host.spawn_vcpus(1);
    host.run(&Workload::new().step(Block::synthetic(0x1000, 4), 10));
    let rt = super::installed::Runtime::<Threads>::get().unwrap();
    crate::callbacks::failure::error(
        crate::callbacks::hook::Hook::Exec,
        &Error::msg("a deliberate failure"),
    );
    // The uninstall completes in QEMU's next exclusive section.
    host.run(&Workload::new().step(Block::synthetic(0x1000, 4), 1));
    assert!(
        host.is_uninstalled(host.plugin_ids()[0]),
        "{}",
        host.output()
    );
    let inline = rt.plugin.inline;
    let value = std::thread::scope(|s| s.spawn(|| inline.get(v[0])).join().unwrap());
    assert_eq!(value, 40, "the inline count so far");
    let aborts: Vec<_> = host
        .violations()
        .into_iter()
        .filter(|v| v.contains("not an installed plugin"))
        .collect();
    assert!(aborts.is_empty(), "{aborts:?}");
}
