//! Reporting totals: at QEMU's exit, every remaining shard is merged and the total goes
//! to `on_exit`; just before an `execve` replaces the process, the calling vCPU's shard
//! is merged and the total so far is reported.

use std::time::{Duration, Instant};

use super::barrier;
use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use crate::VCPUIndex;
use crate::error::Result;

/// How long QEMU's exit waits, in all, for vCPU threads to leave the hooks they are in
/// before leaving their shards alone.
pub(crate) const EXIT_WAIT: Duration = Duration::from_secs(2);

/// At QEMU's exit: merges every remaining shard and hands the total to `on_exit`.
pub(crate) fn at_exit<P: PerVcpu>(rt: &'static Runtime<P>) -> Result<()> {
    for (_, slot) in rt.shards.iter() {
        slot.close();
    }
    barrier::heavy();
    // One deadline for the whole exit, not one per slot.
    let deadline = Instant::now() + EXIT_WAIT;
    let mut stuck = Vec::new();
    for (index, slot) in rt.shards.iter() {
        match slot.take_closed(deadline) {
            // The first failure ends it, an `Err` as a panic does: no more user code.
            Ok(Some(vcpu)) => rt.merge(vcpu)?,
            Ok(None) => {}
            Err(()) => stuck.push(index),
        }
    }
    if !stuck.is_empty() {
        crate::api::misc::outs_raw(&format!(
            "{}: {} vCPU(s) stayed inside a callback during exit (indexes {stuck:?}); their \
             shards were not merged\n",
            crate::identity::name(),
            stuck.len()
        ));
    }
    match rt.take_total(false) {
        Some(total) => rt.plugin.on_exit(total),
        None => Ok(()),
    }
}

/// Just before an execve replaces the process: merges the calling vCPU's shard, hands
/// the total so far to `on_exit`, and goes on with a fresh total (reported at exit if
/// the execve fails). Shards of other vCPUs still running stay where they are: a
/// successful execve ends those threads without an exit hook, as QEMU does.
pub(crate) fn before_exec<P: PerVcpu>(rt: &'static Runtime<P>, index: VCPUIndex) -> Result<()> {
    let slot = rt.shards.get(index as usize);
    let Some(entered) = slot.enter() else {
        // QEMU's exit has closed the slots: it reports everything itself.
        return Ok(());
    };
    // SAFETY: QEMU runs syscall hooks on vCPU `index`'s thread; we hold the entry guard.
    let own = unsafe { slot.take(&entered) };
    // The guard is held until the shard is in the total (as in the vCPU exit hook).
    if let Some(vcpu) = own {
        rt.merge(vcpu)?;
    }
    drop(entered);
    let total = rt.take_total(true);
    let others = rt.live.load(std::sync::atomic::Ordering::Relaxed);
    if others > 0 {
        crate::api::misc::outs_raw(&format!(
            "{}: execve with {others} other vCPU(s) running: the totals below leave out \
             their counts since they started\n",
            crate::identity::name()
        ));
    }
    match total {
        Some(total) => rt.plugin.on_exit(total),
        None => Ok(()),
    }
}
