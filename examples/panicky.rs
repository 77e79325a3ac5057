//! `panicky` (for tests): an exec callback that panics on its `at=N`th execution on a
//! vCPU (default 1000). The crate catches the panic, reports it once through
//! `qemu_plugin_outs`, and uninstalls the plugin; QEMU runs the guest to completion.

use qemu_plugin::{Args, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu};

struct Panicky;

impl PerVcpu for Panicky {
    /// The execution at which to panic.
    type Config = u64;
    type Shard = u64;
    type Total = ();

    fn new(args: &Args, _info: &Info) -> Result<(Self, u64)> {
        args.expect_only(&["at"])?;
        Ok((Panicky, args.u64("at", 1000, 1..=u64::MAX)?))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        tb.on_exec(|cpu: &mut Vcpu<Self>| {
            **cpu += 1;
            let at = *cpu.config();
            if **cpu == at {
                panic!(
                    "panicky: deliberate panic at execution {at} on vCPU {}",
                    cpu.index()
                );
            }
        });
        Ok(())
    }

    fn merge(&self, _total: &mut (), _cpu: Vcpu<Self>) -> Result<()> {
        Ok(())
    }

    fn on_exit(&self, _total: ()) -> Result<()> {
        qemu_plugin::qemu_plugin_outs("panicky: reached exit without panicking\n")
    }
}

per_vcpu!(Panicky);
