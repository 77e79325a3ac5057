//! `reload`: shows a configuration replaced while the guest runs. It counts executed
//! instructions whose address lies in a range read from `config=FILE` (two hex numbers,
//! `START END`), and re-reads the file every `interval=MS` milliseconds (default 100)
//! on a background thread started once the plugin is installed, which replaces the
//! configuration through the plugin's `Handle`; every vCPU sees a new range at its next
//! block.
//!
//! At exit: `reload: N insns in range, M reloads, range START-END`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qemu_plugin::{
    Args, Error, Failure, Handle, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_outs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
}

/// Reads the `config=PATH` file. Every error names the argument and the path, since at
/// install it is the message that refuses the plugin.
fn read_range(path: &Path) -> Result<Range> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::from(Failure::InvalidArgument {
            key: "config".into(),
            value: path.display().to_string(),
            expected: format!("a readable file holding `START END` in hex; reading it failed: {e}"),
        })
    })?;
    let mut parts = text
        .split_whitespace()
        .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16));
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(start)), Some(Ok(end)), None) if start <= end => Ok(Range { start, end }),
        _ => Err(Error::from(Failure::InvalidArgument {
            key: "config".into(),
            value: path.display().to_string(),
            expected: "a file holding two hex addresses `START END` with START <= END".into(),
        })),
    }
}

struct Reload {
    path: PathBuf,
    interval: Duration,
    reloads: AtomicU64,
}

impl PerVcpu for Reload {
    type Config = Range;
    type Shard = u64;
    type Total = u64;

    fn new(args: &Args, _info: &Info) -> Result<(Self, Range)> {
        args.expect_only(&["config", "interval"])?;
        let path = PathBuf::from(args.string("config")?.ok_or_else(|| {
            Error::from(Failure::MissingArgument {
                key: "config".into(),
                expected: "a file holding `START END` in hex: config=PATH".into(),
            })
        })?);
        let interval = Duration::from_millis(args.u64("interval", 100, 1..=3_600_000)?);
        let range = read_range(&path)?;
        let reloads = AtomicU64::new(0);
        Ok((
            Reload {
                path,
                interval,
                reloads,
            },
            range,
        ))
    }

    fn started(&self, handle: Handle<Self>) -> Result<()> {
        let (watched, interval) = (self.path.clone(), self.interval);
        std::thread::Builder::new()
            .name("reload-config".into())
            .spawn(move || {
                let mut current = *handle.config();
                loop {
                    std::thread::sleep(interval);
                    if let Ok(r) = read_range(&watched)
                        && r != current
                    {
                        handle.set_config(r);
                        current = r;
                        handle.plugin().reloads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| Error::msg(format!("cannot start the reload thread: {e}")))?;
        Ok(())
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<u64> {
        Ok(0)
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            let pc = insn.vaddr();
            insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                let r = *cpu.config();
                if (r.start..r.end).contains(&pc) {
                    **cpu += 1;
                }
            });
        }
        Ok(())
    }

    fn merge(&self, total: &mut u64, cpu: Vcpu<Self>) -> Result<()> {
        *total += *cpu;
        Ok(())
    }

    fn on_exit(&self, total: u64) -> Result<()> {
        let r = read_range(&self.path).unwrap_or(Range { start: 0, end: 0 });
        qemu_plugin_outs(format!(
            "reload: {total} insns in range, {} reloads, range {:x}-{:x}\n",
            self.reloads.load(Ordering::Relaxed),
            r.start,
            r.end
        ))
    }
}

per_vcpu!(Reload);
