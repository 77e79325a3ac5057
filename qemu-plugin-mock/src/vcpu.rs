//! vCPUs: one OS thread each, index allocation (fixed in system mode, "highest
//! live + 1" in linux-user), the init/exit sequence, and the command loop through
//! which the host makes a vCPU execute code or deliver events on its own thread.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::block::{Block, Workload};
use super::callback_call::Registered;
use super::exclusive::{self, RunningFlag};
use super::registry::Callbacks;
use super::sync::{Gate, Mutex, MutexGuard, Receiver, Sender, channel};
use super::translate::{LocalCache, TbSummary};
use super::{ctx, exec, memory, registry, scoreboard};
use crate::annotate;
use crate::sys::VcpuCb;

/// State of one vCPU that other threads may look at.
#[derive(Debug)]
pub(crate) struct VcpuShared {
    /// `cpu_index`.
    pub(crate) index: u32,
    /// Running flag for the exclusive protocol.
    pub(crate) running: RunningFlag,
    /// Register file, in [`memory::REGISTERS`] order.
    pub(crate) regs: Mutex<Vec<Vec<u8>>>,
    /// Set once init has run (QEMU adds the vCPU to `plugin.cpu_ht` then).
    initialised: AtomicBool,
}

impl VcpuShared {
    /// Whether the vCPU finished its plugin init (it is in QEMU's `cpu_ht`).
    pub(crate) fn is_initialised(&self) -> bool {
        let done = self.initialised.load(Ordering::Acquire);
        if done {
            // This acquire load saw the release store in `Vcpu::init`.
            annotate::happens_after(&self.initialised);
        }
        done
    }
}

/// Live vCPUs by index (QEMU's `cpus_queue` / `plugin.cpu_ht`).
static LIVE: Mutex<BTreeMap<u32, Arc<VcpuShared>>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<u32, Arc<VcpuShared>>> {
    LIVE.lock()
}

/// Linux-user's `clone_lock`: `TARGET_NR_exit` holds it while it unrealizes the exiting
/// thread's CPU (exit callbacks, then removal from the CPU list), so in user mode exit
/// callbacks of different threads never overlap.
static CLONE_LOCK: Mutex<()> = Mutex::new(());

/// Every live vCPU, for the exclusive protocol.
pub(crate) fn live_snapshot() -> Vec<Arc<VcpuShared>> {
    live().values().cloned().collect()
}

/// The live vCPU `index`.
pub(crate) fn get(index: u32) -> Option<Arc<VcpuShared>> {
    live().get(&index).cloned()
}

/// The vCPU of the calling thread (`current_cpu`).
pub(crate) fn current() -> Option<Arc<VcpuShared>> {
    ctx::vcpu().and_then(get)
}

/// Registers a new vCPU: `index`, or the highest live index + 1 (`cpu_get_free_index`).
pub(crate) fn register(index: Option<u32>) -> Arc<VcpuShared> {
    let mut l = live();
    let index = index.unwrap_or_else(|| l.keys().next_back().map_or(0, |&i| i + 1));
    let v = Arc::new(VcpuShared {
        index,
        running: RunningFlag::default(),
        regs: Mutex::new(memory::initial_registers(index)),
        initialised: AtomicBool::new(false),
    });
    // Read by `qemu_plugin_vcpu_for_each` on any thread while the vCPU initialises; its
    // ordering is described by the happens-before pair in `Vcpu::init`/`is_initialised`.
    annotate::atomic_only(&v.initialised);
    l.insert(index, v.clone());
    v
}

/// Forgets every vCPU (host teardown).
pub(crate) fn reset() {
    live().clear();
}

/// Ground-truth counts of what the mock executed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Block executions.
    pub blocks: u64,
    /// Instruction executions.
    pub insns: u64,
}

impl std::ops::AddAssign for RunStats {
    fn add_assign(&mut self, o: Self) {
        self.blocks += o.blocks;
        self.insns += o.insns;
    }
}

/// A request the host sends to a vCPU thread.
pub(crate) enum Cmd {
    Run(Arc<Workload>),
    Translate(Arc<Block>),
    Syscall {
        num: i64,
        args: [u64; 8],
        ret: i64,
        count: u64,
    },
    Idle,
    Resume,
    Discon {
        bit: usize,
        ty: c_int,
        from: u64,
        to: u64,
    },
    Exit,
    /// Device code on this vCPU calls `exit()`: QEMU's atexit runs on this thread.
    AtExit,
}

/// A vCPU thread's answer.
pub(crate) enum Reply {
    Ready,
    Ran(RunStats),
    Translated(TbSummary),
    Done,
}

/// The thread-side state of a vCPU.
struct Vcpu {
    shared: Arc<VcpuShared>,
    cache: LocalCache,
}

impl Vcpu {
    fn new(shared: Arc<VcpuShared>) -> Self {
        ctx::set_vcpu(Some(shared.index));
        Self {
            shared,
            cache: LocalCache::default(),
        }
    }

    /// Delivers `pick`'s callback of every plugin with `RW_REGS`, inside the running
    /// section so that an exclusive section (uninstall) never overlaps it.
    fn dispatch_simple(&self, pick: impl Fn(&Callbacks) -> Option<Registered<VcpuCb>>) {
        let idx = self.shared.index;
        exclusive::exec_start(&self.shared.running);
        for (id, f) in registry::collect(|id, c| pick(c).map(|f| (id, f))) {
            // SAFETY:
            // - plugin callback for this event, called on this vCPU's thread (outside
            //   cpu_exec in QEMU: every event dispatched here is a lifecycle one).
            ctx::outside_exec(|| ctx::with_flags(ctx::RW_REGS, || unsafe { f.vcpu(id, idx) }));
        }
        exclusive::exec_end(&self.shared.running);
    }

    /// `qemu_plugin_vcpu_init__async`: num_vcpus, scoreboard growth, init callbacks.
    fn init(&self) {
        scoreboard::vcpu_init(self.shared.index);
        annotate::happens_before(&self.shared.initialised);
        self.shared.initialised.store(true, Ordering::Release);
        self.dispatch_simple(|c| c.vcpu_init);
        exclusive::drain();
    }

    /// `qemu_plugin_vcpu_exit_hook`: exit callbacks, then the index is released; in user
    /// mode both under [`CLONE_LOCK`], as `TARGET_NR_exit` does.
    fn exit(self) {
        let _clone = (!memory::is_system()).then(|| CLONE_LOCK.lock());
        self.dispatch_simple(|c| c.vcpu_exit);
        exclusive::drain();
        live().remove(&self.shared.index);
        ctx::set_vcpu(None);
    }

    fn run(&mut self, w: &Workload) -> RunStats {
        let mut stats = RunStats::default();
        let n = w.steps.len();
        if n == 0 {
            return stats;
        }
        let (idx, flag, cache) = (self.shared.index, &self.shared.running, &mut self.cache);
        let start = idx as usize % n;
        exclusive::exec_start(flag);
        for k in 0..n {
            let (b, reps) = w.steps[(start + k) % n];
            let block = &w.blocks[b];
            let mut tb = cache.get(block);
            for _ in 0..reps {
                if exclusive::attention() {
                    exclusive::safe_point(flag);
                    tb = cache.get(block);
                }
                exec::exec_tb(&tb, idx);
            }
            stats.blocks += reps;
            stats.insns += reps * block.n_insns() as u64;
        }
        exclusive::exec_end(flag);
        stats
    }

    fn translate(&mut self, b: &Arc<Block>) -> TbSummary {
        exclusive::exec_start(&self.shared.running);
        let s = TbSummary::of(&self.cache.get(b));
        exclusive::exec_end(&self.shared.running);
        s
    }

    fn syscall(&self, num: i64, a: [u64; 8], ret: i64) {
        ctx::outside_exec(|| self.syscall_outside_exec(num, a, ret))
    }

    /// Syscall callbacks, which QEMU runs outside `cpu_exec`.
    fn syscall_outside_exec(&self, num: i64, a: [u64; 8], ret: i64) {
        let idx = self.shared.index;
        exclusive::exec_start(&self.shared.running);
        for (id, f) in registry::collect(|id, c| c.syscall.map(|f| (id, f))) {
            // SAFETY:
            // - plugin syscall callback with QEMU's signature, on this vCPU's thread.
            ctx::with_flags(ctx::RW_REGS, || unsafe { f.syscall(id, idx, num, a) });
        }
        // API 6's filters (linux-user `do_syscall`): the first that answers replaces the
        // host syscall, and the return callbacks see its value.
        #[cfg(since_api_6)]
        let ret = {
            let mut ret = ret;
            for (id, f) in registry::collect(|id, c| c.syscall_filter.map(|f| (id, f))) {
                // SAFETY:
                // - plugin syscall filter with QEMU's signature, on this vCPU's thread.
                let answer =
                    ctx::with_flags(ctx::RW_REGS_PC, || unsafe { f.filter(id, idx, num, a) });
                if let Some(r) = answer {
                    ret = r;
                    break;
                }
            }
            ret
        };
        for (id, f) in registry::collect(|id, c| c.syscall_ret.map(|f| (id, f))) {
            // SAFETY:
            // - plugin syscall-return callback with QEMU's signature.
            ctx::with_flags(ctx::RW_REGS, || unsafe { f.syscall_ret(id, idx, num, ret) });
        }
        exclusive::exec_end(&self.shared.running);
    }

    fn discon(&self, bit: usize, ty: c_int, from: u64, to: u64) {
        let idx = self.shared.index;
        // QEMU drops these while `cpu_index >= num_vcpus`.
        if idx >= scoreboard::num_vcpus() {
            return;
        }
        exclusive::exec_start(&self.shared.running);
        for (id, f) in registry::collect(|id, c| c.discon[bit].map(|f| (id, f))) {
            // SAFETY:
            // - plugin discontinuity callback with QEMU 10.2's signature.
            ctx::with_flags(ctx::RW_REGS, || unsafe { f.discon(id, idx, ty, from, to) });
        }
        exclusive::exec_end(&self.shared.running);
    }

    fn handle(&mut self, cmd: Cmd) -> Reply {
        let idx = self.shared.index;
        let reply = match cmd {
            Cmd::Run(w) => Reply::Ran(self.run(&w)),
            Cmd::Translate(b) => Reply::Translated(self.translate(&b)),
            Cmd::Syscall {
                num,
                args,
                ret,
                count,
            } => {
                for _ in 0..count {
                    self.syscall(num, args, ret);
                }
                Reply::Done
            }
            // Idle and resume may come before init in QEMU; it drops them then.
            Cmd::Idle if idx < scoreboard::num_vcpus() => {
                self.dispatch_simple(|c| c.idle);
                Reply::Done
            }
            Cmd::Resume if idx < scoreboard::num_vcpus() => {
                self.dispatch_simple(|c| c.resume);
                Reply::Done
            }
            Cmd::Idle | Cmd::Resume => Reply::Done,
            Cmd::Discon { bit, ty, from, to } => {
                self.discon(bit, ty, from, to);
                Reply::Done
            }
            Cmd::AtExit => {
                crate::call_atexit();
                Reply::Done
            }
            Cmd::Exit => Reply::Done,
        };
        exclusive::drain();
        reply
    }
}

/// Host-side handle of a vCPU thread driven by commands.
pub(crate) struct VcpuHandle {
    pub(crate) index: u32,
    tx: Sender<Cmd>,
    rx: Receiver<Reply>,
    join: Option<JoinHandle<()>>,
}

impl VcpuHandle {
    /// Starts vCPU `index` (or the next free index) and waits until its init
    /// callbacks have run.
    pub(crate) fn spawn(index: Option<u32>) -> Self {
        let h = Self::start(index);
        h.wait();
        h
    }

    /// Starts vCPU `index` (or the next free index); the first [`Self::wait`]
    /// returns once its init callbacks have run.
    pub(crate) fn start(index: Option<u32>) -> Self {
        let shared = register(index);
        let index = shared.index;
        let (tx, cmd_rx) = channel::<Cmd>();
        let (reply_tx, rx) = channel::<Reply>();
        let join = std::thread::Builder::new()
            .name(format!("mock-vcpu-{index}"))
            .spawn(move || {
                let mut v = Vcpu::new(shared);
                v.init();
                if reply_tx.send(Reply::Ready).is_err() {
                    return;
                }
                while let Ok(cmd) = cmd_rx.recv() {
                    let exit = matches!(cmd, Cmd::Exit);
                    if exit {
                        v.exit();
                        let _ = reply_tx.send(Reply::Done);
                        return;
                    }
                    let r = v.handle(cmd);
                    if reply_tx.send(r).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn vCPU thread");
        Self {
            index,
            tx,
            rx,
            join: Some(join),
        }
    }

    /// Sends `cmd` without waiting.
    pub(crate) fn send(&self, cmd: Cmd) {
        self.tx.send(cmd).expect("vCPU thread is gone");
    }

    /// Waits for the reply to the last command.
    pub(crate) fn wait(&self) -> Reply {
        self.rx.recv().expect("vCPU thread is gone")
    }

    /// Sends `cmd` and waits for the reply.
    pub(crate) fn call(&self, cmd: Cmd) -> Reply {
        self.send(cmd);
        self.wait()
    }

    /// Makes the vCPU exit (exit callbacks, index released) and joins its thread.
    pub(crate) fn exit(mut self) {
        self.call(Cmd::Exit);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }

    /// Stops the thread without any callback (process teardown) and joins it.
    pub(crate) fn stop(mut self) {
        let (tx, _) = channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Starts an autonomous linux-user thread: init, run `w`, exit; then reports
/// `(index, stats)` on `done`. With a `gate`, it arrives there once initialised and
/// waits for the gate to open before it exits.
pub(crate) fn spawn_churn(
    w: Arc<Workload>,
    done: Sender<(u32, RunStats)>,
    gate: Option<Arc<Gate>>,
) -> JoinHandle<()> {
    let shared = register(None);
    std::thread::Builder::new()
        .name(format!("mock-user-{}", shared.index))
        .spawn(move || {
            let index = shared.index;
            let mut v = Vcpu::new(shared);
            v.init();
            if let Some(g) = &gate {
                g.arrive();
            }
            let stats = v.run(&w);
            exclusive::drain();
            if let Some(g) = &gate {
                g.wait();
            }
            v.exit();
            let _ = done.send((index, stats));
        })
        .expect("spawn vCPU thread")
}
