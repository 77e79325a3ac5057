//! `discons`: counts each vCPU's discontinuities (interrupts, exceptions, host calls)
//! with the per-vCPU runtime, one line per vCPU that had any, then the totals:
//!
//! ```text
//! discons: cpu 0 interrupts 0 exceptions 100 hostcalls 0
//! discons: total interrupts 0 exceptions 400 hostcalls 0
//! ```
//!
//! Discontinuity callbacks need QEMU 10.2: on an older QEMU the install fails with a
//! message naming the missing API (this example asks for them at every API level, so it
//! shows that message).

#[path = "support/discon_counts.rs"]
mod discon_counts;

use std::collections::BTreeMap;

use qemu_plugin::{
    Args, DisconTypes, Discontinuity, Info, PerVcpu, Result, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

use discon_counts::Counts;

struct Discons;

impl PerVcpu for Discons {
    type Config = ();
    type Shard = Counts;
    type Total = BTreeMap<VCPUIndex, Counts>;

    const DISCONTINUITIES: DisconTypes = DisconTypes::ALL;
    // No block is instrumented: QEMU's generated code stays free of plugin hooks.
    const TRANSLATES: bool = false;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((Discons, ()))
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
        let line = |who: &str, c: &Counts| {
            format!(
                "discons: {who} interrupts {} exceptions {} hostcalls {}\n",
                c[0], c[1], c[2]
            )
        };
        let mut out = String::new();
        let mut sum = [0; 3];
        for (cpu, counts) in &total {
            if counts.iter().any(|&n| n > 0) {
                out += &line(&format!("cpu {cpu}"), counts);
            }
            for (s, n) in sum.iter_mut().zip(counts) {
                *s += n;
            }
        }
        out += &line("total", &sum);
        qemu_plugin_outs(&out)
    }
}

per_vcpu!(Discons);
