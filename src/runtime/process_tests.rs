//! Tests of the fork and execve handling (`process`), driven through the mock host: the
//! totals each "process image" reports come from the workload run in it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::{self, InlineCounter, PerVcpu, Translation, Vcpu};
use crate::{Args, Info, Result, VCPUIndex};
use qemu_plugin_mock::{Block, MockHost, Workload};

/// Every total `on_exit` received, in order: (callback count, inline count).
static REPORTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// Shards dropped (a forked child must never drop the parent's copies).
static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Counting {
    inline: InlineCounter,
}

struct Shard(u64);

impl Drop for Shard {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Total {
    callback: u64,
    inline: u64,
}

impl PerVcpu for Counting {
    type Config = ();
    type Shard = Shard;
    type Total = Total;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((
            Counting {
                inline: InlineCounter::new()?,
            },
            (),
        ))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Shard> {
        Ok(Shard(0))
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            insn.on_exec(|cpu: &mut Vcpu<Self>| cpu.0 += 1);
            insn.inline_add(&self.inline, 1);
        }
        Ok(())
    }

    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        total.inline += cpu.take_inline(&self.inline);
        total.callback += cpu.0;
        Ok(())
    }

    fn on_exit(&self, total: Total) -> Result<()> {
        REPORTS.lock().unwrap().push((total.callback, total.inline));
        Ok(())
    }
}

fn install(host: &mut MockHost) {
    REPORTS.lock().unwrap().clear();
    DROPPED.store(0, Ordering::Relaxed);
    crate::install::set_installer("counting", runtime::install::<Counting>);
    assert_eq!(
        host.install(crate::install::qemu_plugin_install, &[]),
        0,
        "{}",
        host.output()
    );
}

fn workload(reps: u64) -> Workload {
    Workload::new().step(Block::synthetic(0x1000, 10), reps)
}

/// x86-64 `execve`, as the mock's `x86_64-linux-user` target numbers it.
const EXECVE: i64 = 59;
const GETPID: i64 = 39;

#[test]
fn execve_reports_the_total_so_far_and_a_failed_one_goes_on_from_zero() {
    let mut host = MockHost::user();
    install(&mut host);
    let v = host.spawn_vcpus(1)[0];
    host.run(&workload(100));
    host.syscall(v, GETPID, [0; 8], 1);
    assert!(REPORTS.lock().unwrap().is_empty(), "only an execve reports");
    // The path argument points nowhere the mock can read: reporting early loses nothing,
    // so an unreadable path counts as a program that exists.
    host.syscall(v, EXECVE, [0; 8], -2);
    assert_eq!(*REPORTS.lock().unwrap(), [(1000, 1000)]);
    // The execve failed: the guest goes on, and atexit reports only what came after.
    host.run(&workload(30));
    host.atexit();
    assert_eq!(*REPORTS.lock().unwrap(), [(1000, 1000), (300, 300)]);
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

#[test]
fn a_forked_child_starts_from_zero_and_never_drops_the_parents_shards() {
    let mut host = MockHost::user();
    install(&mut host);
    let vcpus = host.spawn_vcpus(2);
    host.run(&workload(100));
    // What a fork's child runs, here on the test thread: the mock's vCPU threads are
    // parked outside every hook, so, as the handler requires, nothing else touches the
    // runtime meanwhile.
    // SAFETY: see above.
    unsafe { super::process::after_fork_child() };
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        0,
        "parent shards abandoned"
    );
    // Both vCPUs run on in the "child": fresh shards, inline counters from zero.
    host.run(&workload(7));
    host.atexit();
    assert_eq!(*REPORTS.lock().unwrap(), [(2 * 70, 2 * 70)]);
    // The child's own two shards were merged and dropped; the parent's two never were.
    assert_eq!(DROPPED.load(Ordering::Relaxed), 2);
    assert_eq!(vcpus.len(), 2);
}
