//! Memory callbacks on the shards: [`MemAccess`], what a [`PerVcpu`] memory closure sees,
//! and the two ways a registered memory closure reaches the executing vCPU's shard
//! (every access, or only the accesses a filter picks).
//!
//! As for exec callbacks (`runtime::exec`), the closure carries segment 0 of the shard
//! array, so an access needs no lookup of the installed runtime, and its trampoline is
//! chosen when it is registered: with full fences until `membarrier` is registered, with
//! compiler fences after (`barrier::exec_fenced`).

use super::barrier::for_exec_barrier;
use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::shard_access::on_shard;
use super::shards::First;
use super::slot::Slot;
use super::vcpu::Vcpu;
use crate::VCPUIndex;
use crate::callbacks::exec::{MemUdata, mem_udata};
use crate::handles::mem::MemoryInfo;

/// One memory access, as a [`PerVcpu`] memory closure sees it. Like its
/// [`MemoryInfo`](crate::MemoryInfo), it stays on the vCPU thread running the closure:
///
/// ```compile_fail,E0277
/// # extern crate qemu_plugin_mock; // so that only the type check can fail
/// fn on_another_thread<T: Send>(_: T) {}
/// fn closure(access: qemu_plugin::MemAccess<'_>) {
///     on_another_thread(access);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MemAccess<'a> {
    /// The guest virtual address.
    pub vaddr: u64,
    /// Size, direction, value...
    pub info: MemoryInfo<'a>,
}

/// `f` on the executing vCPU's shard at every access.
pub(crate) fn shard_mem_udata<P, F>(rt: &'static Runtime<P>, f: F) -> MemUdata
where
    P: PerVcpu,
    F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>) + Send + Sync + 'static,
{
    for_exec_barrier!(every_access::<P, F>(rt.shards.first(), f))
}

fn every_access<P, F, const FENCED: bool>(first: &'static First<Slot<P>>, f: F) -> MemUdata
where
    P: PerVcpu,
    F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>) + Send + Sync + 'static,
{
    mem_udata(move |index, info, vaddr| {
        on_shard::<P, FENCED>(first, index, |v| f(v, MemAccess { vaddr, info }));
    })
}

/// `pick` at every access, and `f` on the executing vCPU's shard at those it picks.
pub(crate) fn filtered_mem_udata<P, T, Pick, F>(
    rt: &'static Runtime<P>,
    pick: Pick,
    f: F,
) -> MemUdata
where
    P: PerVcpu,
    Pick: for<'m> Fn(MemAccess<'m>) -> Option<T> + Send + Sync + 'static,
    F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>, T) + Send + Sync + 'static,
{
    for_exec_barrier!(picked_accesses::<P, T, Pick, F>(rt.shards.first(), pick, f))
}

fn picked_accesses<P, T, Pick, F, const FENCED: bool>(
    first: &'static First<Slot<P>>,
    pick: Pick,
    f: F,
) -> MemUdata
where
    P: PerVcpu,
    Pick: for<'m> Fn(MemAccess<'m>) -> Option<T> + Send + Sync + 'static,
    F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>, T) + Send + Sync + 'static,
{
    mem_udata(move |index, info, vaddr| {
        let access = MemAccess { vaddr, info };
        if let Some(picked) = pick(access) {
            on_picked::<P, T, F, FENCED>(first, index, &f, access, picked);
        }
    })
}

/// The shard side of a picked access, out of line: the accesses turned down run only the
/// filter and the trampoline around it.
#[inline(never)]
fn on_picked<P, T, F, const FENCED: bool>(
    first: &'static First<Slot<P>>,
    index: VCPUIndex,
    f: &F,
    access: MemAccess<'_>,
    picked: T,
) where
    P: PerVcpu,
    F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>, T),
{
    on_shard::<P, FENCED>(first, index, |v| f(v, access, picked));
}
