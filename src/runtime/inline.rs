//! Inline counters: per-vCPU `u64`s that QEMU updates with inline operations, with no
//! callback at all. The counters one install creates share scoreboards whose entries are
//! padded blocks of up to 8 counters (`Line`): a vCPU's counters sit together, as the
//! fields of a C plugin's per-vCPU struct do, and no two vCPUs' counters share a cache
//! line (QEMU's own entries are not padded, and 8-byte entries of adjacent vCPUs
//! false-share).

use std::sync::{Mutex, PoisonError};

#[cfg(since_api_3)]
use crate::PluginCondition;
use crate::VCPUIndex;
use crate::error::{Error, Result};
#[cfg(since_api_2)]
use crate::scoreboard::{PluginU64, Scoreboard};

/// A per-vCPU counter updated inline by QEMU. Create it in [`PerVcpu::new`](crate::PerVcpu::new):
/// counters live in QEMU scoreboards that last for the rest of the process, so creating
/// one anywhere else (where it could happen once per translation, without bound) is an
/// error. Add to it from
/// [`Translation`](crate::Translation), and take each vCPU's value in
/// [`PerVcpu::merge`](crate::PerVcpu::merge) with [`Vcpu::take_inline`](crate::Vcpu::take_inline),
/// which also resets it so a reused vCPU index starts from zero.
/// Needs: QEMU 9.0 (plugin API v2; STORE and conditions need 9.1). Under plugin APIs 0
/// and 1 (QEMU 7.2 to 8.2), which have no scoreboards, the type exists so that plugins
/// compile unchanged, but [`InlineCounter::new`] fails with
/// [`Failure::Unsupported`](crate::Failure::Unsupported), so a plugin that needs one is
/// refused at install with that message.
#[derive(Debug, Clone, Copy)]
pub struct InlineCounter {
    board: Board,
    /// Byte offset of this counter in each vCPU's entry of `board`.
    #[cfg_attr(not(since_api_2), allow(dead_code))]
    offset: usize,
}

impl InlineCounter {
    /// A new counter, zero for every vCPU. Only while the plugin installs (from
    /// [`PerVcpu::new`](crate::PerVcpu::new)); elsewhere an error says so.
    pub fn new() -> Result<Self> {
        if !crate::callbacks::failure::installing() {
            return Err(Error::msg(
                "InlineCounter::new is only allowed while the plugin installs (in PerVcpu::new): \
                 counters live in QEMU scoreboards that last as long as the process",
            ));
        }
        #[cfg(since_api_2)]
        {
            let (board, offset) = next_slot();
            Ok(Self { board, offset })
        }
        #[cfg(not(since_api_2))]
        Err(Error::from(crate::Failure::Unsupported {
            api: "qemu_plugin_scoreboard_new (InlineCounter)",
            needs: "9.0",
        }))
    }

    #[cfg(since_api_2)]
    pub(crate) fn entry(&self) -> PluginU64<'static> {
        // SAFETY: `offset` is `8 * i` for a slot `i < SLOTS` (`next_slot`): the offset of
        // a `u64` of the entry's array.
        unsafe { self.board.u64_in_struct(self.offset) }
    }

    /// vCPU `vcpu`'s value (exact when read from that vCPU's own callbacks or after it
    /// stopped).
    pub fn get(&self, vcpu: VCPUIndex) -> u64 {
        #[cfg(since_api_2)]
        return self.entry().get(vcpu);
        #[cfg(not(since_api_2))]
        {
            let _ = vcpu;
            match *self.board {}
        }
    }

    /// Sets vCPU `vcpu`'s value.
    pub fn set(&self, vcpu: VCPUIndex, value: u64) {
        #[cfg(since_api_2)]
        return self.entry().set(vcpu, value);
        #[cfg(not(since_api_2))]
        {
            let _ = (vcpu, value);
            match *self.board {}
        }
    }

    /// Returns vCPU `vcpu`'s value and resets it to zero.
    pub fn take(&self, vcpu: VCPUIndex) -> u64 {
        let v = self.get(vcpu);
        self.set(vcpu, 0);
        v
    }

    /// The sum over all vCPUs.
    pub fn sum(&self) -> u64 {
        #[cfg(since_api_2)]
        return self.entry().sum();
        #[cfg(not(since_api_2))]
        match *self.board {}
    }

    /// Registers the inline `op` with `imm` on this counter at `site`.
    #[cfg(since_api_2)]
    pub(crate) fn apply<S: crate::callbacks::exec::ExecSite>(
        &self,
        site: &S,
        op: crate::PluginOp,
        imm: u64,
    ) {
        crate::callbacks::exec::inline(site, op, self.entry(), imm)
    }

    /// Registers the inline `op` with `imm` on this counter at `site`.
    #[cfg(not(since_api_2))]
    pub(crate) fn apply<S>(&self, _site: &S, _op: crate::PluginOp, _imm: u64) {
        match *self.board {}
    }

    /// Registers the inline `op` with `imm` on this counter for `insn`'s memory accesses
    /// that match `rw`.
    pub(crate) fn apply_mem(
        &self,
        insn: &crate::Instruction<'_>,
        rw: crate::MemRW,
        op: crate::PluginOp,
        imm: u64,
    ) {
        #[cfg(since_api_2)]
        insn.register_memory_inline_per_vcpu(rw, op, self.entry(), imm);
        #[cfg(not(since_api_2))]
        {
            let _ = (insn, rw, op, imm);
            match *self.board {}
        }
    }
}

/// Counters per scoreboard entry.
#[cfg(since_api_2)]
pub(crate) const SLOTS: usize = 8;

/// One vCPU's entry of an inline counters' scoreboard: 128 bytes, whose first 64 hold
/// the counters. QEMU aligns a scoreboard's array only as `malloc` does, so an entry may
/// start anywhere in a cache line; with the counters in the first half, two vCPUs'
/// counters are at least 72 bytes apart, never on one line. (No `align` attribute: the
/// entries are not aligned to it.)
#[cfg(since_api_2)]
pub(crate) type Line = [u64; 2 * SLOTS];

/// The scoreboard of inline counters (each leaked: it lives as long as the process).
#[cfg(since_api_2)]
pub(crate) type Board = &'static Scoreboard<'static, Line>;
/// Under APIs 0 and 1 no counter can exist.
#[cfg(not(since_api_2))]
pub(crate) type Board = &'static NoScoreboards;

/// Uninhabited: QEMU before 9.0 has no scoreboards.
#[cfg(not(since_api_2))]
#[derive(Debug)]
pub(crate) enum NoScoreboards {}

/// The scoreboards made by the install in progress, the last one's next free slot
/// first; the runtime takes them when it is published ([`take_created`]), so each
/// runtime knows exactly its own, and the next install starts a scoreboard of its own.
struct Created {
    boards: Vec<Board>,
    /// Slots of the last board already given to a counter.
    used: usize,
}

static CREATED: Mutex<Created> = Mutex::new(Created {
    boards: Vec::new(),
    used: 0,
});

/// A slot for a new counter: the next free one of the install's last scoreboard, or the
/// first of a new one.
#[cfg(since_api_2)]
fn next_slot() -> (Board, usize) {
    let mut created = CREATED.lock().unwrap_or_else(PoisonError::into_inner);
    let board = match created.boards.last() {
        Some(&board) if created.used < SLOTS => board,
        _ => {
            let board = Scoreboard::new().leak();
            created.boards.push(board);
            created.used = 0;
            board
        }
    };
    let offset = created.used * size_of::<u64>();
    created.used += 1;
    (board, offset)
}

/// The scoreboards of the counters created since the last call (by the install in
/// progress).
pub(crate) fn take_created() -> Vec<Board> {
    let mut created = CREATED.lock().unwrap_or_else(PoisonError::into_inner);
    created.used = 0;
    std::mem::take(&mut created.boards)
}

/// Zeroes every vCPU's entry of `boards` (a forked child starts from zero).
pub(crate) fn reset(boards: &[Board]) {
    #[cfg(not(since_api_2))]
    let _ = boards;
    #[cfg(since_api_2)]
    let vcpus = crate::qemu_plugin_num_vcpus().unwrap_or(0);
    #[cfg(since_api_2)]
    for board in boards {
        for slot in 0..SLOTS {
            // SAFETY: the offset of a `u64` of the entry's array.
            let counter = unsafe { board.u64_in_struct(slot * size_of::<u64>()) };
            for vcpu in 0..vcpus {
                counter.set(vcpu as VCPUIndex, 0);
            }
        }
    }
}

/// The comparison of a conditional callback: run it when `counter <cond> immediate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg(since_api_3)]
pub enum Condition {
    /// Always.
    Always,
    /// Never.
    Never,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

#[cfg(since_api_3)]
impl From<Condition> for PluginCondition {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Always => PluginCondition::QEMU_PLUGIN_COND_ALWAYS,
            Condition::Never => PluginCondition::QEMU_PLUGIN_COND_NEVER,
            Condition::Eq => PluginCondition::QEMU_PLUGIN_COND_EQ,
            Condition::Ne => PluginCondition::QEMU_PLUGIN_COND_NE,
            Condition::Lt => PluginCondition::QEMU_PLUGIN_COND_LT,
            Condition::Le => PluginCondition::QEMU_PLUGIN_COND_LE,
            Condition::Gt => PluginCondition::QEMU_PLUGIN_COND_GT,
            Condition::Ge => PluginCondition::QEMU_PLUGIN_COND_GE,
        }
    }
}

#[cfg(all(test, since_api_2))]
mod tests {
    use super::*;

    /// Hole 10: every `InlineCounter::new` leaked a scoreboard, so a plugin creating
    /// counters at translation grew without bound. Only an install may create them now.
    #[test]
    fn hole10_inline_counters_are_created_only_at_install() {
        let _host = qemu_plugin_mock::MockHost::user();
        let err = InlineCounter::new().expect_err("created outside install");
        assert!(
            err.to_string()
                .contains("only allowed while the plugin installs")
        );
        // Creation at install is what every plugin with inline counters does: the
        // process, thread and runtime tests install such plugins.
    }
}
