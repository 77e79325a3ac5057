//! The exec-time trampoline of the per-vCPU runtime: what QEMU calls for a block or an
//! instruction closure registered through [`Translation`](super::Translation).
//!
//! The userdata QEMU hands back carries the runtime itself, so the hot path needs no
//! global: for a closure that captures nothing (a zero-sized type) the userdata *is* the
//! leaked `Runtime<P>`; otherwise it is a stashed `Bound { rt, f }`, freed at the next
//! flush like every exec closure. The hot path is then [`on_shard`]'s: slot address (one
//! bounds check), `Option` check, the closure; the rest is in a cold function.

use std::ffi::c_void;
use std::ptr::NonNull;

use super::driver::{Runtime, on_shard};
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;
use crate::VCPUIndex;
use crate::callbacks::exec::Udata;
use crate::callbacks::stash::stash;

/// A closure stored with the runtime it runs in.
struct Bound<P: PerVcpu, F> {
    rt: &'static Runtime<P>,
    f: F,
}

/// Pairs `f` (and `rt`) with [`shard_exec`], without allocating when `f` is zero-sized.
pub(crate) fn shard_udata<P, F>(rt: &'static Runtime<P>, f: F) -> Udata
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
{
    let userdata = if size_of::<F>() == 0 {
        // A zero-sized closure has no state to keep (and no drop glue that matters).
        std::mem::forget(f);
        (rt as *const Runtime<P>).cast_mut().cast::<c_void>()
    } else {
        stash(Bound { rt, f })
    };
    Udata {
        cb: Some(shard_exec::<P, F>),
        userdata,
    }
}

/// Recovers the runtime and the closure from `userdata`.
///
/// # Safety
/// `userdata` was produced by `shard_udata::<P, F>` and (if boxed) not freed yet.
#[inline(always)]
unsafe fn unpack<'u, P: PerVcpu, F>(userdata: *mut c_void) -> (&'static Runtime<P>, &'u F) {
    if size_of::<F>() == 0 {
        // SAFETY: for a zero-sized `F`, `shard_udata` passed the leaked runtime, and any
        // well-aligned non-null pointer is a valid `&F`.
        unsafe {
            (
                &*userdata.cast::<Runtime<P>>(),
                NonNull::<F>::dangling().as_ref(),
            )
        }
    } else {
        // SAFETY: otherwise it passed a stashed `Bound<P, F>`, alive until the next flush,
        // and no block that could call us survives a flush.
        let b = unsafe { &*userdata.cast::<Bound<P, F>>() };
        (b.rt, &b.f)
    }
}

/// QEMU's `qemu_plugin_vcpu_udata_cb_t` for a per-vCPU closure `F` of plugin `P`.
pub(crate) extern "C" fn shard_exec<P, F>(index: VCPUIndex, userdata: *mut c_void)
where
    P: PerVcpu,
    F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
{
    // SAFETY: QEMU passes back the userdata `shard_udata::<P, F>` registered with this
    // very trampoline.
    let (rt, f) = unsafe { unpack::<P, F>(userdata) };
    on_shard(rt, index, f)
}
