//! `cflow`: QEMU's `contrib/plugins/cflow.c` on the per-vCPU runtime. Records, for each
//! instruction after which execution did not fall through to the next block, where it
//! went and how often, and prints the busiest such points at exit:
//!
//! ```text
//! collected 2466 control flow nodes in the hash table
//!   addr: 0x401c3e main: jne 0x401c20 (branch)
//!     branches 163800
//!       to 0x401c20 (163800)
//! ```
//!
//! A block's first instruction stores (inline, per vCPU) where its last instruction is
//! and where the next block would start; every instruction stores its address. When a
//! block starts anywhere but where the previous one would have continued, a conditional
//! callback notes a branch from the last executed instruction, an "early exit" (printed
//! on stderr) if that was not its block's last instruction.
//!
//! Argument, with the C plugin's spellings: `sort=hottest` (most branches, the default),
//! `sort=early` (most early exits), `sort=exceptions` (most distinct destinations: the
//! name is cflow.c's). Needs QEMU 9.1 (plugin API 3) for conditional callbacks.
//!
//! cflow.c updates one hash table of nodes, each with its own mutex, from every vCPU;
//! here each vCPU counts its branches in a table of its own, merged at exit. Like cflow.c
//! it prints the 10 first nodes of its sorted list; nodes with equal keys are listed here
//! by address (cflow.c leaves them in its hash table's order).

#[path = "support/api1.rs"]
mod api1;

use api1::symbol;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use qemu_plugin::{
    Args, Failure, Info, InlineCounter, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

/// How many nodes the report lists (cflow.c's `topn`).
const TOPN: usize = 10;

#[derive(Clone, Copy)]
enum SortBy {
    Hottest,
    Early,
    Destinations,
}

/// What translation learnt about an instruction (cflow.c makes a node for every
/// translated instruction).
#[derive(Default)]
struct Node {
    disas: String,
    symbol: Option<String>,
    /// Times translated in the middle of a block.
    mid_count: u64,
}

/// One branch point's counts, on one vCPU or in the total.
#[derive(Clone, Default)]
struct Branches {
    early_exit: u64,
    dest_count: u64,
    /// Destinations in the order first seen, with their counts.
    dests: Vec<(u64, u64)>,
}

/// The per-vCPU words cflow.c keeps in its scoreboard (`tb_pc` is not needed: each
/// callback knows its block's address).
#[derive(Clone, Copy)]
#[cfg_attr(not(since_api_3), allow(dead_code))] // read only by `watch_block`
struct Words {
    end_block: InlineCounter,
    pc_after_block: InlineCounter,
    last_pc: InlineCounter,
}

struct Cflow {
    sort_by: SortBy,
    words: Words,
    nodes: Mutex<HashMap<u64, Node>>,
}

/// Registers on a block what cflow.c registers (plugin API 3 and later).
#[cfg(since_api_3)]
fn watch_block(tb: &mut Translation<'_, Cflow>, w: Words) {
    use qemu_plugin::Condition;
    let pc = tb.vaddr();
    tb.on_exec_if(
        &w.pc_after_block,
        Condition::Ne,
        pc,
        move |cpu: &mut Vcpu<Cflow>| {
            let lpc = cpu.inline(&w.last_pc);
            if lpc == 0 {
                return;
            }
            let ebpc = cpu.inline(&w.end_block);
            let early = lpc != ebpc;
            if early {
                let npc = cpu.inline(&w.pc_after_block);
                eprintln!(
                    "vcpu_tb_branched_exec: pc={pc:x}, epbc={ebpc:x} npc={npc:x}, lpc={lpc:x}"
                );
            }
            let node = cpu.entry(lpc).or_default();
            node.early_exit += u64::from(early);
            match node.dests.iter_mut().find(|d| d.0 == pc) {
                Some(d) => d.1 += 1,
                None => node.dests.push((pc, 1)),
            }
            node.dest_count += 1;
        },
    );
    let insns: Vec<_> = tb.instructions().collect();
    let (Some(first), Some(last)) = (insns.first(), insns.last()) else {
        return;
    };
    first.inline_store(&w.end_block, last.vaddr());
    first.inline_store(&w.pc_after_block, last.vaddr() + last.size() as u64);
    for insn in &insns {
        insn.inline_store(&w.last_pc, insn.vaddr());
    }
}

/// Plugin APIs 0 to 2 have no conditional callbacks; `new` refuses before this is reached.
#[cfg(not(since_api_3))]
fn watch_block(_: &mut Translation<'_, Cflow>, _: Words) {}

/// Hashes a guest address with one multiplication (the standard library's SipHash,
/// built to resist chosen keys, costs more than the rest of a branch event here).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Branch points by the address of the instruction they left from.
type ByAddr = HashMap<u64, Branches, BuildHasherDefault<AddrHasher>>;

impl PerVcpu for Cflow {
    type Config = ();
    type Shard = ByAddr;
    type Total = ByAddr;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["sort"])?;
        if cfg!(not(since_api_3)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_register_vcpu_tb_exec_cond_cb",
                needs: "9.1",
            }
            .into());
        }
        let sort_by = match args.text("sort") {
            None | Some("hottest") => SortBy::Hottest,
            Some("early") => SortBy::Early,
            Some("exceptions") => SortBy::Destinations,
            Some(other) => {
                return Err(Failure::InvalidArgument {
                    key: "sort".into(),
                    value: other.into(),
                    expected: "hottest, early or exceptions".into(),
                }
                .into());
            }
        };
        let words = Words {
            end_block: InlineCounter::new()?,
            pc_after_block: InlineCounter::new()?,
            last_pc: InlineCounter::new()?,
        };
        let plugin = Cflow {
            sort_by,
            words,
            nodes: Mutex::default(),
        };
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<ByAddr> {
        Ok(ByAddr::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        {
            let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            let n = tb.size();
            for (i, insn) in tb.instructions().enumerate() {
                let node = nodes.entry(insn.vaddr()).or_default();
                if node.disas.is_empty() {
                    node.disas = insn.disas()?;
                }
                if node.symbol.is_none() {
                    node.symbol = symbol(&insn);
                }
                if i + 1 < n {
                    node.mid_count += 1;
                }
            }
        }
        watch_block(tb, self.words);
        Ok(())
    }

    fn merge(&self, total: &mut ByAddr, cpu: Vcpu<Self>) -> Result<()> {
        for (addr, b) in cpu.into_shard() {
            let t = total.entry(addr).or_default();
            t.early_exit += b.early_exit;
            t.dest_count += b.dest_count;
            for (to, n) in b.dests {
                match t.dests.iter_mut().find(|d| d.0 == to) {
                    Some(d) => d.1 += n,
                    None => t.dests.push((to, n)),
                }
            }
        }
        Ok(())
    }

    fn on_exit(&self, total: ByAddr) -> Result<()> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        // cflow.c counts nodes before dropping those that never branched; a branch from an
        // instruction never translated (impossible in practice) would add one.
        let extra = total.keys().filter(|a| !nodes.contains_key(a)).count();
        let mut out = format!(
            "collected {} control flow nodes in the hash table\n",
            nodes.len() + extra
        );
        let mut rows: Vec<(u64, &Branches)> = total
            .iter()
            .filter(|(_, b)| b.dest_count > 0)
            .map(|(&a, b)| (a, b))
            .collect();
        let key = |b: &Branches| match self.sort_by {
            SortBy::Hottest => b.dest_count,
            SortBy::Early => b.early_exit,
            SortBy::Destinations => b.dests.len() as u64,
        };
        rows.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then(a.0.cmp(&b.0)));
        let empty = Node::default();
        for (addr, b) in rows.iter().take(TOPN) {
            let node = nodes.get(addr).unwrap_or(&empty);
            let kind = if node.mid_count > 0 || b.early_exit > 0 {
                "sync fault"
            } else {
                "branch"
            };
            let symbol = node.symbol.as_deref().unwrap_or("(null)");
            let disas = if node.disas.is_empty() {
                "(null)"
            } else {
                &node.disas
            };
            out += &format!("  addr: 0x{addr:x} {symbol}: {disas} ({kind})\n");
            if b.early_exit > 0 {
                out += &format!("    early exits {}\n", b.early_exit);
            }
            out += &format!("    branches {}\n", b.dest_count);
            for (to, n) in &b.dests {
                out += &format!("      to 0x{to:x} ({n})\n");
            }
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Cflow);
