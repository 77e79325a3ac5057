//! `drcov`: QEMU's `contrib/plugins/drcov.c` on the per-vCPU runtime. Writes the blocks
//! the guest executed in DynamoRIO's drcov format (version 2, the coverage format that
//! Lighthouse and other binary-analysis tools load) to `filename=` (default
//! `file.drcov.trace`), exactly as the C plugin does:
//!
//! ```text
//! DRCOV VERSION: 2
//! DRCOV FLAVOR: drcov-64
//! Module Table: version 2, count 1
//! Columns: id, base, end, entry, path
//! 0, 0x400000, 0x4a1f3d, 0x401bc0, /path/to/guest
//! BB Table: 1234 bbs
//! <1234 binary entries: start u32, size u16, module id u16, little-endian>
//! ```
//!
//! Blocks are listed in translation order, a block translated twice twice, and only those
//! that executed. The C plugin marks a block executed under one global mutex on every
//! execution; here each vCPU marks it in its own shard, with no lock, and the shards are
//! merged at exit.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use qemu_plugin::{Args, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu};

/// One translated block, as drcov.c records it (its start truncated to 32 bits, its size
/// the sum of its instructions' sizes in 16 bits).
#[derive(Clone, Copy)]
struct Block {
    start: u32,
    size: u16,
}

/// The guest binary's layout, for the module table (user mode; empty in system mode).
struct Layout {
    start: u64,
    end: u64,
    entry: u64,
    path: String,
}

struct Drcov {
    file: Mutex<Option<File>>,
    /// Every translation, in order.
    blocks: Mutex<Vec<Block>>,
    layout: OnceLock<Layout>,
}

impl Drcov {
    /// Reads the layout on the first translation: linux-user answers these queries from
    /// the translating vCPU's task state.
    fn layout(&self) -> &Layout {
        self.layout.get_or_init(read_layout)
    }
}

#[cfg(since_api_1)]
fn read_layout() -> Layout {
    use qemu_plugin::{
        qemu_plugin_end_code, qemu_plugin_entry_code, qemu_plugin_path_to_binary,
        qemu_plugin_start_code,
    };
    Layout {
        start: qemu_plugin_start_code().unwrap_or(0),
        end: qemu_plugin_end_code().unwrap_or(0),
        entry: qemu_plugin_entry_code().unwrap_or(0),
        path: match qemu_plugin_path_to_binary() {
            Ok(Some(p)) => p.display().to_string(),
            // glibc's printf prints a NULL string as "(null)", as drcov.c does.
            _ => "(null)".to_string(),
        },
    }
}

/// Plugin API 0 has no program layout queries; `new` refuses before this is reached.
#[cfg(not(since_api_1))]
fn read_layout() -> Layout {
    Layout {
        start: 0,
        end: 0,
        entry: 0,
        path: "(null)".to_string(),
    }
}

/// Which blocks (by translation index) a vCPU executed.
type Executed = Vec<bool>;

fn mark(executed: &mut Executed, index: usize) {
    if executed.len() <= index {
        executed.resize(index + 1, false);
    }
    executed[index] = true;
}

impl PerVcpu for Drcov {
    type Config = ();
    type Shard = Executed;
    type Total = Executed;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        if cfg!(not(since_api_1)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_path_to_binary",
                needs: "6.0",
            }
            .into());
        }
        // drcov.c takes `filename=` and ignores anything else; anything else is refused
        // here, as a mistake.
        args.expect_only(&["filename"])?;
        let path = PathBuf::from(args.text("filename").unwrap_or("file.drcov.trace"));
        let file = File::create(&path).map_err(|e| Failure::InvalidArgument {
            key: "filename".into(),
            value: path.display().to_string(),
            expected: format!("a file that can be created ({e})"),
        })?;
        let plugin = Drcov {
            file: Mutex::new(Some(file)),
            blocks: Mutex::new(Vec::new()),
            layout: OnceLock::new(),
        };
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Executed> {
        Ok(Vec::new())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        self.layout();
        let size: usize = tb.instructions().map(|i| i.size()).sum();
        let block = Block {
            start: tb.vaddr() as u32,
            size: size as u16,
        };
        let index = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            blocks.push(block);
            blocks.len() - 1
        };
        tb.on_exec(move |cpu: &mut Vcpu<Self>| mark(cpu, index));
        Ok(())
    }

    fn merge(&self, total: &mut Executed, cpu: Vcpu<Self>) -> Result<()> {
        for (i, &executed) in cpu.iter().enumerate() {
            if executed {
                mark(total, i);
            }
        }
        Ok(())
    }

    fn on_exit(&self, executed: Executed) -> Result<()> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let covered: Vec<&Block> = blocks
            .iter()
            .enumerate()
            .filter(|&(i, _)| executed.get(i).copied().unwrap_or(false))
            .map(|(_, b)| b)
            .collect();
        let layout = self.layout();
        let mut out = format!(
            "DRCOV VERSION: 2\nDRCOV FLAVOR: drcov-64\nModule Table: version 2, count 1\n\
             Columns: id, base, end, entry, path\n0, 0x{:x}, 0x{:x}, 0x{:x}, {}\nBB Table: {} bbs\n",
            layout.start,
            layout.end,
            layout.entry,
            layout.path,
            covered.len()
        )
        .into_bytes();
        for b in covered {
            out.extend_from_slice(&b.start.to_le_bytes());
            out.extend_from_slice(&b.size.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
        }
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut f) = file {
            f.write_all(&out)
                .map_err(|e| Failure::Other(format!("drcov: writing the trace: {e}")))?;
        }
        Ok(())
    }
}

per_vcpu!(Drcov);
