//! `hotblocks`: execution counts per translated block, counted per vCPU on the hot path
//! and merged at exit, in the output format of QEMU's `contrib/plugins/hotblocks.c`:
//! `collected N entries in the hash table`, then `pc, tcount, icount, ecount` for the
//! 20 most executed blocks. No arguments.

use std::collections::HashMap;
use std::sync::Mutex;

use qemu_plugin::{
    Args, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu, qemu_plugin_outs,
};

/// Translation-time table: one entry per distinct (pc, instruction count). Translations
/// run in parallel in system mode, so it has its own lock (off the execution path).
#[derive(Default)]
struct Blocks {
    ids: HashMap<(u64, usize), usize>,
    /// (pc, instructions, times translated), by id.
    meta: Vec<(u64, usize, u64)>,
}

struct Hotblocks {
    blocks: Mutex<Blocks>,
}

impl PerVcpu for Hotblocks {
    type Config = ();
    /// Executions per block id, for one vCPU.
    type Shard = Vec<u64>;
    type Total = Vec<u64>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((
            Hotblocks {
                blocks: Mutex::default(),
            },
            (),
        ))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let key = (tb.vaddr(), tb.size());
        let id = {
            let mut b = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
            let next = b.meta.len();
            let id = *b.ids.entry(key).or_insert(next);
            if id == next {
                b.meta.push((key.0, key.1, 0));
            }
            b.meta[id].2 += 1;
            id
        };
        tb.on_exec(move |cpu: &mut Vcpu<Self>| {
            if id >= cpu.len() {
                cpu.resize(id + 1, 0);
            }
            cpu[id] += 1;
        });
        Ok(())
    }

    fn merge(&self, total: &mut Vec<u64>, cpu: Vcpu<Self>) -> Result<()> {
        let counts = cpu.into_shard();
        if total.len() < counts.len() {
            total.resize(counts.len(), 0);
        }
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
        Ok(())
    }

    fn on_exit(&self, total: Vec<u64>) -> Result<()> {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = blocks
            .meta
            .iter()
            .enumerate()
            .map(|(id, &(pc, insns, tcount))| {
                (pc, tcount, insns, total.get(id).copied().unwrap_or(0))
            })
            .collect();
        rows.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
        let mut out = format!("collected {} entries in the hash table\n", rows.len());
        if !rows.is_empty() {
            out += "pc, tcount, icount, ecount\n";
            for (pc, tcount, insns, ecount) in rows.iter().take(20) {
                out += &format!("0x{pc:016x}, {tcount}, {insns}, {ecount}\n");
            }
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Hotblocks);
