//! `skip`: skips every instruction whose encoding is `bytes=HEX` (default `0f0b`, x86's
//! `ud2`) by moving the vCPU's PC past it, and reports how many it skipped:
//!
//! ```text
//! skip: cpu 2 skipped 1
//! skip: total skipped 1
//! ```
//!
//! The PC moves with `InsnTranslation::on_exec_redirect`, which needs QEMU 11.0 (plugin
//! API v6); built for an older API, the first matching translation fails with a message
//! saying so, and the plugin uninstalls itself.

use std::collections::BTreeMap;

use qemu_plugin::{
    Args, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu, qemu_plugin_outs,
};

struct Skip {
    bytes: Vec<u8>,
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl PerVcpu for Skip {
    type Config = ();
    type Shard = u64;
    type Total = BTreeMap<VCPUIndex, u64>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["bytes"])?;
        let text = args.string("bytes")?.unwrap_or("0f0b");
        let bytes = parse_hex(text).ok_or_else(|| Failure::InvalidArgument {
            key: "bytes".into(),
            value: text.into(),
            expected: "an instruction's encoding in hex, e.g. 0f0b".into(),
        })?;
        Ok((Skip { bytes }, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            if insn.data() == self.bytes {
                let next = insn.vaddr() + insn.size() as u64;
                insn.on_exec_redirect(move |cpu: &mut Vcpu<Self>| {
                    **cpu += 1;
                    Some(next)
                })?;
            }
        }
        Ok(())
    }

    fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
        if *cpu > 0 {
            *total.entry(cpu.index()).or_default() += *cpu;
        }
        Ok(())
    }

    fn on_exit(&self, total: Self::Total) -> Result<()> {
        let mut out = String::new();
        for (cpu, n) in &total {
            out += &format!("skip: cpu {cpu} skipped {n}\n");
        }
        out += &format!("skip: total skipped {}\n", total.values().sum::<u64>());
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Skip);
