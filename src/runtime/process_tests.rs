//! Tests of the fork and execve handling (`process`), driven through the mock host: the
//! totals each "process image" reports come from the workload run in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::{self, InlineCounter, PerVcpu, Translation, Vcpu};
use crate::{Args, Info, Result, VCPUIndex};
use qemu_plugin_mock::{Block, MockHost, Workload};

/// What the inline counter of a run of `n` instructions holds: `n`, or 0 under APIs 0
/// and 1, where the plugin has no counter (no scoreboards).
fn inl(n: u64) -> u64 {
    if cfg!(since_api_2) { n } else { 0 }
}

/// Every total `on_exit` received, in order: (callback count, inline count).
static REPORTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// Shards dropped (a forked child must never drop the parent's copies).
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Totals made by `Total::default` (user code, which a fork's child handler must not run).
static DEFAULTS: AtomicU64 = AtomicU64::new(0);

/// The unit tests' allocator: the system's, counting the allocations of a thread that
/// asks for it (a fork's child handler must not allocate).
struct CountingAlloc;

thread_local! {
    /// `Some(n)`: this thread counts its allocations, `n` so far.
    static ALLOCATIONS: Cell<Option<u64>> = const { Cell::new(None) };
}

fn count_allocation() {
    // `try_with`: a thread may allocate while its thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting touches only a const-initialised thread-local `Cell` (no allocation, no drop).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// How many allocations `f` made on this thread.
fn allocations_of(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|c| c.set(Some(0)));
    f();
    ALLOCATIONS.with(|c| c.replace(None)).unwrap_or(0)
}

struct Counting {
    /// `None` under APIs 0 and 1, which have no scoreboards.
    inline: Option<InlineCounter>,
}

struct Shard(u64);

impl Drop for Shard {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

struct Total {
    callback: u64,
    inline: u64,
}

impl Default for Total {
    fn default() -> Self {
        DEFAULTS.fetch_add(1, Ordering::Relaxed);
        Total {
            callback: 0,
            inline: 0,
        }
    }
}

impl PerVcpu for Counting {
    type Config = ();
    type Shard = Shard;
    type Total = Total;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((
            Counting {
                inline: cfg!(since_api_2).then(InlineCounter::new).transpose()?,
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
            if let Some(c) = &self.inline {
                insn.inline_add(c, 1);
            }
        }
        Ok(())
    }

    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        total.inline += self.inline.map_or(0, |c| cpu.take_inline(&c));
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
const FORK: i64 = 57;
#[cfg(since_api_4)]
const EXECVEAT: i64 = 322;

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
    assert_eq!(*REPORTS.lock().unwrap(), [(1000, inl(1000))]);
    // The execve failed: the guest goes on, and atexit reports only what came after.
    host.run(&workload(30));
    host.atexit();
    assert_eq!(
        *REPORTS.lock().unwrap(),
        [(1000, inl(1000)), (300, inl(300))]
    );
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 6: the `pthread_atfork` child handler runs inside every `fork()` of QEMU, where
/// POSIX allows only async-signal-safe work, yet it allocated and called the plugin's
/// `Total::default()`. It must only record the fork; the reset comes at the child's next
/// hook (the fork syscall's return), and the child then starts from zero without ever
/// dropping the parent's shards.
#[test]
fn hole6_the_fork_child_handler_only_records_the_fork() {
    let mut host = MockHost::user();
    install(&mut host);
    let vcpus = host.spawn_vcpus(2);
    host.run(&workload(100));
    let defaults = DEFAULTS.load(Ordering::Relaxed);
    // What a fork's child runs, here on the test thread (the mock's vCPU threads are
    // parked outside every hook, as the other threads of a real child do not exist).
    let allocated = allocations_of(|| super::process::after_fork_child());
    assert_eq!(allocated, 0, "the child handler allocated");
    assert_eq!(
        DEFAULTS.load(Ordering::Relaxed),
        defaults,
        "the child handler ran the plugin's Total::default()"
    );
    assert!(
        super::barrier::uses_fences(),
        "a forked child uses full fences"
    );
    // The child's first hook: the fork syscall returns 0 on the forking vCPU.
    host.syscall(vcpus[0], FORK, [0; 8], 0);
    assert_eq!(
        DEFAULTS.load(Ordering::Relaxed),
        defaults + 1,
        "reset at the next hook"
    );
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        0,
        "parent shards abandoned"
    );
    // Both vCPUs run on in the "child": fresh shards, inline counters from zero.
    host.run(&workload(7));
    host.atexit();
    assert_eq!(*REPORTS.lock().unwrap(), [(2 * 70, inl(2 * 70))]);
    // The child's own two shards were merged and dropped; the parent's two never were.
    assert_eq!(DROPPED.load(Ordering::Relaxed), 2);
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Hole 7: `execveat(dirfd, "relative/path")` was checked against the current directory,
/// so a successful execveat of a program found through `dirfd` lost the counts since the
/// last report. The path must be resolved relative to `dirfd`. (Reading the path needs
/// `qemu_plugin_read_memory_vaddr`, API 4; before, every execve is reported before it.)
#[cfg(since_api_4)]
#[test]
fn hole7_execveat_resolves_a_relative_path_against_its_dirfd() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("qemu-plugin-hole7-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "hole7-program-only-in-dirfd";
    let program = dir.join(name);
    std::fs::write(&program, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        !std::path::Path::new(name).exists(),
        "the name must not resolve from the cwd"
    );
    let dirfd = std::fs::File::open(&dir).unwrap();

    let mut host = MockHost::user();
    install(&mut host);
    let v = host.spawn_vcpus(1)[0];
    // Guest strings (user mode: guest addresses are the mock's memory addresses).
    let (found, missing) = (0x10_0000u64, 0x10_1000u64);
    host.write_phys(found, format!("{name}\0").as_bytes());
    host.write_phys(missing, b"no-such-program\0");
    let fd = dirfd.as_raw_fd() as u64;

    host.run(&workload(10));
    // Not found relative to dirfd: the execveat fails, nothing is reported.
    host.syscall(v, EXECVEAT, [fd, missing, 0, 0, 0, 0, 0, 0], -2);
    assert!(REPORTS.lock().unwrap().is_empty());
    // Found relative to dirfd (and not relative to the cwd): reported before it runs.
    host.syscall(v, EXECVEAT, [fd, found, 0, 0, 0, 0, 0, 0], 0);
    assert_eq!(
        *REPORTS.lock().unwrap(),
        [(100, inl(100))],
        "{}",
        host.output()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
