//! Plugin-wide events: uninstall and reset (with completion closures), atexit, flush,
//! vCPU init/exit/idle/resume, `vcpu_for_each` and the vCPU count.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::trampoline::{Hook, guard};
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::callback_abi::{self as abi, id_shaped, qemu_callback};
use crate::{
    FlushCallback, PluginId, VCPUExitCallback, VCPUIdleCallback, VCPUIndex, VCPUInitCallback,
    VCPUResumeCallback, VCPUTranslationBlockTranslationCallback,
};

type Completion = Box<dyn FnOnce(PluginId) + Send + 'static>;

static UNINSTALL: Mutex<Option<Completion>> = Mutex::new(None);
static RESET: Mutex<Option<Completion>> = Mutex::new(None);

qemu_callback!(plain fn uninstall_done[](_ud) {
    crate::identity::set_uninstalled();
    let cb = UNINSTALL.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(cb) = cb {
        guard(Hook::Uninstall, (), || {
            cb(crate::identity::id());
            Ok(())
        });
    }
});

qemu_callback!(plain fn reset_done[](_ud) {
    let cb = RESET.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(cb) = cb {
        guard(Hook::Reset, (), || {
            cb(crate::identity::id());
            Ok(())
        });
    }
});

/// Uninstalls the plugin; `cb` runs once QEMU has removed it. Callbacks may still arrive
/// until then. Must not be called from install (return an error there instead).
/// Needs: any QEMU with plugins.
pub fn qemu_plugin_uninstall<F>(id: PluginId, cb: F) -> Result<()>
where
    F: FnOnce(PluginId) + Send + Sync + 'static,
{
    {
        let mut slot = UNINSTALL.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(Error::ConcurrentPluginUninstallCallbackSet);
        }
        *slot = Some(Box::new(cb));
    }
    // SAFETY: `uninstall_done` is a plain function of this object, which stays mapped
    // (`host::pin_module`); QEMU ignores a repeated uninstall request.
    unsafe { abi::uninstall(id, Some(uninstall_done), ptr::null_mut()) };
    Ok(())
}

/// Resets the plugin: QEMU drops all its callbacks, then runs `cb`. A pending reset's
/// closure is replaced. Needs: any QEMU with plugins.
pub fn qemu_plugin_reset<F>(id: PluginId, cb: F) -> Result<()>
where
    F: FnOnce(PluginId) + Send + Sync + 'static,
{
    *RESET.lock().map_err(|_| Error::PluginResetCallbackState)? = Some(Box::new(cb));
    // SAFETY: as for uninstall; `reset_done` reads its own slot (not uninstall's).
    unsafe { abi::reset(id, Some(reset_done), ptr::null_mut()) };
    Ok(())
}

/// The plugin's own vCPU-init callback, which [`vcpu_init_chain`] calls.
static USER_INIT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

qemu_callback!(
    /// The crate's vCPU-init callback: QEMU runs it on each new vCPU's thread before that
    /// vCPU executes guest code. It marks the thread as a vCPU thread (the trampoline does,
    /// see `context`), then runs the plugin's own init callback, if any.
    vcpu fn vcpu_init_chain[](_ud, vcpu) {
    guard(Hook::VcpuInit, (), || {
        let user = USER_INIT.load(Ordering::Acquire);
        if !user.is_null() {
            // SAFETY: only `qemu_plugin_register_vcpu_init_cb` stores here, and only a
            // function of type `VCPUInitCallback`'s inner fn pointer.
            let user: sys::IdVcpuCb = unsafe { std::mem::transmute(user) };
            // SAFETY: the plugin registered `user` for exactly this call.
            unsafe { user(crate::identity::id(), vcpu) };
        }
        Ok(())
    })
});

/// Registers the crate's vCPU-init callback for a plugin that has none of its own yet
/// (called at install, before the plugin's code).
pub(crate) fn register_vcpu_init_marker(id: PluginId) {
    // SAFETY: `vcpu_init_chain` is a plain function of this object, which stays mapped
    // (`host::pin_module`), with the signature QEMU expects.
    unsafe { abi::register_vcpu_init(id, Some(vcpu_init_chain), ptr::null_mut()) };
}

/// Registers `cb` to run on vCPU initialisation, on that vCPU's thread (`None`: no
/// callback of the plugin's own). Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_init_cb(id: PluginId, cb: VCPUInitCallback) -> Result<()> {
    USER_INIT.store(
        cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void),
        Ordering::Release,
    );
    register_vcpu_init_marker(id);
    Ok(())
}

/// Registers `cb` to run when a vCPU exits, on that vCPU's thread.
/// Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_exit_cb(id: PluginId, cb: VCPUExitCallback) -> Result<()> {
    let (cb, ud) = id_shaped::vcpu(cb);
    // SAFETY: `cb` is the plugin's function (or the adapter that calls it with `ud`).
    unsafe { abi::register_vcpu_exit(id, cb, ud) };
    Ok(())
}

/// Registers `cb` to run when a vCPU goes idle (system mode). Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_idle_cb(id: PluginId, cb: VCPUIdleCallback) -> Result<()> {
    let (cb, ud) = id_shaped::vcpu(cb);
    // SAFETY: as for `qemu_plugin_register_vcpu_exit_cb`.
    unsafe { abi::register_vcpu_idle(id, cb, ud) };
    Ok(())
}

/// Registers `cb` to run when a vCPU resumes from idle (system mode).
/// Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_resume_cb(id: PluginId, cb: VCPUResumeCallback) -> Result<()> {
    let (cb, ud) = id_shaped::vcpu(cb);
    // SAFETY: as for `qemu_plugin_register_vcpu_exit_cb`.
    unsafe { abi::register_vcpu_resume(id, cb, ud) };
    Ok(())
}

/// Registers `cb` to run on each block translation. In system mode it can run on several
/// threads at once. Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_tb_trans_cb(
    id: PluginId,
    cb: VCPUTranslationBlockTranslationCallback,
) -> Result<()> {
    let (cb, ud) = id_shaped::tb_trans(cb);
    // SAFETY: as for `qemu_plugin_register_vcpu_exit_cb`.
    unsafe { abi::register_tb_trans(id, cb, ud) };
    Ok(())
}

static USER_FLUSH: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static FLUSHES: AtomicU64 = AtomicU64::new(0);

/// How many times QEMU has flushed its translation cache since this plugin was loaded
/// (every flush frees the exec closures of the discarded blocks; see
/// [`live_closures`](crate::callbacks::live_closures)).
pub fn flush_count() -> u64 {
    FLUSHES.load(Ordering::Relaxed)
}

qemu_callback!(
    /// The flush callback the crate always registers: it frees the closures of the blocks
    /// QEMU just discarded, then runs the user's flush callback, if any.
    plain fn flush_trampoline[](_ud) {
    guard(Hook::Flush, (), || {
        // SAFETY: QEMU calls flush callbacks with every vCPU stopped, after discarding
        // every translated block, so no stashed closure can be called again.
        unsafe { super::stash::clear() };
        FLUSHES.fetch_add(1, Ordering::Relaxed);
        let user = USER_FLUSH.load(Ordering::Acquire);
        if !user.is_null() {
            // SAFETY: only `qemu_plugin_register_flush_cb` stores here, and only a valid
            // `IdPlainCb` cast to a data pointer.
            let f: sys::IdPlainCb = unsafe { std::mem::transmute(user) };
            // SAFETY: the user registered `f` as a flush callback with this signature.
            unsafe { f(crate::identity::id()) };
        }
        Ok(())
    })
});

/// Registers the crate's flush callback (which frees stashed closures).
pub(crate) fn register_flush(id: PluginId) {
    // SAFETY: `flush_trampoline` is a plain function of this (pinned) object.
    unsafe { abi::register_flush(id, Some(flush_trampoline), ptr::null_mut()) };
}

/// Registers `cb` to run after QEMU flushes its translation cache (all vCPUs stopped).
///
/// The crate keeps its own flush callback registered, which frees the closures of the
/// discarded blocks, and calls `cb` from it. Needs: any QEMU with plugins.
pub fn qemu_plugin_register_flush_cb(id: PluginId, cb: FlushCallback) {
    let ptr = cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
    USER_FLUSH.store(ptr, Ordering::Release);
    register_flush(id);
}

qemu_callback!(udata fn atexit_trampoline[F: FnOnce(PluginId) + Send + 'static](ud) {
    guard(Hook::AtExit, (), || {
        // SAFETY: `ud` is the `Box<F>` leaked by `qemu_plugin_register_atexit_cb`;
        // QEMU calls atexit callbacks once, so it is reclaimed once.
        let cb = unsafe { Box::from_raw(ud.ptr().cast::<F>()) };
        cb(crate::identity::id());
        Ok(())
    })
});

/// Registers `cb` to run once when QEMU exits. In user mode QEMU has unregistered every
/// other callback by then. Registering again replaces the earlier closure (which is then
/// never run nor freed). Needs: any QEMU with plugins.
pub fn qemu_plugin_register_atexit_cb<F>(id: PluginId, cb: F) -> Result<()>
where
    F: FnOnce(PluginId) + Send + Sync + 'static,
{
    let userdata = Box::into_raw(Box::new(cb)).cast::<c_void>();
    // SAFETY: `atexit_trampoline::<F>` reclaims exactly this box, once.
    unsafe { abi::register_atexit(id, Some(atexit_trampoline::<F>), userdata) };
    Ok(())
}

thread_local! {
    static FOR_EACH: Cell<Option<*mut (dyn FnMut(VCPUIndex) + 'static)>> = const { Cell::new(None) };
}

qemu_callback!(vcpu fn for_each_trampoline[](_ud, vcpu) {
    guard(Hook::ForEach, (), || {
        if let Some(f) = FOR_EACH.with(Cell::get) {
            // SAFETY: `qemu_plugin_vcpu_for_each` set this pointer to a closure that lives
            // on its stack for the duration of QEMU's synchronous iteration, on this
            // thread, and nothing else uses it meanwhile.
            unsafe { (*f)(vcpu) };
        }
        Ok(())
    })
});

/// Calls `cb` for each live vCPU, synchronously. Needs: any QEMU with plugins.
pub fn qemu_plugin_vcpu_for_each(id: PluginId, mut cb: impl FnMut(VCPUIndex)) {
    let dyn_ref: &mut dyn FnMut(VCPUIndex) = &mut cb;
    // SAFETY: erases the closure's lifetime to store it in the thread-local; the pointer is
    // removed below before `cb` goes out of scope, and only used during the call.
    let ptr: *mut (dyn FnMut(VCPUIndex) + 'static) = unsafe { std::mem::transmute(dyn_ref) };
    let previous = FOR_EACH.with(|c| c.replace(Some(ptr)));
    // SAFETY: QEMU iterates its vCPU table and calls the trampoline synchronously.
    unsafe { abi::vcpu_for_each(id, Some(for_each_trampoline), ptr::null_mut()) };
    FOR_EACH.with(|c| c.set(previous));
}

/// The number of vCPUs QEMU has created so far, or `None` if QEMU answers -1.
/// Needs: QEMU 9.0 (plugin API v2).
#[cfg(since_api_2)]
pub fn qemu_plugin_num_vcpus() -> Option<i32> {
    // SAFETY: a plain query with no arguments.
    let n = unsafe { sys::qemu_plugin_num_vcpus() };
    (n >= 0).then_some(n)
}
