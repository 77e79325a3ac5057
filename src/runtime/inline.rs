//! Inline counters: per-vCPU `u64`s that QEMU updates with inline operations, with no
//! callback at all, in cache-line-padded scoreboard entries (QEMU's own entries are not
//! padded, and 8-byte entries of adjacent vCPUs false-share).

use std::sync::{Mutex, PoisonError};

use crossbeam_utils::CachePadded;

use crate::error::{Error, Result};
use crate::scoreboard::{PluginU64, Scoreboard};
use crate::{PluginCondition, VCPUIndex};

/// A per-vCPU counter updated inline by QEMU. Create it in [`PerVcpu::new`](crate::PerVcpu::new):
/// each counter is a QEMU scoreboard that lives for the rest of the process, so creating
/// one anywhere else (where it could happen once per translation, without bound) is an
/// error. Add to it from
/// [`Translation`](crate::Translation), and take each vCPU's value in
/// [`PerVcpu::merge`](crate::PerVcpu::merge) with [`Vcpu::take_inline`](crate::Vcpu::take_inline),
/// which also resets it so a reused vCPU index starts from zero.
/// Needs: QEMU 9.0 (plugin API v2; STORE and conditions need 9.1).
#[derive(Debug, Clone, Copy)]
pub struct InlineCounter {
    board: &'static Scoreboard<'static, CachePadded<u64>>,
}

impl InlineCounter {
    /// A new counter, zero for every vCPU. Only while the plugin installs (from
    /// [`PerVcpu::new`](crate::PerVcpu::new)); elsewhere an error says so.
    pub fn new() -> Result<Self> {
        if !crate::callbacks::failure::installing() {
            return Err(Error::msg(
                "InlineCounter::new is only allowed while the plugin installs (in PerVcpu::new): \
                 each counter is a QEMU scoreboard that lives as long as the process",
            ));
        }
        let board = Scoreboard::new().leak();
        register(board);
        Ok(Self { board })
    }

    pub(crate) fn entry(&self) -> PluginU64<'static> {
        self.board.u64()
    }

    /// vCPU `vcpu`'s value (exact when read from that vCPU's own callbacks or after it
    /// stopped).
    pub fn get(&self, vcpu: VCPUIndex) -> u64 {
        self.entry().get(vcpu)
    }

    /// Sets vCPU `vcpu`'s value.
    pub fn set(&self, vcpu: VCPUIndex, value: u64) {
        self.entry().set(vcpu, value)
    }

    /// Returns vCPU `vcpu`'s value and resets it to zero.
    pub fn take(&self, vcpu: VCPUIndex) -> u64 {
        let v = self.get(vcpu);
        self.set(vcpu, 0);
        v
    }

    /// The sum over all vCPUs.
    pub fn sum(&self) -> u64 {
        self.entry().sum()
    }
}

/// The scoreboard of an inline counter (each leaked: it lives as long as the process).
pub(crate) type Board = &'static Scoreboard<'static, CachePadded<u64>>;

/// Counters created by the install in progress; the runtime takes them when it is
/// published ([`take_created`]), so each runtime knows exactly its own.
static CREATED: Mutex<Vec<Board>> = Mutex::new(Vec::new());

fn register(board: Board) {
    CREATED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(board);
}

/// The counters created since the last call (by the install in progress).
pub(crate) fn take_created() -> Vec<Board> {
    std::mem::take(&mut *CREATED.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Zeroes every vCPU's entry of `boards` (a forked child starts from zero).
pub(crate) fn reset(boards: &[Board]) {
    let vcpus = crate::qemu_plugin_num_vcpus().unwrap_or(0);
    for board in boards {
        for vcpu in 0..vcpus {
            board.u64().set(vcpu as VCPUIndex, 0);
        }
    }
}

/// The comparison of a conditional callback: run it when `counter <cond> immediate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[cfg(test)]
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
