//! The `PerVcpu` trait a scalable plugin implements, and the event types its hooks get.

use crate::callbacks::discon::{DisconKind, DisconTypes};
use crate::error::Result;
use crate::{Args, Info, VCPUIndex};

use super::handle::Handle;
use super::translate::Translation;
use super::vcpu::Vcpu;

/// A plugin whose state is sharded per vCPU.
///
/// - [`PerVcpu::new`] parses the arguments at install: an `Err` refuses the plugin with
///   one line naming the problem.
/// - Each vCPU gets a [`Self::Shard`] from [`PerVcpu::new_shard`], on its own thread, at
///   its init (or lazily, on its first event if that comes first).
/// - [`PerVcpu::translate`] registers per-block or per-instruction closures that get
///   `&mut` [`Vcpu<Self>`] of whichever vCPU executes them, with no lock.
/// - When a vCPU exits, and at QEMU's exit for the rest, [`PerVcpu::merge`] folds its
///   shard into [`Self::Total`], which [`PerVcpu::on_exit`] receives (a guest that forks
///   or execs: see there).
/// - [`Self::Config`] is shared by all vCPUs and may be replaced while the guest runs
///   ([`Handle::set_config`](super::Handle::set_config)); each vCPU sees the new value at its next event.
///
/// An `Err` or a panic in any method is reported once through `qemu_plugin_outs`; after
/// it the runtime calls no more user code (exec closures of blocks already translated
/// excepted, until QEMU discards them), and the plugin uninstalls itself (not needed, and
/// not done, when the failure is in `merge` or `on_exit` at QEMU's exit); QEMU keeps
/// running the guest.
///
/// Register the type with [`per_vcpu!`](crate::per_vcpu). Needs: QEMU 9.2 with
/// `plugin-api-v4`, QEMU 10.1 with `plugin-api-v5`.
#[allow(unused_variables)]
pub trait PerVcpu: Sized + Send + Sync + 'static {
    /// Configuration shared by every vCPU, replaceable at run time.
    type Config: Send + Sync + 'static;
    /// One vCPU's state.
    ///
    /// It is stored inline in its vCPU's cache-padded slot, and the runtime allocates 64
    /// slots at install (more as vCPU indexes grow), so keep large state (big arrays,
    /// buffers) behind a `Box` or `Vec` rather than inline.
    type Shard: Send + 'static;
    /// The merged result.
    type Total: Default + Send + 'static;

    /// Which discontinuities to receive (QEMU >= 10.2); none by default. Asking for some
    /// on an older QEMU makes install fail with a message saying so.
    const DISCONTINUITIES: DisconTypes = DisconTypes::NONE;

    /// Whether to filter syscalls with [`Self::syscall_filter`] (linux-user, QEMU >= 11.0,
    /// plugin API v6); off by default. On with an older API, install fails with a
    /// message saying so.
    const SYSCALL_FILTER: bool = false;

    /// Whether the runtime registers QEMU's translation hook, through which
    /// [`Self::translate`] is called; on by default. A plugin that instruments no block
    /// (it only counts syscalls, discontinuities or idle time) sets it to `false`:
    /// QEMU then translates guest code with no plugin instrumentation points, whose
    /// generated code ran 3-5% faster in linux-user (`docs/performance.md`), and
    /// [`Self::translate`] is never called.
    const TRANSLATES: bool = true;

    /// Builds the plugin and its initial configuration from the arguments.
    fn new(args: &Args, info: &Info) -> Result<(Self, Self::Config)>;

    /// Called once at install, after the runtime is set up and its hooks are registered,
    /// with the [`Handle`] through which the plugin changes its configuration or asks
    /// QEMU to uninstall or reset it (keep it, or move it into a thread started here).
    /// An `Err` refuses the install.
    fn started(&self, handle: Handle<Self>) -> Result<()> {
        Ok(())
    }

    /// A fresh shard for vCPU `vcpu` (called on that vCPU's thread).
    fn new_shard(&self, vcpu: VCPUIndex) -> Result<Self::Shard>;

    /// Called for each translated block; may run on several threads at once in system mode.
    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        Ok(())
    }

    /// A syscall is about to run on `vcpu` (user mode).
    fn syscall(&self, vcpu: &mut Vcpu<Self>, call: &Syscall) -> Result<()> {
        Ok(())
    }

    /// Answers a syscall on `vcpu` in place of the kernel (with [`Self::SYSCALL_FILTER`];
    /// linux-user, QEMU >= 11.0): `Ok(Some(ret))` skips the host syscall and makes `ret`
    /// its result, which the guest and [`Self::syscall_return`] then see; `Ok(None)` lets
    /// it run. Called after [`Self::syscall`]. An `Err` or a panic is reported, and the
    /// syscall runs.
    fn syscall_filter(&self, vcpu: &mut Vcpu<Self>, call: &Syscall) -> Result<Option<i64>> {
        Ok(None)
    }

    /// A syscall returned on `vcpu` (user mode).
    fn syscall_return(&self, vcpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        Ok(())
    }

    /// `vcpu` went idle (system mode).
    fn idle(&self, vcpu: &mut Vcpu<Self>) -> Result<()> {
        Ok(())
    }

    /// `vcpu` resumed (system mode).
    fn resume(&self, vcpu: &mut Vcpu<Self>) -> Result<()> {
        Ok(())
    }

    /// A discontinuity of a kind in [`Self::DISCONTINUITIES`] happened on `vcpu`.
    fn discontinuity(&self, vcpu: &mut Vcpu<Self>, event: &Discontinuity) -> Result<()> {
        Ok(())
    }

    /// Folds an exiting (or, at QEMU's exit, remaining) vCPU's shard into the total.
    fn merge(&self, total: &mut Self::Total, vcpu: Vcpu<Self>) -> Result<()>;

    /// Receives the total at QEMU's exit.
    ///
    /// In user mode it is also called just before the guest's `execve` of an existing
    /// program replaces the process (QEMU runs no atexit then), with the total so far;
    /// if that execve fails, counting goes on from a fresh total, reported at exit. A
    /// forked child starts from a fresh total and its own fresh shards (the parent's
    /// copies are abandoned, never merged or dropped), so each process reports only what
    /// it ran itself.
    fn on_exit(&self, total: Self::Total) -> Result<()>;
}

/// A syscall entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    /// The syscall number.
    pub num: i64,
    /// Its eight raw arguments.
    pub args: [u64; 8],
}

/// A syscall return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallReturn {
    /// The syscall number.
    pub num: i64,
    /// The return value (negative errno on failure, in Linux's convention).
    pub ret: i64,
}

/// A discontinuity: the vCPU's PC jumped for a reason other than a branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    /// What kind.
    pub kind: DisconKind,
    /// Where it happened (see QEMU's `qemu_plugin_vcpu_discon_cb_t` for each kind).
    pub from_pc: u64,
    /// The next instruction to execute.
    pub to_pc: u64,
}
