//! `bbv`: QEMU's `contrib/plugins/bbv.c` on the per-vCPU runtime. Writes basic block
//! vectors for the SimPoint analysis tool: one file per vCPU, `<outfile>.<vcpu>.bb`, with
//! a line per `interval` guest instructions (default 100,000,000) listing how many
//! instructions each block executed in that interval:
//!
//! ```text
//! T:1:23 :2:500 :7:1200
//! ```
//!
//! Blocks are numbered from 1 in the order they are first translated (by address, over
//! all vCPUs), as in the C plugin. Arguments, with its spellings: `outfile=PREFIX`
//! (required) and `interval=N`.
//!
//! The C plugin counts with inline adds into a scoreboard per block and a conditional
//! callback; here each vCPU's counts live in its own shard, updated by one callback per
//! executed block with no lock. The C plugin lists a line's blocks in its hash table's
//! order; this one in block-number order (SimPoint reads them as a sparse vector, in any
//! order).
//!
//! One difference, in linux-user only: when a guest thread ends and a new one gets its
//! vCPU index, bbv.c reopens the index's file (truncating it) but goes on with the old
//! thread's counts, and the old file's unwritten buffer is written over the new file's
//! start at exit; here the new thread starts a fresh file and fresh counts.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use qemu_plugin::{Args, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu};

struct Bbv {
    outfile: String,
    interval: u64,
    /// Block number by start address, shared by every vCPU (translation only).
    blocks: Mutex<HashMap<u64, usize>>,
}

/// One vCPU's counts since its last line, and its file.
struct Shard {
    count: u64,
    /// Instructions executed per block number in this interval.
    per_block: Vec<u64>,
    file: Option<BufWriter<File>>,
}

impl Shard {
    /// Writes the interval's line and starts the next interval.
    fn write_interval(&mut self, interval: u64) {
        self.count -= interval;
        let mut line = String::from("T");
        for (index, n) in self.per_block.iter_mut().enumerate() {
            if *n > 0 {
                line += &format!(":{index}:{n} ");
                *n = 0;
            }
        }
        line.push('\n');
        if let Some(f) = &mut self.file {
            // A write error cannot be reported from an exec callback; it stops the file.
            if f.write_all(line.as_bytes()).is_err() {
                self.file = None;
            }
        }
    }
}

impl PerVcpu for Bbv {
    type Config = ();
    type Shard = Shard;
    type Total = ();

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["outfile", "interval"])?;
        let outfile = args
            .string("outfile")?
            .ok_or_else(|| Failure::MissingArgument {
                key: "outfile".into(),
                expected: "the prefix of the per-vCPU files, e.g. outfile=prog".into(),
            })?
            .to_string();
        let interval = args.u64("interval", 100_000_000, 1..=u64::MAX)?;
        // bbv.c opens each vCPU's file at its init and silently writes nothing if it
        // cannot; here a prefix whose files cannot be created is refused at install,
        // by creating the first vCPU's file (which its init truncates again).
        let first = format!("{outfile}.0.bb");
        File::create(&first).map_err(|e| Failure::InvalidArgument {
            key: "outfile".into(),
            value: outfile.clone(),
            expected: format!("a prefix for files that can be created ({first}: {e})"),
        })?;
        let plugin = Bbv {
            outfile,
            interval,
            blocks: Mutex::new(HashMap::new()),
        };
        Ok((plugin, ()))
    }

    /// Opens (and truncates) the vCPU's file, as bbv.c does at each vCPU's init.
    fn new_shard(&self, vcpu: VCPUIndex) -> Result<Shard> {
        let path = format!("{}.{vcpu}.bb", self.outfile);
        let file = File::create(&path).map_err(|e| Failure::InvalidArgument {
            key: "outfile".into(),
            value: self.outfile.clone(),
            expected: format!("a prefix for files that can be created ({path}: {e})"),
        })?;
        Ok(Shard {
            count: 0,
            per_block: Vec::new(),
            file: Some(BufWriter::new(file)),
        })
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let insns = tb.size() as u64;
        let index = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            let next = blocks.len() + 1;
            *blocks.entry(tb.vaddr()).or_insert(next)
        };
        let interval = self.interval;
        tb.on_exec(move |cpu: &mut Vcpu<Self>| {
            cpu.count += insns;
            if cpu.per_block.len() <= index {
                cpu.per_block.resize(index + 1, 0);
            }
            cpu.per_block[index] += insns;
            if cpu.count >= interval {
                cpu.write_interval(interval);
            }
        });
        Ok(())
    }

    fn merge(&self, _total: &mut (), cpu: Vcpu<Self>) -> Result<()> {
        let mut shard = cpu.into_shard();
        if let Some(mut f) = shard.file.take() {
            f.flush()
                .map_err(|e| Failure::Other(format!("bbv: writing {}: {e}", self.outfile)))?;
        }
        Ok(())
    }

    fn on_exit(&self, _total: ()) -> Result<()> {
        Ok(())
    }
}

per_vcpu!(Bbv);
