//! `traps`: QEMU's `contrib/plugins/traps.c` on the per-vCPU runtime. Counts each vCPU's
//! interrupts, exceptions and host calls (discontinuities, QEMU 10.2) and prints, at exit,
//! the same table as the C plugin:
//!
//! ```text
//! VCPU, interrupts, exceptions, hostcalls
//!    0,          0,        100,          0
//! ```
//!
//! The C plugin keeps the counters in a scoreboard without padding; here each vCPU's live
//! in its own cache-padded shard. In user mode it prints the C plugin's note that
//! interrupts are only reported in system mode (without a newline, as the C plugin does).

#[path = "support/c_format.rs"]
mod c_format;
#[path = "support/discon_counts.rs"]
mod discon_counts;

use std::collections::BTreeMap;

use qemu_plugin::{
    Args, DisconTypes, Discontinuity, Info, PerVcpu, Result, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

use discon_counts::Counts;

use c_format::space_signed;

struct Traps;

impl PerVcpu for Traps {
    type Config = ();
    type Shard = Counts;
    type Total = BTreeMap<VCPUIndex, Counts>;

    const DISCONTINUITIES: DisconTypes = DisconTypes::ALL;
    // No block is instrumented: QEMU's generated code stays free of plugin hooks.
    const TRANSLATES: bool = false;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        // traps.c ignores its arguments; an argument given here is a mistake, refused.
        args.expect_only(&[])?;
        if info.is_user_mode() {
            qemu_plugin_outs("Note: interrupts are only reported in system emulation mode.")?;
        }
        Ok((Traps, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Counts> {
        Ok([0; 3])
    }

    fn discontinuity(&self, cpu: &mut Vcpu<Self>, event: &Discontinuity) -> Result<()> {
        discon_counts::count(cpu, event.kind);
        Ok(())
    }

    fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
        discon_counts::merge(total, cpu.index(), &cpu);
        Ok(())
    }

    fn on_exit(&self, total: Self::Total) -> Result<()> {
        // traps.c prints a row for every vCPU index below qemu_plugin_num_vcpus(), which
        // counts every vCPU QEMU created: each got a shard at its init.
        let rows = total.keys().next_back().map_or(0, |&last| last + 1);
        let mut out = String::from("VCPU, interrupts, exceptions, hostcalls\n");
        for vcpu in 0..rows {
            let c = total.get(&vcpu).copied().unwrap_or_default();
            out += &format!(
                "{}, {}, {}, {}\n",
                space_signed(i64::from(vcpu), 4),
                space_signed(c[0] as i64, 10),
                space_signed(c[1] as i64, 10),
                space_signed(c[2] as i64, 10)
            );
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Traps);
