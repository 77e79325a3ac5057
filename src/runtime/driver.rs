//! The installed runtime: one leaked `Runtime<P>` per process, reached by every hook
//! through one global pointer; the `extern "C"` hooks QEMU calls; install and the final
//! merge at atexit.

use std::any::TypeId;
use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use thread_local::ThreadLocal;

use super::barrier;
use super::per_vcpu::{Discontinuity, PerVcpu, Syscall, SyscallReturn};
use super::process;
use super::shards::{First, Shards};
use super::slot::Slot;
use super::translate::{Scratch, Translation};
use super::vcpu::Vcpu;
use crate::callbacks::failure;
use crate::callbacks::lifecycle::register_flush;
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::{Error, Result};
use crate::handles::tb::TranslationBlock;
use crate::{Args, Info, PluginId, VCPUIndex, sys};

/// How long atexit waits for a vCPU thread to leave a hook before leaving its shard alone.
const EXIT_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct Runtime<P: PerVcpu> {
    pub(crate) plugin: P,
    pub(crate) config: ArcSwap<P::Config>,
    pub(crate) shards: Shards<Slot<P>>,
    /// The running total, behind a pointer to a leaked, never-freed mutex, so that a
    /// forked child can start a fresh one even if the fork caught another thread holding
    /// the lock (see `process`).
    total: AtomicPtr<Mutex<Option<P::Total>>>,
    /// Shards created and not yet merged.
    live: AtomicUsize,
    /// This target's `execve` and `execveat` syscall numbers (`-1`: none).
    pub(crate) exec_syscalls: [i64; 2],
    pub(crate) scratch: ThreadLocal<RefCell<Scratch>>,
}

/// A fresh, leaked total.
fn new_total<T: Default>() -> *mut Mutex<Option<T>> {
    Box::into_raw(Box::new(Mutex::new(Some(T::default()))))
}

static RUNTIME: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
static RUNTIME_TYPE: Mutex<Option<TypeId>> = Mutex::new(None);

impl<P: PerVcpu> Runtime<P> {
    /// The runtime that owns segment 0 `first` of its shard array.
    pub(crate) fn of_first(first: &'static First<Slot<P>>) -> Result<&'static Self> {
        let owner = first.owner();
        if owner.is_null() {
            return Err(Error::RuntimeNotInstalled {
                type_name: std::any::type_name::<P>(),
            });
        }
        // SAFETY: only `install::<P>` sets an owner, on the `Shards<Slot<P>>` of the
        // `Runtime<P>` it leaks (never freed), and that is the runtime it stores.
        Ok(unsafe { &*owner.cast::<Self>() })
    }

    /// The installed runtime, for a hook that only the install of `P` registered.
    #[inline(always)]
    pub(crate) fn get() -> Result<&'static Self> {
        let p = RUNTIME.load(Ordering::Acquire);
        if p.is_null() {
            return Err(Error::RuntimeNotInstalled {
                type_name: std::any::type_name::<P>(),
            });
        }
        // SAFETY: `install::<P>` stores a leaked, never-freed `Runtime<P>` here before it
        // registers any hook, and every hook that calls `get::<P>` was registered by that
        // install (one plugin per shared object; the mock host re-registers everything on
        // each install). So `p` is a live `Runtime<P>`.
        Ok(unsafe { &*p.cast::<Self>() })
    }

    /// The installed runtime, checked to be of type `P` (for calls from user code).
    pub(crate) fn get_checked() -> Result<&'static Self> {
        let ty = *RUNTIME_TYPE.lock().unwrap_or_else(PoisonError::into_inner);
        if ty != Some(TypeId::of::<P>()) {
            return Err(Error::RuntimeNotInstalled {
                type_name: std::any::type_name::<P>(),
            });
        }
        Self::get()
    }

    fn fresh(&'static self, index: VCPUIndex) -> Result<Vcpu<P>> {
        let shard = self.plugin.new_shard(index)?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Vcpu::new(shard, index, &self.config))
    }

    /// The running total's lock.
    fn total(&self) -> &Mutex<Option<P::Total>> {
        // SAFETY: `total` always holds a pointer from `new_total`, leaked and never freed
        // (a replaced one is abandoned, not dropped).
        unsafe { &*self.total.load(Ordering::Acquire) }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn create_lazily(
        &'static self,
        index: VCPUIndex,
        cell: &mut Option<Vcpu<P>>,
    ) -> Result<()> {
        *cell = Some(self.fresh(index)?);
        Ok(())
    }

    fn merge(&self, vcpu: Vcpu<P>) -> Result<()> {
        self.live.fetch_sub(1, Ordering::Relaxed);
        let mut total = self.total().lock().unwrap_or_else(PoisonError::into_inner);
        match total.as_mut() {
            Some(t) => self.plugin.merge(t, vcpu),
            None => Ok(()),
        }
    }

    /// Just before an execve replaces the process: merges the calling vCPU's shard, hands
    /// the total so far to `on_exit`, and goes on with a fresh total (reported at exit if
    /// the execve fails). Shards of other vCPUs still running stay where they are: a
    /// successful execve ends those threads without an exit hook, as QEMU does.
    pub(crate) fn report_before_exec(&'static self, index: VCPUIndex) -> Result<()> {
        let slot = self.shards.get(index as usize);
        if let Some(entered) = slot.enter() {
            // SAFETY: QEMU runs syscall hooks on vCPU `index`'s thread; we hold the entry
            // guard.
            let own = unsafe { slot.entered_cell(&entered) }.take();
            drop(entered);
            if let Some(vcpu) = own {
                self.merge(vcpu)?;
            }
        } else {
            // atexit has closed the slots: it reports everything itself.
            return Ok(());
        }
        let total = {
            let mut lock = self.total().lock().unwrap_or_else(PoisonError::into_inner);
            let taken = lock.take();
            if taken.is_some() {
                *lock = Some(P::Total::default());
            }
            taken
        };
        let others = self.live.load(Ordering::Relaxed);
        if others > 0 {
            crate::api::misc::outs_raw(&format!(
                "{}: execve with {others} other vCPU(s) running: the totals below leave out \
                 their counts since they started\n",
                crate::install::plugin_name()
            ));
        }
        match total {
            Some(total) => self.plugin.on_exit(total),
            None => Ok(()),
        }
    }

    /// Starts this forked child's runtime from zero (see `process`).
    ///
    /// # Safety
    /// Called in a just-forked child, on its only thread, before anything else runs.
    pub(crate) unsafe fn reset_in_child(&self) {
        for (_, slot) in self.shards.iter() {
            // SAFETY: the caller guarantees no other thread exists.
            unsafe { slot.reset_in_child() };
        }
        self.total.store(new_total::<P::Total>(), Ordering::Release);
        self.live.store(0, Ordering::Relaxed);
    }
}

/// Runs `f` on vCPU `index`'s shard from an exec-time callback (block, instruction,
/// memory), given segment 0 of the runtime's shard array, creating the shard first if
/// this vCPU has none yet. No lock, no atomic read-modify-write. A panic in `f` is caught
/// and reported as `Hook::Exec`'s.
///
/// Only the common case is inlined into the trampoline (index below
/// [`FIRST`](super::shards::FIRST), a constant; shard present); everything else is in the
/// cold [`on_shard_slow`], which catches its own panics and so cannot unwind: the
/// trampoline reaches it by a tail jump and needs no stack frame.
#[inline(always)]
pub(crate) fn on_shard<P: PerVcpu>(
    first: &'static First<Slot<P>>,
    index: VCPUIndex,
    f: impl FnOnce(&mut Vcpu<P>),
) {
    if let Some(slot) = first.get(index as usize) {
        // SAFETY: we are in an exec-time callback that QEMU runs on vCPU `index`'s thread
        // (see `Slot::exec_cell`).
        if let Some(vcpu) = unsafe { slot.exec_cell() }.as_mut() {
            return guard(Hook::Exec, (), || {
                f(vcpu);
                Ok(())
            });
        }
    }
    on_shard_slow(first, index, f)
}

/// The rest of [`on_shard`]: a vCPU index past segment 0, or a shard to create.
///
/// `extern "C"` only to tell the compiler that nothing unwinds out of it (its `guard`
/// catches every panic), so that the trampoline can jump to it instead of calling it
/// under a landing pad; it is never called from C.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)]
extern "C" fn on_shard_slow<P: PerVcpu, F: FnOnce(&mut Vcpu<P>)>(
    first: &'static First<Slot<P>>,
    index: VCPUIndex,
    f: F,
) {
    guard(Hook::Exec, (), || {
        let rt = Runtime::of_first(first)?;
        let slot = rt.shards.get(index as usize);
        // SAFETY: we are in an exec-time callback that QEMU runs on vCPU `index`'s thread.
        let cell = unsafe { slot.exec_cell() };
        if cell.is_none() {
            // No shard after a reported failure: a failing `new_shard` would otherwise
            // run again at every event until QEMU's uninstall takes effect.
            if failure::stopped(true) {
                return Ok(());
            }
            rt.create_lazily(index, cell)?;
        }
        if let Some(vcpu) = cell.as_mut() {
            f(vcpu)
        }
        Ok(())
    })
}

/// [`on_shard`] on the installed runtime, for callbacks whose userdata does not carry it
/// (memory callbacks).
#[inline(always)]
pub(crate) fn on_exec<P: PerVcpu>(index: VCPUIndex, f: impl FnOnce(&mut Vcpu<P>)) {
    match Runtime::<P>::get() {
        Ok(rt) => on_shard(rt.shards.first(), index, f),
        Err(e) => failure::error(Hook::Exec, &e),
    }
}

/// Runs a lifecycle or syscall hook on vCPU `index`'s shard (creating it if needed),
/// unless atexit has closed the slot.
fn on_hook<P: PerVcpu>(
    hook: Hook,
    index: VCPUIndex,
    f: impl FnOnce(&'static Runtime<P>, &mut Vcpu<P>) -> Result<()>,
) {
    guard(hook, (), || {
        // A syscall may be its thread's last (`exit`): an uninstall asked for there
        // would be lost with its vCPU. Every other hook's vCPU runs on.
        if failure::stopped(hook != Hook::Syscall) {
            return Ok(());
        }
        let rt = Runtime::<P>::get()?;
        let slot = rt.shards.get(index as usize);
        let Some(entered) = slot.enter() else {
            return Ok(());
        };
        // SAFETY: QEMU runs this hook on vCPU `index`'s thread; we hold the entry guard.
        let cell = unsafe { slot.entered_cell(&entered) };
        if cell.is_none() {
            rt.create_lazily(index, cell)?;
        }
        match cell.as_mut() {
            Some(vcpu) => f(rt, vcpu),
            None => Ok(()),
        }
    })
}

extern "C" fn vcpu_init<P: PerVcpu>(_id: PluginId, index: VCPUIndex) {
    on_hook::<P>(Hook::VcpuInit, index, |_, _| Ok(()))
}

extern "C" fn vcpu_exit<P: PerVcpu>(_id: PluginId, index: VCPUIndex) {
    failure::in_exit_hook(|| vcpu_exit_guarded::<P>(index))
}

fn vcpu_exit_guarded<P: PerVcpu>(index: VCPUIndex) {
    guard(Hook::VcpuExit, (), || {
        let rt = Runtime::<P>::get()?;
        let slot = rt.shards.get(index as usize);
        let Some(entered) = slot.enter() else {
            return Ok(());
        };
        // SAFETY: QEMU runs the exit hook on the exiting vCPU's thread, and completes it
        // before that index can be handed to a new vCPU (hw/core/cpu-common.c: the hook
        // runs before cpu_list_remove); we hold the entry guard.
        let taken = unsafe { slot.entered_cell(&entered) }.take();
        drop(entered);
        match taken {
            Some(vcpu) if !failure::stopped(false) => rt.merge(vcpu),
            _ => Ok(()),
        }
    })
}

extern "C" fn vcpu_idle<P: PerVcpu>(_id: PluginId, index: VCPUIndex) {
    on_hook::<P>(Hook::VcpuIdle, index, |rt, v| rt.plugin.idle(v))
}

extern "C" fn vcpu_resume<P: PerVcpu>(_id: PluginId, index: VCPUIndex) {
    on_hook::<P>(Hook::VcpuResume, index, |rt, v| rt.plugin.resume(v))
}

#[allow(clippy::too_many_arguments)]
extern "C" fn syscall<P: PerVcpu>(
    _id: PluginId,
    index: VCPUIndex,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
) {
    let call = Syscall {
        num,
        args: [a1, a2, a3, a4, a5, a6, a7, a8],
    };
    on_hook::<P>(Hook::Syscall, index, |rt, v| rt.plugin.syscall(v, &call));
    guard(Hook::Execve, (), || {
        if failure::stopped(false) {
            return Ok(());
        }
        process::before_syscall(Runtime::<P>::get()?, index, num, &call.args)
    })
}

extern "C" fn syscall_ret<P: PerVcpu>(_id: PluginId, index: VCPUIndex, num: i64, ret: i64) {
    let r = SyscallReturn { num, ret };
    on_hook::<P>(Hook::SyscallReturn, index, |rt, v| {
        rt.plugin.syscall_return(v, &r)
    })
}

extern "C" fn discon<P: PerVcpu>(
    _id: PluginId,
    index: VCPUIndex,
    kind: sys::qemu_plugin_discon_type,
    from_pc: u64,
    to_pc: u64,
) {
    let d = Discontinuity {
        kind: kind.into(),
        from_pc,
        to_pc,
    };
    on_hook::<P>(Hook::Discontinuity, index, |rt, v| {
        rt.plugin.discontinuity(v, &d)
    })
}

extern "C" fn tb_trans<P: PerVcpu>(_id: PluginId, tb: *mut sys::qemu_plugin_tb) {
    guard(Hook::Translate, (), || {
        if failure::stopped(true) {
            return Ok(());
        }
        let rt = Runtime::<P>::get()?;
        // SAFETY: QEMU passes the block being translated, valid for this callback; the
        // handle lives in `Translation`, which does not outlive it.
        let Some(tb) = (unsafe { TranslationBlock::from_raw(tb) }) else {
            return Ok(());
        };
        let scratch = rt.scratch.get_or_default();
        let mut scratch = scratch.try_borrow_mut()?;
        let mut translation = Translation::new(tb, rt, &mut scratch);
        rt.plugin.translate(&mut translation)
    })
}

extern "C" fn atexit<P: PerVcpu>(_id: PluginId, _userdata: *mut std::ffi::c_void) {
    guard(Hook::AtExit, (), || {
        let rt = Runtime::<P>::get()?;
        if failure::stopped(false) {
            return Ok(());
        }
        finish(rt)
    })
}

/// Merges every remaining shard and hands the total to `on_exit`.
fn finish<P: PerVcpu>(rt: &'static Runtime<P>) -> Result<()> {
    for (_, slot) in rt.shards.iter() {
        slot.close();
    }
    barrier::heavy();
    for (index, slot) in rt.shards.iter() {
        match slot.take_closed(EXIT_WAIT) {
            // The first failure ends it, an `Err` as a panic does: no more user code.
            Ok(Some(vcpu)) => rt.merge(vcpu)?,
            Ok(None) => {}
            Err(()) => crate::api::misc::outs_raw(&format!(
                "{}: vCPU {index} stayed inside a hook during exit; its shard was not merged\n",
                crate::install::plugin_name()
            )),
        }
    }
    let total = rt
        .total()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match total {
        Some(total) => rt.plugin.on_exit(total),
        None => Ok(()),
    }
}

/// Installs plugin type `P`: the installer that [`per_vcpu!`](crate::per_vcpu) registers.
#[doc(hidden)]
pub fn install<P: PerVcpu>(id: PluginId, args: &Args, info: &Info) -> Result<()> {
    barrier::init();
    let (plugin, config) = P::new(args, info)?;
    let rt: &'static Runtime<P> = Box::leak(Box::new(Runtime {
        plugin,
        config: ArcSwap::from_pointee(config),
        shards: Shards::new(),
        total: AtomicPtr::new(new_total::<P::Total>()),
        live: AtomicUsize::new(0),
        exec_syscalls: process::exec_syscalls(info),
        scratch: ThreadLocal::new(),
    }));
    rt.shards.set_owner((rt as *const Runtime<P>).cast());
    *RUNTIME_TYPE.lock().unwrap_or_else(PoisonError::into_inner) = Some(TypeId::of::<P>());
    RUNTIME.store(
        (rt as *const Runtime<P>).cast_mut().cast(),
        Ordering::Release,
    );

    if !P::DISCONTINUITIES.is_empty() {
        crate::qemu_plugin_register_vcpu_discon_cb(id, P::DISCONTINUITIES, Some(discon::<P>))?;
    }
    // SAFETY: each hook below is a plain function of this object, which stays mapped
    // (`host::pin_module`), with exactly the C signature QEMU expects for its event;
    // `rt` is published above, before any hook can run.
    unsafe {
        sys::qemu_plugin_register_vcpu_init_cb(id, Some(vcpu_init::<P>));
        sys::qemu_plugin_register_vcpu_exit_cb(id, Some(vcpu_exit::<P>));
        sys::qemu_plugin_register_vcpu_idle_cb(id, Some(vcpu_idle::<P>));
        sys::qemu_plugin_register_vcpu_resume_cb(id, Some(vcpu_resume::<P>));
        sys::qemu_plugin_register_vcpu_tb_trans_cb(id, Some(tb_trans::<P>));
        sys::qemu_plugin_register_vcpu_syscall_cb(id, Some(syscall::<P>));
        sys::qemu_plugin_register_vcpu_syscall_ret_cb(id, Some(syscall_ret::<P>));
        sys::qemu_plugin_register_atexit_cb(id, Some(atexit::<P>), std::ptr::null_mut());
    }
    register_flush(id);
    process::arm::<P>();
    Ok(())
}

/// Replaces the configuration shared by every vCPU of the installed plugin `P`. Each vCPU
/// sees it at its next event; translations already done keep what they captured.
///
/// Returns [`Error::RuntimeNotInstalled`] if `P` is not the installed plugin.
pub fn set_config<P: PerVcpu>(config: P::Config) -> Result<()> {
    let config = std::sync::Arc::new(config);
    // arc_swap publishes the new value with atomics race detectors cannot see; tell them
    // (matched in `Vcpu::config`; nothing in a normal build).
    crate::annotate::happens_before(&*config);
    Runtime::<P>::get_checked()?.config.store(config);
    Ok(())
}

/// How many per-vCPU slots the installed runtime of `P` has allocated: 64 from install,
/// then segments of 64, 128, 256... as vCPU indexes pass them. Its memory is this times
/// the padded slot size (a multiple of 128 bytes holding the shard inline), plus each
/// shard's own heap data.
pub fn allocated_slots<P: PerVcpu>() -> Result<usize> {
    Ok(Runtime::<P>::get_checked()?.shards.allocated())
}

/// Registers `P` as the plugin of this shared object: `per_vcpu!(MyPlugin);`.
#[macro_export]
macro_rules! per_vcpu {
    ($ty:ty) => {
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".text.startup"))]
        extern "C" fn __qemu_plugin_per_vcpu_ctor() {
            $crate::install::set_installer(
                env!("CARGO_CRATE_NAME"),
                $crate::runtime::install::<$ty>,
            );
        }

        #[used]
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".init_array"))]
        static __QEMU_PLUGIN_PER_VCPU_CTOR: extern "C" fn() = __qemu_plugin_per_vcpu_ctor;
    };
}
