//! `icount`: per-vCPU instruction counts, in the output format of QEMU's
//! `tests/tcg/plugins/insn.c` (`cpu N insns: X`, then `total insns: T`).
//!
//! Arguments:
//! - `inline=on|off` (default off): count with inline scoreboard adds instead of an exec
//!   callback per instruction;
//! - `check=on|off` (default off): count both ways in one run and print
//!   `icount: mismatch cpu N callback X inline Y` for any vCPU where they differ;
//! - `events=on|off` (default off): also print how many vCPUs were initialised, how
//!   many idle/resume events they saw, and how many per-vCPU slots the runtime allocated
//!   (bounded by the highest vCPU index, not by how many vCPUs ever existed).

use std::collections::BTreeMap;

use std::sync::OnceLock;

use qemu_plugin::{
    Args, Handle, Info, InlineCounter, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

struct Icount {
    callback: bool,
    inline: Option<InlineCounter>,
    events: bool,
    handle: OnceLock<Handle<Icount>>,
}

#[derive(Default)]
struct Shard {
    insns: u64,
    idle: u64,
    resume: u64,
}

#[derive(Default)]
struct PerCpu {
    callback: u64,
    inline: u64,
}

#[derive(Default)]
struct Total {
    cpus: BTreeMap<VCPUIndex, PerCpu>,
    shards: u64,
    idle: u64,
    resume: u64,
}

impl PerVcpu for Icount {
    type Config = ();
    type Shard = Shard;
    type Total = Total;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["inline", "check", "events"])?;
        let inline = args.bool("inline", false)?;
        let check = args.bool("check", false)?;
        let plugin = Icount {
            callback: check || !inline,
            inline: (check || inline).then(InlineCounter::new).transpose()?,
            events: args.bool("events", false)?,
            handle: OnceLock::new(),
        };
        Ok((plugin, ()))
    }

    fn started(&self, handle: Handle<Self>) -> Result<()> {
        let _ = self.handle.set(handle);
        Ok(())
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Shard> {
        Ok(Shard::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            if self.callback {
                insn.on_exec(|cpu: &mut Vcpu<Self>| cpu.insns += 1);
            }
            if let Some(counter) = &self.inline {
                insn.inline_add(counter, 1);
            }
        }
        Ok(())
    }

    fn idle(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        cpu.idle += 1;
        Ok(())
    }

    fn resume(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        cpu.resume += 1;
        Ok(())
    }

    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        let inline = self.inline.map_or(0, |c| cpu.take_inline(&c));
        let entry = total.cpus.entry(cpu.index()).or_default();
        entry.callback += cpu.insns;
        entry.inline += inline;
        total.shards += 1;
        total.idle += cpu.idle;
        total.resume += cpu.resume;
        Ok(())
    }

    fn on_exit(&self, total: Total) -> Result<()> {
        let mut out = String::new();
        let n = total.cpus.keys().next_back().map_or(0, |k| k + 1);
        let count = |c: &PerCpu| if self.callback { c.callback } else { c.inline };
        for i in 0..n {
            let c = total.cpus.get(&i);
            out += &format!("cpu {i} insns: {}\n", c.map_or(0, count));
        }
        out += &format!(
            "total insns: {}\n",
            total.cpus.values().map(count).sum::<u64>()
        );
        if self.callback && self.inline.is_some() {
            for (i, c) in &total.cpus {
                if c.callback != c.inline {
                    out += &format!(
                        "icount: mismatch cpu {i} callback {} inline {}\n",
                        c.callback, c.inline
                    );
                }
            }
        }
        if self.events {
            out += &format!(
                "icount: vcpus init={} idle={} resume={}\n",
                total.shards, total.idle, total.resume
            );
            out += &format!(
                "icount: slots allocated={} highest vCPU index={}\n",
                self.handle.get().map_or(0, |h| h.allocated_slots()),
                n.saturating_sub(1)
            );
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Icount);
