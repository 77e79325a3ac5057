//! `trace`: a scalable multi-core tracer. Each vCPU shard owns a buffered writer to its
//! own file under `dir=PATH`, and records every executed block (`B <pc>`) and every
//! syscall (`S <number> <return value>`). No lock and no shared buffer on the hot path;
//! a file per shard, so files stay distinct when a vCPU index is reused.
//!
//! Files are named `trace-<pid>-cpu<index>-<n>.txt`, and never overwritten: a forked
//! child writes its own files, and after an execve (same pid) `n` moves past the names
//! already taken. With `every=N` (default 1) only every
//! Nth executed block of a vCPU is written (counts stay exact): a Linux boot executes
//! hundreds of millions of blocks. At exit it prints `trace: N blocks, M syscalls, K files`,
//! and how many translation-cache flushes it saw and how many block closures were still
//! alive (each flush frees those of the discarded blocks).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use qemu_plugin::callbacks::live_closures;
use qemu_plugin::{
    Args, Error, Failure, Info, PerVcpu, Result, SyscallReturn, Translation, VCPUIndex, Vcpu,
    flush_count, per_vcpu, qemu_plugin_outs,
};

struct Trace {
    dir: PathBuf,
    every: u64,
    files: AtomicU64,
}

struct Shard {
    out: BufWriter<File>,
    path: PathBuf,
    blocks: u64,
    syscalls: u64,
    /// The first write error, reported at merge (exec closures cannot return one).
    error: Option<std::io::Error>,
}

impl Shard {
    fn record(&mut self, line: std::fmt::Arguments<'_>) {
        if self.error.is_none()
            && let Err(e) = self.out.write_fmt(line)
        {
            self.error = Some(e);
        }
    }
}

#[derive(Default)]
struct Total {
    blocks: u64,
    syscalls: u64,
    files: u64,
}

impl PerVcpu for Trace {
    type Config = ();
    type Shard = Shard;
    type Total = Total;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["dir", "every"])?;
        let every = args.u64("every", 1, 1..=u64::MAX)?;
        let dir = args.writable_dir("dir")?.ok_or_else(|| {
            Error::from(Failure::MissingArgument {
                key: "dir".into(),
                expected: "a writable directory for the trace files: dir=PATH".into(),
            })
        })?;
        Ok((
            Trace {
                dir,
                every,
                files: AtomicU64::new(0),
            },
            (),
        ))
    }

    fn new_shard(&self, vcpu: VCPUIndex) -> Result<Shard> {
        // Never reuse a name: after an execve the pid (and so the names) repeat, and the
        // files of the image before it must survive.
        let (path, file) = loop {
            let n = self.files.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("trace-{}-cpu{vcpu}-{n}.txt", std::process::id()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::msg(format!("cannot create {}: {e}", path.display())));
                }
            }
        };
        Ok(Shard {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            blocks: 0,
            syscalls: 0,
            error: None,
        })
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let pc = tb.vaddr();
        if self.every == 1 {
            tb.on_exec(move |cpu: &mut Vcpu<Self>| {
                cpu.blocks += 1;
                cpu.record(format_args!("B {pc:x}\n"));
            });
        } else {
            let every = self.every;
            tb.on_exec(move |cpu: &mut Vcpu<Self>| {
                cpu.blocks += 1;
                if cpu.blocks.is_multiple_of(every) {
                    cpu.record(format_args!("B {pc:x}\n"));
                }
            });
        }
        Ok(())
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        cpu.syscalls += 1;
        cpu.record(format_args!("S {} {}\n", ret.num, ret.ret));
        Ok(())
    }

    fn merge(&self, total: &mut Total, cpu: Vcpu<Self>) -> Result<()> {
        let mut shard = cpu.into_shard();
        total.blocks += shard.blocks;
        total.syscalls += shard.syscalls;
        total.files += 1;
        let flushed = shard.out.flush();
        match shard.error.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::msg(format!(
                "writing {} failed: {e}",
                shard.path.display()
            ))),
        }
    }

    fn on_exit(&self, total: Total) -> Result<()> {
        qemu_plugin_outs(format!(
            "trace: {} blocks, {} syscalls, {} files\ntrace: files in {}\n\
             trace: {} translation-cache flushes, {} block closures alive\n",
            total.blocks,
            total.syscalls,
            total.files,
            self.dir.display(),
            flush_count(),
            live_closures(),
        ))
    }
}

per_vcpu!(Trace);
