//! `howvec`: QEMU's `contrib/plugins/howvec.c` on the per-vCPU runtime. Sorts every
//! executed instruction into a class by its first 32 bits (the class tables for aarch64,
//! sparc and sparc64 are howvec.c's; other targets have the one class `Unclassified`,
//! counted opcode by opcode), and prints the same report at exit:
//!
//! ```text
//! Instruction Classes:
//! Class: Unclassified            <TAB>counted individually
//! Individual Instructions:
//! Instr: mov %eax, %edx          <TAB>(4000 hits)<TAB>(op=0x00c28948/Unclassified)
//! ```
//!
//! (`<TAB>` stands for a tab character.)
//!
//! Arguments, with the C plugin's spellings: `count=CLASS` counts that class opcode by
//! opcode, `count=!CLASS` stops counting it (both may repeat; `CLASS` is the short name of
//! the target's table, e.g. `ldst` or `sve` on aarch64, and an unknown one is refused);
//! `verbose=on` also lists classes with no hits; `inline=on` counts whole classes with
//! inline per-vCPU adds instead of a callback (opcodes counted one by one always use a
//! callback here: inline counters are made at install, before any opcode is known).
//!
//! howvec.c keeps one scoreboard per class and per opcode, and finds an opcode's entry in
//! one hash table under one mutex at translation. Here each vCPU counts in a vector of its
//! own; the table that gives each opcode its place in the vectors is only touched at
//! translation.

use std::collections::HashMap;
use std::sync::Mutex;

use qemu_plugin::{
    Args, Failure, Info, InlineCounter, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

/// How a class is counted (howvec.c's `CountType`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    Class,
    Individual,
    None,
}

/// One row of a class table: name as printed, short name for `count=`, mask, pattern.
type Row = (&'static str, &'static str, u32, u32, Count);

use Count::{Class as C, Individual as I, None as N};

/// howvec.c's table for aarch64: the first row whose mask and pattern match wins.
const AARCH64: &[Row] = &[
    ("  UDEF", "udef", 0xffff0000, 0x00000000, N),
    ("  SVE", "sve", 0x1e000000, 0x04000000, C),
    ("Reserved", "res", 0x1e000000, 0x00000000, C),
    ("  PCrel addr", "pcrel", 0x1f000000, 0x10000000, C),
    ("  Add/Sub (imm,tags)", "asit", 0x1f800000, 0x11800000, C),
    ("  Add/Sub (imm)", "asi", 0x1f000000, 0x11000000, C),
    ("  Logical (imm)", "logi", 0x1f800000, 0x12000000, C),
    ("  Move Wide (imm)", "movwi", 0x1f800000, 0x12800000, C),
    ("  Bitfield", "bitf", 0x1f800000, 0x13000000, C),
    ("  Extract", "extr", 0x1f800000, 0x13800000, C),
    ("Data Proc Imm", "dpri", 0x1c000000, 0x10000000, C),
    ("  Cond Branch (imm)", "cndb", 0xfe000000, 0x54000000, C),
    ("  Exception Gen", "excp", 0xff000000, 0xd4000000, C),
    ("    NOP", "nop", 0xffffffff, 0xd503201f, N),
    ("  Hints", "hint", 0xfffff000, 0xd5032000, C),
    ("  Barriers", "barr", 0xfffff000, 0xd5033000, C),
    ("  PSTATE", "psta", 0xfff8f000, 0xd5004000, C),
    ("  System Insn", "sins", 0xffd80000, 0xd5080000, C),
    ("  System Reg", "sreg", 0xffd00000, 0xd5100000, C),
    ("  Branch (reg)", "breg", 0xfe000000, 0xd6000000, C),
    ("  Branch (imm)", "bimm", 0x7c000000, 0x14000000, C),
    ("  Cmp & Branch", "cmpb", 0x7e000000, 0x34000000, C),
    ("  Tst & Branch", "tstb", 0x7e000000, 0x36000000, C),
    ("Branches", "branch", 0x1c000000, 0x14000000, C),
    ("  AdvSimd ldstmult", "advlsm", 0xbfbf0000, 0x0c000000, C),
    ("  AdvSimd ldstmult++", "advlsmp", 0xbfb00000, 0x0c800000, C),
    ("  AdvSimd ldst", "advlss", 0xbf9f0000, 0x0d000000, C),
    ("  AdvSimd ldst++", "advlssp", 0xbf800000, 0x0d800000, C),
    ("  ldst excl", "ldstx", 0x3f000000, 0x08000000, C),
    ("    Prefetch", "prfm", 0xff000000, 0xd8000000, C),
    ("  Load Reg (lit)", "ldlit", 0x1b000000, 0x18000000, C),
    ("  ldst noalloc pair", "ldstnap", 0x3b800000, 0x28000000, C),
    ("  ldst pair", "ldstp", 0x38000000, 0x28000000, C),
    ("  ldst reg", "ldstr", 0x3b200000, 0x38000000, C),
    ("  Atomic ldst", "atomic", 0x3b200c00, 0x38200000, C),
    ("  ldst reg (reg off)", "ldstro", 0x3b200b00, 0x38200800, C),
    ("  ldst reg (pac)", "ldstpa", 0x3b200200, 0x38200800, C),
    ("  ldst reg (imm)", "ldsti", 0x3b000000, 0x39000000, C),
    ("Loads & Stores", "ldst", 0x0a000000, 0x08000000, C),
    ("Data Proc Reg", "dprr", 0x0e000000, 0x0a000000, C),
    ("Scalar FP ", "fpsimd", 0x0e000000, 0x0e000000, C),
    ("Unclassified", "unclas", 0x00000000, 0x00000000, C),
];

/// howvec.c's table for sparc.
const SPARC32: &[Row] = &[
    ("Call", "call", 0xc0000000, 0x40000000, C),
    ("Branch ICond", "bcc", 0xc1c00000, 0x00800000, C),
    ("Branch Fcond", "fbcc", 0xc1c00000, 0x01800000, C),
    ("SetHi", "sethi", 0xc1c00000, 0x01000000, C),
    ("FPU ALU", "fpu", 0xc1f00000, 0x81a00000, C),
    ("ALU", "alu", 0xc0000000, 0x80000000, C),
    ("Load/Store", "ldst", 0xc0000000, 0xc0000000, C),
    ("Unclassified", "unclas", 0x00000000, 0x00000000, I),
];

/// howvec.c's table for sparc64.
const SPARC64: &[Row] = &[
    ("SetHi & Branches", "op0", 0xc0000000, 0x00000000, C),
    ("Call", "op1", 0xc0000000, 0x40000000, C),
    ("Arith/Logical/Move", "op2", 0xc0000000, 0x80000000, C),
    ("Arith/Logical/Move", "op3", 0xc0000000, 0xc0000000, C),
    ("Unclassified", "unclas", 0x00000000, 0x00000000, I),
];

/// Every other target: each opcode on its own.
const DEFAULT: &[Row] = &[("Unclassified", "unclas", 0x00000000, 0x00000000, I)];

/// The table for a QEMU target name, as howvec.c selects it.
fn table_for(target: &str) -> &'static [Row] {
    match target {
        "aarch64" => AARCH64,
        "sparc" => SPARC32,
        "sparc64" => SPARC64,
        _ => DEFAULT,
    }
}

/// An opcode counted on its own: its first disassembly, and its class.
struct Opcode {
    opcode: u32,
    disas: String,
    class: usize,
}

/// Translation-time table giving each opcode counted on its own its place in the
/// per-vCPU vectors (after the classes). Translations run in parallel in system mode.
#[derive(Default)]
struct Opcodes {
    ids: HashMap<u32, usize>,
    list: Vec<Opcode>,
}

struct Howvec {
    /// The target's class table, with `count=` applied.
    classes: Vec<Row>,
    verbose: bool,
    /// One inline counter per class, with `inline=on`.
    inline: Option<Vec<InlineCounter>>,
    opcodes: Mutex<Opcodes>,
}

/// The first 32 bits of an instruction as howvec.c reads them: the bytes there are, in
/// the host's order, zero-filled if the instruction is shorter.
fn first_word(insn: &qemu_plugin::Instruction<'_>) -> u32 {
    let mut word = [0u8; 4];
    insn.read_data(&mut word);
    u32::from_ne_bytes(word)
}

impl PerVcpu for Howvec {
    type Config = ();
    /// Executions per class, then per opcode counted on its own (by the opcode's id).
    type Shard = Vec<u64>;
    type Total = Vec<u64>;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        args.expect_lists(&["inline", "verbose"], &["count"])?;
        let mut classes: Vec<Row> = table_for(&info.target_name).to_vec();
        for value in args.all("count") {
            let (what, opt) = match value.strip_prefix('!') {
                Some(opt) => (Count::None, opt),
                None => (Count::Individual, value),
            };
            let class = classes.iter_mut().find(|c| c.1 == opt).ok_or_else(|| {
                Failure::InvalidArgument {
                    key: "count".into(),
                    value: value.into(),
                    expected: format!(
                        "a class of {}'s table, optionally after `!`: {}",
                        info.target_name,
                        table_for(&info.target_name)
                            .iter()
                            .map(|c| c.1)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            })?;
            class.4 = what;
        }
        let inline = if args.bool("inline", false)? {
            Some(
                classes
                    .iter()
                    .map(|_| InlineCounter::new())
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        let plugin = Howvec {
            classes,
            verbose: args.bool("verbose", false)?,
            inline,
            opcodes: Mutex::default(),
        };
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Vec<u64>> {
        Ok(vec![0; self.classes.len()])
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            let opcode = first_word(&insn);
            let class = self
                .classes
                .iter()
                .position(|c| opcode & c.2 == c.3)
                .unwrap_or(self.classes.len() - 1);
            let slot = match self.classes[class].4 {
                Count::None => continue,
                Count::Class => {
                    if let Some(counters) = &self.inline {
                        insn.inline_add(&counters[class], 1);
                        continue;
                    }
                    class
                }
                Count::Individual => {
                    let mut table = self.opcodes.lock().unwrap_or_else(|p| p.into_inner());
                    let next = table.list.len();
                    let id = *table.ids.entry(opcode).or_insert(next);
                    if id == next {
                        let disas = insn.disas()?;
                        table.list.push(Opcode {
                            opcode,
                            disas,
                            class,
                        });
                    }
                    self.classes.len() + id
                }
            };
            insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                if slot >= cpu.len() {
                    cpu.resize(slot + 1, 0);
                }
                cpu[slot] += 1;
            });
        }
        Ok(())
    }

    fn merge(&self, total: &mut Vec<u64>, cpu: Vcpu<Self>) -> Result<()> {
        let inline: Vec<u64> = self
            .inline
            .iter()
            .flatten()
            .map(|counter| cpu.take_inline(counter))
            .collect();
        let mut counts = cpu.into_shard();
        for (class, n) in inline.into_iter().enumerate() {
            counts[class] += n;
        }
        if total.len() < counts.len() {
            total.resize(counts.len(), 0);
        }
        for (t, c) in total.iter_mut().zip(counts.drain(..)) {
            *t += c;
        }
        Ok(())
    }

    fn on_exit(&self, total: Vec<u64>) -> Result<()> {
        let count = |slot: usize| total.get(slot).copied().unwrap_or(0);
        let mut out = String::from("Instruction Classes:\n");
        for (i, &(name, _, _, _, what)) in self.classes.iter().enumerate() {
            match what {
                Count::Class if count(i) > 0 || self.verbose => {
                    out += &format!("Class: {name:<24}\t({} hits)\n", count(i));
                }
                Count::Class => {}
                Count::Individual => {
                    out += &format!("Class: {name:<24}\tcounted individually\n");
                }
                Count::None => out += &format!("Class: {name:<24}\tnot counted\n"),
            }
        }
        let table = self.opcodes.lock().unwrap_or_else(|p| p.into_inner());
        // howvec.c lists at most 50 opcodes, never the last of its sorted list, and
        // nothing unless there are at least two.
        if table.list.len() > 1 {
            out += "Individual Instructions:\n";
            let mut rows: Vec<(u64, &Opcode)> = table
                .list
                .iter()
                .enumerate()
                .map(|(id, op)| (count(self.classes.len() + id), op))
                .collect();
            // Descending; howvec.c leaves ties in its hash table's order, here by opcode.
            rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.opcode.cmp(&b.1.opcode)));
            for (hits, op) in rows.iter().take((rows.len() - 1).min(50)) {
                out += &format!(
                    "Instr: {:<24}\t({hits} hits)\t(op=0x{:08x}/{})\n",
                    op.disas, op.opcode, self.classes[op.class].0
                );
            }
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Howvec);
