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
//! (required) and `interval=N`; and this rewrite's own `inline_blocks=N` (0 to 32768,
//! the default): how many blocks are counted inline, the rest by callback.
//!
//! Counting is inline, as in the C plugin, with no callback per executed block: each block
//! adds its instruction count to the vCPU's interval counter ([`InlineCounter`]) and to
//! its own slot in a per-vCPU table (one QEMU scoreboard of [`INLINE_BLOCKS`] slots per
//! vCPU, made at install, where bbv.c makes a scoreboard per block at translation), and a
//! conditional callback writes the line once the interval is full. Blocks numbered past
//! the table, and every block under plugin APIs before 3 (QEMU 9.1), which have no
//! conditional callbacks, are counted by a callback per execution in the vCPU's shard.
//! The C plugin lists a line's blocks in its hash table's order; this one in block-number
//! order (SimPoint reads them as a sparse vector, in any order).
//!
//! One difference, in linux-user only: when a guest thread ends and a new one gets its
//! vCPU index, bbv.c reopens the index's file (truncating it) but goes on with the old
//! thread's counts, and the old file's unwritten buffer is written over the new file's
//! start at exit; here the new thread starts a fresh file and fresh counts.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;
#[cfg(since_api_3)]
use std::sync::atomic::{AtomicUsize, Ordering};

use qemu_plugin::{Args, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu};
#[cfg(since_api_3)]
use qemu_plugin::{Condition, InlineCounter, PluginOp, scoreboard::Scoreboard};

/// The most blocks (numbers 0 to `INLINE_BLOCKS - 1`; block numbers start at 1) counted
/// inline, and the default: 256 KiB per vCPU.
const INLINE_BLOCKS: usize = 32_768;

struct Bbv {
    outfile: String,
    interval: u64,
    /// Block number by start address, shared by every vCPU (translation only).
    blocks: Mutex<HashMap<u64, usize>>,
    #[cfg(since_api_3)]
    inline: Inline,
}

/// The inline counts: per vCPU, instructions in this interval, and per block number.
#[cfg(since_api_3)]
struct Inline {
    count: InlineCounter,
    table: &'static Scoreboard<'static, [u64; INLINE_BLOCKS]>,
    /// Block numbers below this are counted inline (`inline_blocks`, at most
    /// `INLINE_BLOCKS`).
    limit: usize,
    /// How many blocks have a number (set at translation, under `Bbv::blocks`).
    numbered: AtomicUsize,
}

#[cfg(since_api_3)]
impl Inline {
    /// Block `index`'s slot in every vCPU's table.
    fn slot(&self, index: usize) -> qemu_plugin::scoreboard::PluginU64<'static> {
        assert!(index < self.limit && self.limit <= INLINE_BLOCKS);
        // SAFETY: `index * 8` is the offset of the `index`-th `u64` of the entry type
        // `[u64; INLINE_BLOCKS]`, as `index < INLINE_BLOCKS` (checked just above).
        unsafe { self.table.u64_in_struct(index * size_of::<u64>()) }
    }

    /// The blocks numbered so far that have a slot. A vCPU executes only blocks
    /// translated before, whose numbers this load sees.
    fn slots(&self) -> std::ops::Range<usize> {
        1..(self.numbered.load(Ordering::Acquire) + 1).min(self.limit)
    }
}

/// One vCPU's counts since its last line, and its file.
struct Shard {
    /// Instructions in this interval (plugin APIs before 3; later the inline counter).
    #[cfg(not(since_api_3))]
    count: u64,
    /// Instructions executed per block number in this interval.
    per_block: Vec<u64>,
    file: Option<BufWriter<File>>,
}

impl Shard {
    /// Writes the interval's line: first the blocks counted inline (`inline`, taken from
    /// the vCPU's table), then those this shard counted (which start again from zero).
    fn write_interval(&mut self, inline: impl IntoIterator<Item = (usize, u64)>) {
        let mut line = String::from("T");
        for (index, n) in inline {
            line += &format!(":{index}:{n} ");
        }
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
        args.expect_only(&["outfile", "interval", "inline_blocks"])?;
        let outfile = args
            .string("outfile")?
            .ok_or_else(|| Failure::MissingArgument {
                key: "outfile".into(),
                expected: "the prefix of the per-vCPU files, e.g. outfile=prog".into(),
            })?
            .to_string();
        let interval = args.u64("interval", 100_000_000, 1..=u64::MAX)?;
        let limit = args.u64(
            "inline_blocks",
            INLINE_BLOCKS as u64,
            0..=INLINE_BLOCKS as u64,
        )?;
        #[cfg(not(since_api_3))]
        let _ = limit;
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
            #[cfg(since_api_3)]
            inline: Inline {
                count: InlineCounter::new()?,
                table: Scoreboard::new().leak(),
                limit: limit as usize,
                numbered: AtomicUsize::new(0),
            },
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
            #[cfg(not(since_api_3))]
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
            let index = *blocks.entry(tb.vaddr()).or_insert(next);
            #[cfg(since_api_3)]
            self.inline.numbered.store(blocks.len(), Ordering::Release);
            index
        };
        let interval = self.interval;
        #[cfg(since_api_3)]
        {
            // In bbv.c's order: the interval's count, the block's, then the line if full.
            let inline = &self.inline;
            tb.inline_add(&inline.count, insns);
            if index < inline.limit {
                let add = PluginOp::QEMU_PLUGIN_INLINE_ADD_U64;
                tb.tb()
                    .register_inline_per_vcpu(add, inline.slot(index), insns);
            } else {
                tb.on_exec(move |cpu: &mut Vcpu<Self>| add(cpu, index, insns));
            }
            tb.on_exec_if(&inline.count, Condition::Ge, interval, move |cpu| {
                let (vcpu, inline) = (cpu.index(), &cpu.handle().plugin().inline);
                // The overshoot past the interval counts towards the next, as in bbv.c.
                inline.count.set(vcpu, inline.count.get(vcpu) - interval);
                let counts = inline.slots().filter_map(|i| {
                    let n = inline.slot(i).get(vcpu);
                    (n > 0).then(|| {
                        inline.slot(i).set(vcpu, 0);
                        (i, n)
                    })
                });
                cpu.write_interval(counts);
            });
        }
        #[cfg(not(since_api_3))]
        tb.on_exec(move |cpu: &mut Vcpu<Self>| {
            add(cpu, index, insns);
            cpu.count += insns;
            if cpu.count >= interval {
                // The overshoot past the interval counts towards the next, as in bbv.c.
                cpu.count -= interval;
                cpu.write_interval([]);
            }
        });
        Ok(())
    }

    fn merge(&self, _total: &mut (), cpu: Vcpu<Self>) -> Result<()> {
        // A vCPU index reused by a new thread starts from zero.
        #[cfg(since_api_3)]
        {
            let vcpu = cpu.index();
            cpu.take_inline(&self.inline.count);
            for i in self.inline.slots() {
                self.inline.slot(i).set(vcpu, 0);
            }
        }
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

/// Counts an execution of block `index` in the vCPU's shard.
fn add(cpu: &mut Vcpu<Bbv>, index: usize, insns: u64) {
    if cpu.per_block.len() <= index {
        cpu.per_block.resize(index + 1, 0);
    }
    cpu.per_block[index] += insns;
}

per_vcpu!(Bbv);
