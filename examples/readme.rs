//! Counts the guest's instructions: one shard per vCPU, summed at exit.
use qemu_plugin::{Args, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu};

struct Icount;

impl PerVcpu for Icount {
    type Config = ();
    type Shard = u64;
    type Total = u64;

    fn new(args: &Args, _: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((Icount, ()))
    }
    fn new_shard(&self, _: VCPUIndex) -> Result<u64> {
        Ok(0)
    }
    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            insn.on_exec(|cpu: &mut Vcpu<Self>| **cpu += 1); // no lock, no atomic
        }
        Ok(())
    }
    fn merge(&self, total: &mut u64, cpu: Vcpu<Self>) -> Result<()> {
        *total += *cpu;
        Ok(())
    }
    fn on_exit(&self, total: u64) -> Result<()> {
        qemu_plugin::qemu_plugin_outs(format!("total insns: {total}\n"))
    }
}

per_vcpu!(Icount);
