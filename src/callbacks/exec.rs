//! Execution-time callbacks: the generic `extern "C"` trampolines QEMU calls for a block,
//! an instruction or a memory access, and the helpers that register a Rust closure with
//! one of them. Both the 10.1-style handles and the per-vCPU runtime use these.

use std::ffi::c_void;
use std::sync::{Mutex, PoisonError};

use super::stash::stash;
use super::trampoline::{Hook, guard};
use crate::VCPUIndex;
use crate::handles::mem::MemoryInfo;
#[cfg(since_api_2)]
use crate::scoreboard::PluginU64;
use crate::sys;

/// QEMU's `qemu_plugin_vcpu_udata_cb_t` for a closure `F`.
pub(crate) extern "C" fn vcpu_udata<F>(vcpu: VCPUIndex, userdata: *mut c_void)
where
    F: Fn(VCPUIndex) + Send + Sync + 'static,
{
    guard(Hook::Exec, (), || {
        // SAFETY: `userdata` is the pointer `stash::<F>` returned when this trampoline was
        // registered with it (see `udata`); the closure lives until the next flush, and no
        // block that could call us survives a flush.
        let f = unsafe { &*userdata.cast::<F>() };
        f(vcpu);
        Ok(())
    })
}

/// QEMU's `qemu_plugin_vcpu_mem_cb_t` for a closure `F`.
pub(crate) extern "C" fn vcpu_mem<F>(
    vcpu: VCPUIndex,
    info: sys::qemu_plugin_meminfo_t,
    vaddr: u64,
    userdata: *mut c_void,
) where
    F: for<'a> Fn(VCPUIndex, MemoryInfo<'a>, u64) + Send + Sync + 'static,
{
    guard(Hook::Memory, (), || {
        // SAFETY: as in `vcpu_udata`: `userdata` is a live `F` stashed for this trampoline.
        let f = unsafe { &*userdata.cast::<F>() };
        // SAFETY: `info` is the meminfo QEMU passes for this access, valid for this call;
        // the `MemoryInfo` borrows it for no longer than the call.
        f(vcpu, unsafe { MemoryInfo::new(info) }, vaddr);
        Ok(())
    })
}

/// A registered exec closure: the trampoline and the `userdata` to give QEMU.
pub(crate) struct Udata {
    pub(crate) cb: sys::qemu_plugin_vcpu_udata_cb_t,
    pub(crate) userdata: *mut c_void,
}

/// Stashes `f` and pairs it with its trampoline.
pub(crate) fn udata<F>(f: F) -> Udata
where
    F: Fn(VCPUIndex) + Send + Sync + 'static,
{
    Udata {
        cb: Some(vcpu_udata::<F>),
        userdata: stash(f),
    }
}

/// A closure that may mutate what it captures (`FnMut`, as the 10.1.0-v2 crate accepts),
/// made safe to call from several vCPU threads at once: each call holds the closure's own
/// lock. (10.1.0-v2 called such closures through aliased `&mut` from several vCPUs at
/// once: a data race.) The per-vCPU runtime's closures are `Fn` and take no lock.
struct Locked<F>(Mutex<F>);

impl<F> Locked<F> {
    #[inline]
    fn with<R>(&self, call: impl FnOnce(&mut F) -> R) -> R {
        // A panic in the closure is reported (and the plugin uninstalled) by the
        // trampoline; a call that still arrives uses the closure as it was left.
        let mut f = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The race detectors cannot see std's futex-based lock: describe its ordering
        // (the previous holder's calls happen before this one's).
        crate::annotate::happens_after(&self.0);
        let result = call(&mut f);
        crate::annotate::happens_before(&self.0);
        drop(f);
        result
    }
}

/// Stashes a closure that may mutate its captures, behind its own lock (see `Locked`).
pub(crate) fn udata_mut<F>(f: F) -> Udata
where
    F: FnMut(VCPUIndex) + Send + 'static,
{
    let f = Locked(Mutex::new(f));
    udata(move |vcpu| f.with(|f| f(vcpu)))
}

/// Stashes a memory closure that may mutate its captures, behind its own lock.
pub(crate) fn mem_udata_mut<F>(f: F) -> MemUdata
where
    F: for<'a> FnMut(VCPUIndex, MemoryInfo<'a>, u64) + Send + 'static,
{
    let f = Locked(Mutex::new(f));
    mem_udata(move |vcpu, info, vaddr| f.with(|f| f(vcpu, info, vaddr)))
}

/// A registered memory closure: the trampoline and the `userdata` to give QEMU.
pub(crate) struct MemUdata {
    pub(crate) cb: sys::qemu_plugin_vcpu_mem_cb_t,
    pub(crate) userdata: *mut c_void,
}

/// Stashes `f` and pairs it with its memory trampoline.
pub(crate) fn mem_udata<F>(f: F) -> MemUdata
where
    F: for<'a> Fn(VCPUIndex, MemoryInfo<'a>, u64) + Send + Sync + 'static,
{
    MemUdata {
        cb: Some(vcpu_mem::<F>),
        userdata: stash(f),
    }
}

/// `qemu_plugin_register_vcpu_{tb,insn}_exec_cb`.
pub(crate) type RegisterFn<R> = unsafe extern "C" fn(
    *mut R,
    sys::qemu_plugin_vcpu_udata_cb_t,
    sys::qemu_plugin_cb_flags,
    *mut c_void,
);
/// `qemu_plugin_register_vcpu_{tb,insn}_exec_cond_cb`.
#[cfg(since_api_3)]
pub(crate) type RegisterCondFn<R> = unsafe extern "C" fn(
    *mut R,
    sys::qemu_plugin_vcpu_udata_cb_t,
    sys::qemu_plugin_cb_flags,
    sys::qemu_plugin_cond,
    sys::qemu_plugin_u64,
    u64,
    *mut c_void,
);
/// `qemu_plugin_register_vcpu_{tb,insn}_exec_inline_per_vcpu`.
#[cfg(since_api_2)]
pub(crate) type RegisterInlineFn<R> =
    unsafe extern "C" fn(*mut R, sys::qemu_plugin_op, sys::qemu_plugin_u64, u64);

/// A block or an instruction being translated: what exec callbacks and inline ops attach
/// to. Implemented by the handles, with QEMU's registration functions for each.
pub(crate) trait ExecSite {
    /// QEMU's opaque type (`qemu_plugin_tb` or `qemu_plugin_insn`).
    type Raw;
    const REGISTER: RegisterFn<Self::Raw>;
    #[cfg(since_api_3)]
    const REGISTER_COND: RegisterCondFn<Self::Raw>;
    #[cfg(since_api_2)]
    const REGISTER_INLINE: RegisterInlineFn<Self::Raw>;
    /// The handle, valid while the translation callback runs (the handle's lifetime).
    fn raw(&self) -> *mut Self::Raw;
}

/// Calls `u`'s trampoline with its userdata each time `site` executes.
pub(crate) fn register<S: ExecSite>(site: &S, flags: sys::qemu_plugin_cb_flags, u: Udata) {
    // SAFETY: `site.raw()` is being translated (the handle cannot outlive the callback);
    // `S::REGISTER` is QEMU's registration function for that handle type; a `Udata` only
    // pairs a trampoline with the userdata it expects (`udata`, `runtime::exec`).
    unsafe { S::REGISTER(site.raw(), u.cb, flags, u.userdata) }
}

/// As [`register`], only when `entry cond imm` holds for the executing vCPU.
#[cfg(since_api_3)]
pub(crate) fn register_if<S: ExecSite>(
    site: &S,
    flags: sys::qemu_plugin_cb_flags,
    cond: sys::qemu_plugin_cond,
    entry: PluginU64<'static>,
    imm: u64,
    u: Udata,
) {
    // SAFETY: as in `register`; `entry` points into a never-freed scoreboard ('static), so
    // the read QEMU emits stays valid for as long as the block lives.
    unsafe { S::REGISTER_COND(site.raw(), u.cb, flags, cond, entry.raw(), imm, u.userdata) }
}

/// Applies `op` with `imm` to the executing vCPU's `entry` each time `site` executes.
#[cfg(since_api_2)]
pub(crate) fn inline<S: ExecSite>(
    site: &S,
    op: sys::qemu_plugin_op,
    entry: PluginU64<'static>,
    imm: u64,
) {
    // SAFETY: as in `on_exec_if`.
    unsafe { S::REGISTER_INLINE(site.raw(), op, entry.raw(), imm) }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::{HasCallbacks, PluginId, Register, Result, TranslationBlock};
    use qemu_plugin_mock::{Block, MockHost, Workload};

    /// What the `FnMut` closures counted, added when each is dropped (at the flush).
    static COUNTED: AtomicU64 = AtomicU64::new(0);

    /// A plain (non-atomic) count, captured by value and mutated by the closure.
    struct Count(u64);

    impl Drop for Count {
        fn drop(&mut self) {
            COUNTED.fetch_add(self.0, Ordering::SeqCst);
        }
    }

    struct Mutating;

    impl Register for Mutating {}

    impl HasCallbacks for Mutating {
        fn on_translation_block_translate(
            &mut self,
            _id: PluginId,
            tb: TranslationBlock,
        ) -> Result<()> {
            let mut count = Count(0);
            tb.register_execute_callback(move |_vcpu| {
                // The whole `Count` is captured (not just its field), so its drop reports.
                let count = &mut count;
                count.0 += 1;
            });
            Ok(())
        }
    }

    /// 10.1.0-v2 accepted `FnMut` exec closures and called them through aliased `&mut`
    /// from several vCPUs at once. They are accepted here too, each behind its own lock:
    /// 4 vCPUs executing the same blocks at once lose no increment of a plain `u64`
    /// (and, in the race check, helgrind and DRD see no race on it).
    #[test]
    fn fnmut_closures_run_by_several_vcpus_at_once_lose_nothing() {
        COUNTED.store(0, Ordering::SeqCst);
        let mut host = MockHost::system(4);
        crate::plugin::register_plugin(Mutating);
        crate::install::set_installer("mutating", crate::plugin::install);
        assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
        host.boot();
        let scale = std::env::var("QEMU_PLUGIN_STRESS_SCALE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(1.0);
        let reps = ((50_000.0 * scale) as u64).max(100);
        let w = Workload::new()
            .step(Block::synthetic(0x1000, 3), reps)
            .step(Block::synthetic(0x2000, 2), reps);
        let stats = host.run(&w);
        // The flush frees every stashed closure, and with it its count.
        host.flush();
        assert_eq!(COUNTED.load(Ordering::SeqCst), stats.blocks);
        assert!(host.violations().is_empty(), "{:?}", host.violations());
    }
}
