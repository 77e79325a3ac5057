//! The `extern "C"` hooks QEMU calls for the per-vCPU runtime's lifecycle, syscall,
//! discontinuity, translation and exit events, and their registration.

use std::ffi::c_void;

use super::installed::Runtime;
use super::per_vcpu::{Discontinuity, PerVcpu, Syscall, SyscallReturn};
use super::shard_access::on_entered_shard;
use super::translate::Translation;
use super::vcpu::Vcpu;
use super::{process, report};
use crate::callbacks::failure;
use crate::callbacks::lifecycle::register_flush;
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::Result;
use crate::handles::tb::TranslationBlock;
use crate::sys::callback_abi::{self as abi, Userdata, qemu_callback};
use crate::{PluginId, VCPUIndex};

/// Runs a lifecycle or syscall hook on vCPU `index`'s shard (creating it if needed),
/// unless atexit has closed the slot.
fn on_hook<P: PerVcpu>(
    hook: Hook,
    ud: Userdata,
    index: VCPUIndex,
    f: impl FnOnce(&'static Runtime<P>, &mut Vcpu<P>) -> Result<()>,
) {
    guard(hook, (), || {
        // A syscall may be its thread's last (`exit`): an uninstall asked for there
        // would be lost with its vCPU. Every other hook's vCPU runs on.
        let rt = Runtime::<P>::from_userdata(ud)?;
        process::settle_fork(rt);
        if failure::stopped(!matches!(hook, Hook::Syscall | Hook::SyscallFilter)) {
            return Ok(());
        }
        // SAFETY: QEMU runs this hook on vCPU `index`'s thread, for that vCPU.
        unsafe { on_entered_shard(rt, index, || true, |vcpu| f(rt, vcpu)) }
    })
}

qemu_callback!(vcpu fn vcpu_init[P: PerVcpu](ud, index) {
    on_hook::<P>(Hook::VcpuInit, ud, index, |_, _| Ok(()))
});

qemu_callback!(vcpu fn vcpu_exit[P: PerVcpu](ud, index) {
    failure::in_exit_hook(|| vcpu_exit_guarded::<P>(ud, index))
});

fn vcpu_exit_guarded<P: PerVcpu>(ud: Userdata, index: VCPUIndex) {
    guard(Hook::VcpuExit, (), || {
        let rt = Runtime::<P>::from_userdata(ud)?;
        process::settle_fork(rt);
        let slot = rt.shards.get(index as usize);
        let Some(entered) = slot.enter() else {
            return Ok(());
        };
        // SAFETY: QEMU runs the exit hook on the exiting vCPU's thread, and completes it
        // before that index can be handed to a new vCPU (hw/core/cpu-common.c: the hook
        // runs before cpu_list_remove); we hold the entry guard.
        let taken = unsafe { slot.take(&entered) };
        // The guard is held until the shard is in the total: an exit that ran meanwhile
        // waits for it rather than taking the total without this vCPU's counts.
        let merged = match taken {
            Some(vcpu) if !failure::stopped(false) => rt.merge(vcpu),
            _ => Ok(()),
        };
        drop(entered);
        merged
    })
}

qemu_callback!(vcpu fn vcpu_idle[P: PerVcpu](ud, index) {
    on_hook::<P>(Hook::VcpuIdle, ud, index, |rt, v| rt.plugin.idle(v))
});

qemu_callback!(vcpu fn vcpu_resume[P: PerVcpu](ud, index) {
    on_hook::<P>(Hook::VcpuResume, ud, index, |rt, v| rt.plugin.resume(v))
});

qemu_callback!(syscall fn syscall[P: PerVcpu](ud, index, num, args) {
    let call = Syscall { num, args };
    on_hook::<P>(Hook::Syscall, ud, index, |rt, v| rt.plugin.syscall(v, &call));
    guard(Hook::Execve, (), || {
        if failure::stopped(false) {
            return Ok(());
        }
        process::before_syscall(Runtime::<P>::from_userdata(ud)?, index, num, &call.args)
    })
});

qemu_callback!(syscall_filter fn syscall_filter[P: PerVcpu](ud, index, num, args, sysret) -> bool {
    let call = Syscall { num, args };
    let mut answer = None;
    on_hook::<P>(Hook::SyscallFilter, ud, index, |rt, v| {
        answer = rt.plugin.syscall_filter(v, &call)?;
        Ok(())
    });
    match answer {
        Some(ret) => {
            // SAFETY: QEMU passes a valid, writable `sysret` (its own zeroed local) to
            // each filter; the pointee is the API's 64-bit integer (`uint64_t` in API 6,
            // `int64_t` in 7), so `as` keeps the bits.
            unsafe { sysret.write(ret as crate::sys::SysRet) };
            true
        }
        None => false,
    }
});

qemu_callback!(syscall_ret fn syscall_ret[P: PerVcpu](ud, index, num, ret) {
    let r = SyscallReturn { num, ret };
    on_hook::<P>(Hook::SyscallReturn, ud, index, |rt, v| {
        rt.plugin.syscall_return(v, &r)
    })
});

qemu_callback!(discon fn discon[P: PerVcpu](ud, index, kind, from_pc, to_pc) {
    let d = Discontinuity {
        kind: kind.into(),
        from_pc,
        to_pc,
    };
    on_hook::<P>(Hook::Discontinuity, ud, index, |rt, v| {
        rt.plugin.discontinuity(v, &d)
    })
});

qemu_callback!(tb_trans fn tb_trans[P: PerVcpu](ud, tb) {
    guard(Hook::Translate, (), || {
        let rt = Runtime::<P>::from_userdata(ud)?;
        process::settle_fork(rt);
        if failure::stopped(true) {
            return Ok(());
        }
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
});

qemu_callback!(udata fn atexit[P: PerVcpu](ud) {
    guard(Hook::AtExit, (), || {
        let rt = Runtime::<P>::from_userdata(ud)?;
        process::settle_fork(rt);
        if failure::stopped(false) {
            return Ok(());
        }
        report::at_exit(rt)
    })
});

/// Registers every hook of the runtime `rt` with QEMU. Under API 7 each hook gets `rt` as
/// its userdata, so no hook looks the runtime up; before, they find it with
/// `Runtime::get` (one atomic load).
pub(crate) fn register<P: PerVcpu>(id: PluginId, rt: &'static Runtime<P>) -> Result<()> {
    let ud = (rt as *const Runtime<P>).cast_mut().cast::<c_void>();
    if P::SYSCALL_FILTER {
        register_filter::<P>(id, ud)?;
    }
    if !P::DISCONTINUITIES.is_empty() {
        crate::callbacks::discon::register_api_shaped(
            id,
            P::DISCONTINUITIES,
            Some(discon::<P>),
            ud,
        )?;
    }
    // SAFETY: each hook below is a plain function of this object, which stays mapped
    // (`host::pin_module`), defined by `qemu_callback!` with the C parameters of its
    // event under the selected API; `ud` is the leaked, never-freed runtime, published
    // before the install calls this, so before any hook runs.
    unsafe {
        abi::register_vcpu_init(id, Some(vcpu_init::<P>), ud);
        abi::register_vcpu_exit(id, Some(vcpu_exit::<P>), ud);
        abi::register_vcpu_idle(id, Some(vcpu_idle::<P>), ud);
        abi::register_vcpu_resume(id, Some(vcpu_resume::<P>), ud);
        if P::TRANSLATES {
            abi::register_tb_trans(id, Some(tb_trans::<P>), ud);
        }
        abi::register_syscall(id, Some(syscall::<P>), ud);
        abi::register_syscall_ret(id, Some(syscall_ret::<P>), ud);
        abi::register_atexit(id, Some(atexit::<P>), ud);
    }
    register_flush(id);
    Ok(())
}

/// Registers the runtime's syscall filter (API 6 and later).
#[cfg(since_api_6)]
fn register_filter<P: PerVcpu>(id: PluginId, ud: *mut c_void) -> Result<()> {
    // SAFETY: as for the hooks in `register`: a plain function of this object with the
    // filter's C parameters under the selected API, and the runtime as userdata.
    unsafe { abi::register_syscall_filter(id, Some(syscall_filter::<P>), ud) };
    Ok(())
}

/// Before API 6 QEMU has no syscall filter: a plugin that asks for one is refused.
#[cfg(not(since_api_6))]
#[allow(clippy::extra_unused_type_parameters)] // the same call as API 6's
fn register_filter<P: PerVcpu>(_id: PluginId, _ud: *mut c_void) -> Result<()> {
    Err(crate::Error::from(crate::Failure::Unsupported {
        api: "qemu_plugin_register_vcpu_syscall_filter_cb",
        needs: "11.0",
    }))
}
