//! `mem`: counts guest memory accesses per vCPU and prints `mem accesses: N`, as QEMU's
//! `tests/tcg/plugins/mem.c` does with `callback=true`.
//!
//! Arguments: `inline=on|off` (default off: a memory callback per access; on: inline
//! adds only), `track=r|w|rw` (default rw).

use qemu_plugin::{
    Args, Info, InlineCounter, MemRW, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

struct Mem {
    rw: MemRW,
    inline: Option<InlineCounter>,
}

impl PerVcpu for Mem {
    type Config = ();
    type Shard = u64;
    type Total = u64;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["inline", "track"])?;
        let rw = match args.choice("track", "rw", &["r", "w", "rw"])? {
            "r" => MemRW::QEMU_PLUGIN_MEM_R,
            "w" => MemRW::QEMU_PLUGIN_MEM_W,
            _ => MemRW::QEMU_PLUGIN_MEM_RW,
        };
        let inline = args
            .bool("inline", false)?
            .then(InlineCounter::new)
            .transpose()?;
        Ok((Mem { rw, inline }, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            match &self.inline {
                Some(counter) => insn.inline_mem_add(self.rw, counter, 1),
                None => insn.on_mem(self.rw, |cpu: &mut Vcpu<Self>, _| **cpu += 1),
            }
        }
        Ok(())
    }

    fn merge(&self, total: &mut u64, cpu: Vcpu<Self>) -> Result<()> {
        *total += *cpu + self.inline.map_or(0, |c| cpu.take_inline(&c));
        Ok(())
    }

    fn on_exit(&self, total: u64) -> Result<()> {
        qemu_plugin_outs(format!("mem accesses: {total}\n"))
    }
}

per_vcpu!(Mem);
