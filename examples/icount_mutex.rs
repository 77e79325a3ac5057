//! `icount_mutex`: the instruction count of `icount`, written on the 10.1.0-v2-style
//! surface (`Register` / `HasCallbacks` / `register!`) the way a plugin for that crate
//! shares state: the per-instruction exec closure reaches the counters through one global
//! `Mutex`. It exists to measure what the old design's global lock costs per event (see
//! `docs/performance.md`); use `icount` for real work.
//!
//! Output, as QEMU's `tests/tcg/plugins/insn.c`: `cpu N insns: X`, then `total insns: T`.
//! Takes no arguments.

use std::sync::{Mutex, PoisonError};

use qemu_plugin::{
    HasCallbacks, Info, PluginId, Register, Result, TranslationBlock, VCPUIndex, install::Args,
    qemu_plugin_outs, qemu_plugin_register_atexit_cb, register,
};

/// Per-vCPU counts, indexed by vCPU index, behind the one lock every event takes.
static COUNTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[derive(Default)]
struct IcountMutex;

impl Register for IcountMutex {
    fn register(&mut self, id: PluginId, args: &Args, _info: &Info) -> Result<()> {
        args.expect_only(&[])?;
        qemu_plugin_register_atexit_cb(id, |_| {
            let counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
            let mut out = String::new();
            for (i, n) in counts.iter().enumerate() {
                out += &format!("cpu {i} insns: {n}\n");
            }
            out += &format!("total insns: {}\n", counts.iter().sum::<u64>());
            let _ = qemu_plugin_outs(out);
        })
    }
}

impl HasCallbacks for IcountMutex {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock<'_>,
    ) -> Result<()> {
        for insn in tb.instructions() {
            insn.register_execute_callback(move |vcpu: VCPUIndex| {
                let mut counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
                let i = vcpu as usize;
                if counts.len() <= i {
                    counts.resize(i + 1, 0);
                }
                counts[i] += 1;
            });
        }
        Ok(())
    }
}

register!(IcountMutex);
