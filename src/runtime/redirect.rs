//! Exec closures that may move the PC (plugin API 6 and later, QEMU 11.0): the closure
//! returns the address to continue at, and the trampoline hands it to
//! `qemu_plugin_set_pc` once every Rust value of the callback has been dropped.
//!
//! `qemu_plugin_set_pc` never returns: it leaves the callback through QEMU's
//! `cpu_loop_exit`, a longjmp over this trampoline's frame. Jumping over a Rust frame is
//! only sound when nothing in it still needs dropping, so the closure, the slot entry
//! guard and the trampoline guard all live in [`run`], which returns before the jump;
//! the trampoline keeps nothing but the `Option<u64>` it got back. QEMU aborts unless
//! the callback runs with `QEMU_PLUGIN_CB_RW_REGS_PC`, which registration here always
//! gives, so the plugin cannot get that wrong either.

use std::ffi::c_void;

use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;
use crate::VCPUIndex;
use crate::callbacks::exec::Udata;

/// Pairs `f` with the redirecting trampoline for `rt`'s shards.
pub(crate) fn redirect_udata<P, F>(rt: &'static Runtime<P>, f: F) -> Udata
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) -> Option<u64> + Send + Sync + 'static,
{
    Udata {
        cb: Some(super::barrier::for_exec_barrier!(redirect_exec::<P, F>)),
        userdata: super::exec::bind(rt, f),
    }
}

/// Runs the closure on the executing vCPU's shard and returns where to continue, with
/// every guard dropped on return. Not inlined, so that its frame (which holds them) is
/// gone before the trampoline jumps.
#[inline(never)]
fn run<P, F, const FENCED: bool>(index: VCPUIndex, userdata: *mut c_void) -> Option<u64>
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) -> Option<u64> + Send + Sync + 'static,
{
    // SAFETY: QEMU passes back the userdata `redirect_udata::<P, F>` registered with
    // this very trampoline (made by `bind::<P, F>`).
    let (first, f) = unsafe { super::exec::unpack::<P, F>(userdata) };
    let mut target = None;
    super::shard_access::on_shard::<P, FENCED>(first, index, |vcpu| target = f(vcpu));
    target
}

/// QEMU's `qemu_plugin_vcpu_udata_cb_t` for a redirecting closure `F` of plugin `P`.
extern "C" fn redirect_exec<P, F, const FENCED: bool>(index: VCPUIndex, userdata: *mut c_void)
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) -> Option<u64> + Send + Sync + 'static,
{
    let target = run::<P, F, FENCED>(index, userdata);
    if let Some(pc) = target {
        // SAFETY: QEMU runs this callback with `QEMU_PLUGIN_CB_RW_REGS_PC`, the flags
        // `on_exec_redirect` registered it with, on the executing vCPU's thread; nothing
        // live in this frame needs dropping (`run` has returned; `target` is a plain
        // integer), so the longjmp skips no destructor.
        unsafe { crate::sys::qemu_plugin_set_pc(pc) }
    }
}
