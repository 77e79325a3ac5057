//! Per-vCPU counts of discontinuities by kind, shared by the `discons` and `traps`
//! examples through `#[path]`.

use std::collections::BTreeMap;

use qemu_plugin::{DisconKind, VCPUIndex};

/// Interrupts, exceptions and host calls, in that order.
pub type Counts = [u64; 3];

/// Counts one discontinuity of `kind` (kinds QEMU may add later are not counted).
pub fn count(counts: &mut Counts, kind: DisconKind) {
    match kind {
        DisconKind::Interrupt => counts[0] += 1,
        DisconKind::Exception => counts[1] += 1,
        DisconKind::HostCall => counts[2] += 1,
        DisconKind::Other(_) => {}
    }
}

/// Adds one shard's counts to its vCPU's row of the total.
pub fn merge(total: &mut BTreeMap<VCPUIndex, Counts>, vcpu: VCPUIndex, counts: &Counts) {
    let row = total.entry(vcpu).or_default();
    for (sum, n) in row.iter_mut().zip(counts) {
        *sum += n;
    }
}
