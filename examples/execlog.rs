//! `execlog`: QEMU's `contrib/plugins/execlog.c` on the per-vCPU runtime. Logs each
//! executed instruction with its memory accesses, one line per instruction, in the C
//! plugin's format:
//!
//! ```text
//! 0, 0x401d2c, 0xe5894855, "pushq %rbp", store, 0x40007ff1d8
//! ```
//!
//! (vCPU, address, first 32 bits, disassembly, then `load`/`store` and the virtual
//! address of each access; in system mode the physical address and the device name.)
//! An instruction's line is printed when that vCPU executes its next logged instruction
//! (or, when watching registers with a filter, the next instruction), and each vCPU's
//! last line again at exit, printed or not, as execlog.c does.
//!
//! Arguments, with the C plugin's spellings (each of the first three may repeat):
//! - `ifilter=PREFIX`: log only instructions whose disassembly starts with `PREFIX`, and
//!   the next one's memory accesses, as execlog.c does;
//! - `afilter=0xADDR`: log only the instruction at that address;
//! - `reg=PATTERN`: also print `, NAME -> 0xVALUE` for each register matching the glob
//!   `PATTERN` (`*`, `?`) whose value changed since it was last read (QEMU 9.0, plugin
//!   API 2);
//! - `rdisas=on`: read registers only after instructions whose operands name one.
//!
//! execlog.c finds each vCPU's line through an array behind a read-write lock; here the
//! line is the vCPU's shard, reached without a lock.

#[path = "support/api1.rs"]
mod api1;

use api1::{device_name, phys_addr};

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use qemu_plugin::{
    Args, CallbackFlags, Failure, Info, MemRW, PerVcpu, Result, Translation, VCPUIndex, Vcpu,
    per_vcpu, qemu_plugin_outs,
};

/// A register being watched on one vCPU: its handle, lower-case name and last value.
#[cfg(since_api_2)]
struct Reg {
    desc: qemu_plugin::RegisterDescriptor<'static>,
    name: String,
    last: Vec<u8>,
}

/// Plugin APIs 0 and 1 have no registers; `new` refuses `reg=` there.
#[cfg(not(since_api_2))]
struct Reg;

/// One vCPU's state: the line of the instruction it executed last, still open for that
/// instruction's memory accesses until `open` is cleared, and the registers it watches.
#[derive(Default)]
struct Cpu {
    line: String,
    /// False once the line is printed by an unlogged instruction that checks registers.
    /// execlog.c then sets its string's length to 0 without clearing its text, and prints
    /// that text again at exit; the text is kept here to do the same.
    open: bool,
    regs: Option<Vec<Reg>>,
}

struct Execlog {
    imatches: Vec<String>,
    amatches: Vec<u64>,
    rmatches: Vec<String>,
    disas_assist: bool,
    /// Lower-case names of every watched register (for `rdisas`), filled at vCPU init.
    reg_names: Mutex<Vec<String>>,
    /// Whether the run is system emulation (physical addresses and device names).
    system: OnceLock<bool>,
}

#[cfg(since_api_2)]
/// GLib's glob (`GPatternSpec`): `*` matches any run of characters, `?` any one.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((&p, rest)) => match text.split_first() {
            Some((&t, text)) if p == '?' || p == t => glob(rest, text),
            _ => false,
        },
    }
}

/// Appends `, NAME -> 0xVALUE` for each register whose value changed (bytes printed
/// most significant first, as execlog.c does for little-endian targets).
#[cfg(since_api_2)]
fn check_regs(line: &mut String, regs: &mut [Reg]) {
    use std::fmt::Write;
    for reg in regs {
        let Ok(now) = reg.desc.read() else { continue };
        if now != reg.last {
            let _ = write!(line, ", {} -> 0x", reg.name);
            for b in now.iter().rev() {
                let _ = write!(line, "{b:02x}");
            }
            reg.last = now;
        }
    }
}

#[cfg(not(since_api_2))]
fn check_regs(_: &mut String, _: &mut [Reg]) {}

/// Prints the vCPU's open line, if any, after checking its registers if `with_regs`
/// (only callbacks registered to read registers may).
fn flush(cpu: &mut Cpu, with_regs: bool) {
    if cpu.open && !cpu.line.is_empty() {
        if let Some(regs) = cpu.regs.as_mut().filter(|_| with_regs) {
            check_regs(&mut cpu.line, regs);
        }
        cpu.line.push('\n');
        let _ = qemu_plugin_outs(&cpu.line);
        cpu.line.pop();
    }
}

/// The registers matching `patterns` on the calling vCPU, with their current values.
#[cfg(since_api_2)]
fn watch_registers(patterns: &[String], names: &Mutex<Vec<String>>, rdisas: bool) -> Vec<Reg> {
    let mut regs = Vec::new();
    let all = qemu_plugin::qemu_plugin_get_registers().unwrap_or_default();
    for desc in all {
        let lower = desc.name.to_lowercase();
        let (name, lower_chars): (Vec<char>, Vec<char>) =
            (desc.name.chars().collect(), lower.chars().collect());
        // As execlog.c: one entry per matching pattern (a register two patterns match is
        // watched twice).
        for p in patterns {
            let p: Vec<char> = p.chars().collect();
            if glob(&p, &name) || glob(&p, &lower_chars) {
                let Ok(last) = desc.read() else { continue };
                if rdisas {
                    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
                    if !names.contains(&lower) {
                        names.push(lower.clone());
                    }
                }
                regs.push(Reg {
                    desc: desc.clone(),
                    name: lower.clone(),
                    last,
                });
            }
        }
    }
    regs
}

#[cfg(not(since_api_2))]
fn watch_registers(_: &[String], _: &Mutex<Vec<String>>, _: bool) -> Vec<Reg> {
    Vec::new()
}

impl PerVcpu for Execlog {
    type Config = ();
    type Shard = Cpu;
    /// The open line of each vCPU that ran, printed at exit.
    type Total = BTreeMap<VCPUIndex, String>;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        args.expect_lists(&["rdisas"], &["ifilter", "afilter", "reg"])?;
        let amatches = args
            .all("afilter")
            .into_iter()
            .map(|a| {
                u64::from_str_radix(a.trim_start_matches("0x"), 16).map_err(|_| {
                    Failure::InvalidArgument {
                        key: "afilter".into(),
                        value: a.into(),
                        expected: "a hexadecimal address, e.g. afilter=0x401000".into(),
                    }
                })
            })
            .collect::<std::result::Result<Vec<u64>, Failure>>()?;
        let rmatches: Vec<String> = args.all("reg").into_iter().map(String::from).collect();
        if !rmatches.is_empty() && cfg!(not(since_api_2)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_read_register",
                needs: "9.0",
            }
            .into());
        }
        let plugin = Execlog {
            imatches: args.all("ifilter").into_iter().map(String::from).collect(),
            amatches,
            rmatches,
            disas_assist: args.bool("rdisas", false)?,
            reg_names: Mutex::default(),
            system: OnceLock::new(),
        };
        let _ = plugin.system.set(!info.is_user_mode());
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Cpu> {
        // At vCPU init, where QEMU lets plugins read registers, as execlog.c does.
        let regs = (!self.rmatches.is_empty())
            .then(|| watch_registers(&self.rmatches, &self.reg_names, self.disas_assist))
            .filter(|r| !r.is_empty());
        Ok(Cpu {
            line: String::new(),
            open: false,
            regs,
        })
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let filtering = !self.imatches.is_empty() || !self.amatches.is_empty();
        let watching = !self.rmatches.is_empty();
        let assist = self.disas_assist && watching;
        let reg_names = if assist {
            self.reg_names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            Vec::new()
        };
        let system = self.system.get().copied().unwrap_or(false);
        let mut skip = filtering;
        let mut check_regs_this = watching;
        let mut check_regs_next = false;
        for insn in tb.instructions() {
            let disas = insn.disas()?;
            let vaddr = insn.vaddr();
            if skip && self.imatches.iter().any(|m| disas.starts_with(m.as_str())) {
                skip = false;
                check_regs_next = watching;
            }
            if skip && self.amatches.contains(&vaddr) {
                skip = false;
            }
            if assist {
                // The operands: what follows the first space or tab.
                check_regs_next = false;
                if let Some((_, operands)) = disas.split_once([' ', '\t'])
                    && reg_names.iter().any(|r| operands.contains(r.as_str()))
                {
                    check_regs_next = true;
                    skip = false;
                }
            }
            if skip {
                if check_regs_this {
                    insn.on_exec_flags(
                        CallbackFlags::QEMU_PLUGIN_CB_R_REGS,
                        |cpu: &mut Vcpu<Self>| {
                            flush(cpu, true);
                            cpu.open = false;
                        },
                    );
                }
            } else {
                let mut word = [0u8; 4];
                insn.read_data(&mut word);
                let text = format!("0x{vaddr:x}, 0x{:x}, \"{disas}\"", u32::from_ne_bytes(word));
                insn.on_mem(
                    MemRW::QEMU_PLUGIN_MEM_RW,
                    move |cpu: &mut Vcpu<Self>, access| {
                        use std::fmt::Write;
                        let line = &mut cpu.line;
                        line.push_str(if access.info.is_store() {
                            ", store"
                        } else {
                            ", load"
                        });
                        match access.info.hwaddr(access.vaddr).filter(|_| system) {
                            Some(h) => {
                                let (addr, name) = (phys_addr(&h), device_name(&h));
                                let _ = write!(line, ", 0x{addr:08x}, {name}");
                            }
                            None => {
                                let _ = write!(line, ", 0x{:08x}", access.vaddr);
                            }
                        }
                    },
                );
                let flags = if check_regs_this {
                    CallbackFlags::QEMU_PLUGIN_CB_R_REGS
                } else {
                    CallbackFlags::QEMU_PLUGIN_CB_NO_REGS
                };
                let with_regs = check_regs_this;
                insn.on_exec_flags(flags, move |cpu: &mut Vcpu<Self>| {
                    flush(cpu, with_regs);
                    let index = cpu.index();
                    cpu.line.clear();
                    cpu.open = true;
                    let _ =
                        std::fmt::Write::write_fmt(&mut cpu.line, format_args!("{index}, {text}"));
                });
                skip = filtering;
            }
            if assist {
                check_regs_this = check_regs_next;
            }
        }
        Ok(())
    }

    fn merge(&self, total: &mut BTreeMap<VCPUIndex, String>, cpu: Vcpu<Self>) -> Result<()> {
        // A vCPU's shard can be merged more than once at exit (a fresh, empty one after
        // the first): an empty line does not replace a kept one.
        let line = total.entry(cpu.index()).or_default();
        let shard = cpu.into_shard();
        if !shard.line.is_empty() {
            *line = shard.line;
        }
        Ok(())
    }

    fn on_exit(&self, total: BTreeMap<VCPUIndex, String>) -> Result<()> {
        for line in total.values() {
            qemu_plugin_outs(format!("{line}\n"))?;
        }
        Ok(())
    }
}

per_vcpu!(Execlog);
