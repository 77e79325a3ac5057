//! Execution-time callbacks: the generic `extern "C"` trampolines QEMU calls for a block,
//! an instruction or a memory access, and the helpers that register a Rust closure with
//! one of them. Both the 10.1-style handles and the per-vCPU runtime use these.

use std::ffi::c_void;

use super::stash::stash;
use super::trampoline::{Hook, guard};
use crate::VCPUIndex;
use crate::handles::mem::MemoryInfo;
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
