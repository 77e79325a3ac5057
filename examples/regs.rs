//! `regs`: reads registers by their QEMU names each time the instruction at `at=0xADDR`
//! executes, and prints them at exit, one line per execution:
//!
//! ```text
//! regs: cpu 0 at 0x401d2c pc=0x401d2c sp=0x40007ff230 x2=0x1234abcd5678ef01
//! ```
//!
//! Arguments: `at=0xADDR` (the instruction's guest virtual address) and
//! `names=NAME:NAME:...` (QEMU's register names, colon-separated: `rip:rsp:rdx` on x86_64,
//! `pc:sp:x2` on aarch64, `pc:sp:a2` on riscv64). A name the vCPU does not have is
//! reported with the list of names it has. Values are printed as little-endian integers
//! (QEMU hands registers over in the target's byte order; the three targets here are
//! little-endian). Needs QEMU 9.0 (plugin API v2) for register reads.

#[cfg(since_api_2)]
use qemu_plugin::find_register;
use qemu_plugin::{
    Args, CallbackFlags, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

struct Regs {
    at: u64,
    names: Vec<String>,
}

/// One register's value as text, or why it could not be read.
#[cfg(since_api_2)]
fn read_one(name: &str) -> String {
    let value = find_register(name).and_then(|r| r.read());
    match value {
        Ok(bytes) if bytes.len() <= 8 => {
            let mut le = [0u8; 8];
            le[..bytes.len()].copy_from_slice(&bytes);
            format!("{name}=0x{:x}", u64::from_le_bytes(le))
        }
        Ok(bytes) => {
            let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
            format!("{name}=0x{hex}")
        }
        Err(e) => format!("{name}=<{e}>"),
    }
}

/// Plugin APIs 0 and 1 have no register access; `new` refuses before this is reached.
#[cfg(not(since_api_2))]
fn read_one(name: &str) -> String {
    format!("{name}=<no register access before QEMU 9.0>")
}

impl PerVcpu for Regs {
    type Config = ();
    /// The lines of this vCPU's executions of the instruction.
    type Shard = Vec<String>;
    type Total = Vec<String>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["at", "names"])?;
        if cfg!(not(since_api_2)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_read_register",
                needs: "9.0",
            }
            .into());
        }
        let at_text = args.string("at")?.ok_or_else(|| Failure::MissingArgument {
            key: "at".into(),
            expected: "the instruction's address, e.g. at=0x401000".into(),
        })?;
        let at = at_text
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| Failure::InvalidArgument {
                key: "at".into(),
                value: at_text.into(),
                expected: "a hexadecimal address starting with 0x".into(),
            })?;
        let names: Vec<String> = args
            .string("names")?
            .unwrap_or("")
            .split(':')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(Failure::MissingArgument {
                key: "names".into(),
                expected: "register names separated by colons, e.g. names=pc:sp:x2".into(),
            }
            .into());
        }
        Ok((Regs { at, names }, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            if insn.vaddr() != self.at {
                continue;
            }
            let names = self.names.clone();
            let at = self.at;
            insn.on_exec_flags(
                CallbackFlags::QEMU_PLUGIN_CB_R_REGS,
                move |cpu: &mut Vcpu<Self>| {
                    let values: Vec<String> = names.iter().map(|n| read_one(n)).collect();
                    let line =
                        format!("regs: cpu {} at 0x{at:x} {}", cpu.index(), values.join(" "));
                    cpu.push(line);
                },
            );
        }
        Ok(())
    }

    fn merge(&self, total: &mut Vec<String>, cpu: Vcpu<Self>) -> Result<()> {
        total.extend(cpu.iter().cloned());
        Ok(())
    }

    fn on_exit(&self, total: Vec<String>) -> Result<()> {
        let mut out = String::new();
        for line in &total {
            out += line;
            out.push('\n');
        }
        out += &format!("regs: {} executions of 0x{:x}\n", total.len(), self.at);
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Regs);
