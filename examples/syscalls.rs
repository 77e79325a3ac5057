//! `syscalls`: per-vCPU syscall and error counts, merged at exit and printed in the
//! format of QEMU's `tests/tcg/plugins/syscall.c`: a `syscall no.  calls  errors`
//! header, then one row per syscall number, by calls, descending. No arguments.

use std::collections::HashMap;

use qemu_plugin::{
    Args, Info, PerVcpu, Result, Syscall, SyscallReturn, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

struct Syscalls;

/// Per syscall number: (calls, errors).
type Counts = HashMap<i64, (u64, u64)>;

impl PerVcpu for Syscalls {
    type Config = ();
    type Shard = Counts;
    type Total = Counts;

    // No block is instrumented: QEMU's generated code stays free of plugin hooks.
    const TRANSLATES: bool = false;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((Syscalls, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Counts> {
        Ok(Counts::new())
    }

    fn syscall(&self, cpu: &mut Vcpu<Self>, call: &Syscall) -> Result<()> {
        cpu.entry(call.num).or_default().0 += 1;
        Ok(())
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        if ret.ret < 0 {
            cpu.entry(ret.num).or_default().1 += 1;
        }
        Ok(())
    }

    fn merge(&self, total: &mut Counts, cpu: Vcpu<Self>) -> Result<()> {
        for (num, (calls, errors)) in cpu.into_shard() {
            let e = total.entry(num).or_default();
            e.0 += calls;
            e.1 += errors;
        }
        Ok(())
    }

    fn on_exit(&self, total: Counts) -> Result<()> {
        let mut rows: Vec<_> = total.into_iter().collect();
        rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        let mut out = String::from("syscall no.  calls  errors\n");
        for (num, (calls, errors)) in rows {
            out += &format!("{num:<13}{calls:<6} {errors}\n");
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Syscalls);
