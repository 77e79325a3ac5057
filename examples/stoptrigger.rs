//! `stoptrigger`: QEMU's `contrib/plugins/stoptrigger.c` on the per-vCPU runtime. Ends
//! the emulation when a vCPU has executed a given number of instructions, or reaches a
//! given address, printing what triggered it:
//!
//! ```text
//! icount reached at 0x401d2c, exiting
//! 0x401615 reached, exiting
//! ```
//!
//! Arguments, with the C plugin's spellings: `icount=N[:CODE]` (a vCPU's N+1-th
//! instruction ends QEMU with exit status CODE, default 0; needs QEMU 9.1, plugin API 3,
//! for inline stores and conditional callbacks) and `addr=ADDR[:CODE]` (the instruction
//! at ADDR ends QEMU; may repeat). Numbers as C's `strtoull` with base 0 reads them
//! (`0x1f`, `017`, `31`). At least one of them is required.
//!
//! The exit goes through [`Vcpu::exit_qemu`], which merges the vCPU's shard before
//! QEMU's atexit handlers run: a plugin with totals to report reports them, exit or not.

use std::collections::HashMap;

use qemu_plugin::{
    Args, Failure, Info, InlineCounter, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

/// `icount=`: the instruction count and the exit status, with the two per-vCPU words
/// counted inline (instructions, and the address of the latest).
#[derive(Clone, Copy)]
#[cfg_attr(not(since_api_3), allow(dead_code))] // read only by `watch_icount`
struct Icount {
    count: u64,
    code: i32,
    insns: InlineCounter,
    pc: InlineCounter,
}

struct Stoptrigger {
    icount: Option<Icount>,
    /// `addr=`: exit status by address.
    addrs: HashMap<u64, i32>,
}

/// C's `g_ascii_strtoull(text, NULL, 0)` for a whole field: `0x` hexadecimal, a leading
/// `0` octal, decimal otherwise.
fn c_number(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse().ok()
    }
}

/// `VALUE[:CODE]` of argument `key`: the value and the exit status (default 0).
fn value_and_code(key: &str, text: &str, what: &str) -> Result<(u64, i32)> {
    let invalid = || Failure::InvalidArgument {
        key: key.into(),
        value: text.into(),
        expected: format!("{what}, optionally followed by `:EXIT_CODE`"),
    };
    let (value, code) = match text.split_once(':') {
        Some((v, c)) => (v, Some(c)),
        None => (text, None),
    };
    let value = c_number(value).ok_or_else(invalid)?;
    let code = match code {
        None => 0,
        Some(c) => c_number(c)
            .and_then(|c| i32::try_from(c).ok())
            .ok_or_else(invalid)?,
    };
    Ok((value, code))
}

/// Registers the instruction-count trigger on an instruction (plugin API 3 and later).
#[cfg(since_api_3)]
fn watch_icount(insn: &qemu_plugin::InsnTranslation<'_, Stoptrigger>, ic: Icount) {
    use qemu_plugin::Condition;
    insn.inline_add(&ic.insns, 1);
    insn.inline_store(&ic.pc, insn.vaddr());
    insn.on_exec_if(
        &ic.insns,
        Condition::Eq,
        ic.count + 1,
        move |cpu: &mut Vcpu<Stoptrigger>| {
            let pc = cpu.inline(&ic.pc);
            let _ = qemu_plugin_outs(format!("icount reached at 0x{pc:x}, exiting\n"));
            let _ = cpu.exit_qemu(ic.code);
        },
    );
}

/// Plugin APIs 0 to 2 have no inline stores; `new` refuses `icount=` there.
#[cfg(not(since_api_3))]
fn watch_icount(_: &qemu_plugin::InsnTranslation<'_, Stoptrigger>, _: Icount) {}

impl PerVcpu for Stoptrigger {
    type Config = ();
    type Shard = ();
    type Total = ();

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_lists(&["icount"], &["addr"])?;
        let icount = match args.text("icount") {
            None => None,
            Some(text) => {
                if cfg!(not(since_api_3)) {
                    return Err(Failure::Unsupported {
                        api: "qemu_plugin_register_vcpu_insn_exec_cond_cb",
                        needs: "9.1",
                    }
                    .into());
                }
                let (count, code) =
                    value_and_code("icount", text, "a positive number of instructions")?;
                if count < 1 || text.split(':').next().is_some_and(|v| v.contains('-')) {
                    return Err(Failure::InvalidArgument {
                        key: "icount".into(),
                        value: text.into(),
                        expected: "a positive number of instructions".into(),
                    }
                    .into());
                }
                Some(Icount {
                    count,
                    code,
                    insns: InlineCounter::new()?,
                    pc: InlineCounter::new()?,
                })
            }
        };
        let mut addrs = HashMap::new();
        for text in args.all("addr") {
            let (addr, code) = value_and_code("addr", text, "an address, e.g. 0x401000")?;
            addrs.insert(addr, code);
        }
        if icount.is_none() && addrs.is_empty() {
            return Err(Failure::MissingArgument {
                key: "icount".into(),
                expected: "`icount=N[:CODE]` or `addr=ADDR[:CODE]` (or both)".into(),
            }
            .into());
        }
        Ok((Stoptrigger { icount, addrs }, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<()> {
        Ok(())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            if let Some(ic) = self.icount {
                watch_icount(&insn, ic);
            }
            let vaddr = insn.vaddr();
            if let Some(&code) = self.addrs.get(&vaddr) {
                insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                    let _ = qemu_plugin_outs(format!("0x{vaddr:x} reached, exiting\n"));
                    let _ = cpu.exit_qemu(code);
                });
            }
        }
        Ok(())
    }

    fn merge(&self, _total: &mut (), _cpu: Vcpu<Self>) -> Result<()> {
        Ok(())
    }

    fn on_exit(&self, _total: ()) -> Result<()> {
        Ok(())
    }
}

per_vcpu!(Stoptrigger);
