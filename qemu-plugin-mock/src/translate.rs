//! Translation: the mock `qemu_plugin_tb`/`qemu_plugin_insn` that `tb_trans`
//! callbacks instrument, the shared TB cache, per-vCPU lookup caches, and flushing.

use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::block::{Block, InsnData};
use super::exec::{ExecInsn, ExecTb, MemOp, Op, ProgramBuilder};
use super::sync::{Mutex, MutexGuard};
use super::{ctx, memory, registry};
use crate::sys::qemu_plugin_tb;

/// The mock's `struct qemu_plugin_insn`: one instruction being translated.
pub(crate) struct MockInsn {
    /// The instruction's data, owned by the TB's `Arc<Block>`.
    pub(crate) data: NonNull<InsnData>,
    /// `insn_cbs`: exec callbacks, conditional callbacks and inline ops.
    pub(crate) ops: Vec<Op>,
    /// `mem_cbs`: memory callbacks and memory inline ops.
    pub(crate) mem: Vec<MemOp>,
}

/// The mock's `struct qemu_plugin_tb`: a block being translated.
pub(crate) struct MockTb {
    /// Block being translated (keeps `MockInsn::data` alive).
    pub(crate) block: Arc<Block>,
    /// TB-level items (`tb->cbs`).
    pub(crate) ops: Vec<Op>,
    /// The instructions, allocated once so `*mut qemu_plugin_insn` handles stay valid
    /// for the whole translation; freed in `Drop`.
    pub(crate) insns: NonNull<[MockInsn]>,
}

impl MockTb {
    fn new(block: Arc<Block>) -> Self {
        let insns: Box<[MockInsn]> = block
            .insns
            .iter()
            .map(|d| MockInsn {
                data: NonNull::from(d),
                ops: Vec::new(),
                mem: Vec::new(),
            })
            .collect();
        Self {
            block,
            ops: Vec::new(),
            insns: NonNull::from(Box::leak(insns)),
        }
    }

    fn into_exec(self) -> ExecTb {
        // SAFETY:
        // - `insns` came from `Box::leak` in `new`; no handle is used after translation.
        let insns = unsafe { Box::from_raw(self.insns.as_ptr()) };
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY:
        // - `this` is never dropped, so its fields are moved out exactly once.
        let (block, ops) = unsafe { (std::ptr::read(&this.block), std::ptr::read(&this.ops)) };
        let n_tb_ops = ops.len();
        let mut program = ProgramBuilder::default();
        for op in ops {
            program.push(op);
        }
        let insns: Box<[ExecInsn]> = insns
            .into_vec()
            .into_iter()
            .enumerate()
            .map(|(k, i)| {
                // SAFETY:
                // - `i.data` points into `block`, which we hold.
                let accesses = unsafe { i.data.as_ref() }.mem.clone();
                let n_ops = i.ops.len();
                for op in i.ops {
                    program.push(op);
                }
                if !i.mem.is_empty() && !accesses.is_empty() {
                    program.push_mem(k);
                }
                ExecInsn {
                    n_ops,
                    mem: i.mem.into_boxed_slice(),
                    accesses,
                }
            })
            .collect();
        program.finish(n_tb_ops, insns, block)
    }
}

impl Drop for MockTb {
    fn drop(&mut self) {
        // SAFETY:
        // - `insns` came from `Box::leak` in `new` and is freed once (into_exec skips Drop).
        drop(unsafe { Box::from_raw(self.insns.as_ptr()) });
    }
}

/// What translation produced, for tests to inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TbSummary {
    /// TB-level items (callbacks, conditional callbacks, inline ops).
    pub tb_ops: usize,
    /// Per instruction: exec items.
    pub insn_ops: Vec<usize>,
    /// Per instruction: memory items.
    pub mem_ops: Vec<usize>,
}

impl TbSummary {
    pub(crate) fn of(tb: &ExecTb) -> Self {
        Self {
            tb_ops: tb.n_tb_ops,
            insn_ops: tb.insns.iter().map(|i| i.n_ops).collect(),
            mem_ops: tb.insns.iter().map(|i| i.mem.len()).collect(),
        }
    }
}

/// Translated blocks by block id (QEMU's TB hash table).
static TBS: Mutex<BTreeMap<u64, Arc<ExecTb>>> = Mutex::new(BTreeMap::new());
/// Bumped by every flush; per-vCPU caches drop their entries when it changes.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Number of `tb_trans` rounds run (one per translation).
static TRANSLATIONS: AtomicU64 = AtomicU64::new(0);

fn tbs() -> MutexGuard<'static, BTreeMap<u64, Arc<ExecTb>>> {
    TBS.lock()
}

/// Translates `block` on the calling thread, running every plugin's `tb_trans`
/// callback with `RW_REGS` flags like `qemu_plugin_tb_trans_cb`. Several threads may
/// translate at once, as in system mode.
pub(crate) fn translate(block: &Arc<Block>) -> ExecTb {
    TRANSLATIONS.fetch_add(1, Ordering::Relaxed);
    let cbs = registry::collect(|id, c| c.tb_trans.map(|f| (id, f)));
    let mut tb = MockTb::new(block.clone());
    let p: *mut MockTb = &mut tb;
    for (id, f) in cbs {
        // SAFETY:
        // - `p` points to `tb`, alive and not otherwise accessed during the callback;
        //   the plugin uses it only through this mock's C functions, on this thread.
        ctx::with_flags(ctx::RW_REGS, || unsafe {
            f.tb_trans(id, p.cast::<qemu_plugin_tb>())
        });
    }
    tb.into_exec()
}

/// Serialises translation in user mode (linux-user's `mmap_lock`).
static MMAP_LOCK: Mutex<()> = Mutex::new(());

/// Returns the shared translation of `block`, translating it (outside the cache
/// lock) if needed. In system mode concurrent translators race and the first
/// inserted wins, as in QEMU; in user mode translation is serialised, so each block
/// is translated once per flush.
pub(crate) fn get_or_translate(block: &Arc<Block>) -> Arc<ExecTb> {
    if let Some(tb) = tbs().get(&block.id) {
        return tb.clone();
    }
    let _mmap = (!memory::is_system()).then(|| MMAP_LOCK.lock());
    if let Some(tb) = tbs().get(&block.id) {
        return tb.clone();
    }
    let gen_before = GENERATION.load(Ordering::Acquire);
    let tb = Arc::new(translate(block));
    let mut map = tbs();
    if GENERATION.load(Ordering::Acquire) != gen_before {
        // Flushed while we translated (can only happen outside a running section).
        return tb;
    }
    map.entry(block.id).or_insert(tb).clone()
}

/// A vCPU's private view of the TB cache: lookups without locks after the first.
#[derive(Default)]
pub(crate) struct LocalCache {
    generation: u64,
    map: HashMap<u64, Arc<ExecTb>>,
}

impl LocalCache {
    /// The translation of `block`, valid until the next flush. Call only inside the
    /// vCPU's running section (so no flush can run concurrently).
    pub(crate) fn get(&mut self, block: &Arc<Block>) -> Arc<ExecTb> {
        let g = GENERATION.load(Ordering::Acquire);
        if g != self.generation {
            self.map.clear();
            self.generation = g;
        }
        self.map
            .entry(block.id)
            .or_insert_with(|| get_or_translate(block))
            .clone()
    }
}

/// Drops every translated block and calls the flush callbacks (`tb_flush` +
/// `qemu_plugin_flush_cb`). The caller holds an exclusive section.
pub(crate) fn flush_locked() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let old = std::mem::take(&mut *tbs());
    drop(old);
    for (id, f) in registry::collect(|id, c| c.flush.map(|f| (id, f))) {
        // SAFETY:
        // - plugin's flush callback, called as QEMU does.
        unsafe { f.plain(id) };
    }
}

/// Number of flushes so far.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Number of translations so far.
pub(crate) fn translations() -> u64 {
    TRANSLATIONS.load(Ordering::Relaxed)
}

/// Drops every translation and zeroes the counters (host teardown).
pub(crate) fn reset() {
    drop(std::mem::take(&mut *tbs()));
    GENERATION.fetch_add(1, Ordering::AcqRel);
    TRANSLATIONS.store(0, Ordering::Relaxed);
}
