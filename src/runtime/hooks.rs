//! The `extern "C"` hooks QEMU calls for the per-vCPU runtime's lifecycle, syscall,
//! discontinuity, translation and exit events, and their registration.

use std::ffi::c_void;

use super::installed::Runtime;
use super::per_vcpu::{Discontinuity, PerVcpu, Syscall, SyscallReturn};
use super::translate::Translation;
use super::vcpu::Vcpu;
use super::{process, report};
use crate::callbacks::failure;
use crate::callbacks::lifecycle::register_flush;
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::Result;
use crate::handles::tb::TranslationBlock;
use crate::{PluginId, VCPUIndex, sys};

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
        let rt = Runtime::<P>::get()?;
        process::settle_fork(rt);
        if failure::stopped(hook != Hook::Syscall) {
            return Ok(());
        }
        let slot = rt.shards.get(index as usize);
        let Some(entered) = slot.enter() else {
            return Ok(());
        };
        // SAFETY: QEMU runs this hook on vCPU `index`'s thread; we hold the entry guard.
        let shard = unsafe { slot.shard(&entered) };
        let vcpu = match shard {
            Some(vcpu) => vcpu,
            // SAFETY: as above; the shard reference above is gone.
            None => unsafe { slot.put(&entered, rt.fresh(index)?) },
        };
        f(rt, vcpu)
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
        let rt = Runtime::<P>::get()?;
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
}

extern "C" fn atexit<P: PerVcpu>(_id: PluginId, _userdata: *mut c_void) {
    guard(Hook::AtExit, (), || {
        let rt = Runtime::<P>::get()?;
        process::settle_fork(rt);
        if failure::stopped(false) {
            return Ok(());
        }
        report::at_exit(rt)
    })
}

/// Registers every hook of the runtime of `P` with QEMU.
pub(crate) fn register<P: PerVcpu>(id: PluginId) -> Result<()> {
    if !P::DISCONTINUITIES.is_empty() {
        crate::qemu_plugin_register_vcpu_discon_cb(id, P::DISCONTINUITIES, Some(discon::<P>))?;
    }
    // SAFETY: each hook below is a plain function of this object, which stays mapped
    // (`host::pin_module`), with exactly the C signature QEMU expects for its event;
    // the runtime is published before the install calls this, so before any hook runs.
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
    Ok(())
}
