//! Inline counters: per-vCPU `u64`s that QEMU updates with inline operations, with no
//! callback at all, in cache-line-padded scoreboard entries (QEMU's own entries are not
//! padded, and 8-byte entries of adjacent vCPUs false-share).

use crossbeam_utils::CachePadded;

use crate::scoreboard::{PluginU64, Scoreboard};
use crate::{PluginCondition, VCPUIndex};

/// A per-vCPU counter updated inline by QEMU. Create it in [`PerVcpu::new`](crate::PerVcpu::new)
/// (it lives for the rest of the process), add to it from
/// [`Translation`](crate::Translation), and take each vCPU's value in
/// [`PerVcpu::merge`](crate::PerVcpu::merge) with [`Vcpu::take_inline`](crate::Vcpu::take_inline),
/// which also resets it so a reused vCPU index starts from zero.
/// Needs: QEMU 9.0 (plugin API v2; STORE and conditions need 9.1).
#[derive(Debug, Clone, Copy)]
pub struct InlineCounter {
    board: &'static Scoreboard<CachePadded<u64>>,
}

impl InlineCounter {
    /// A new counter, zero for every vCPU.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            board: Scoreboard::new().leak(),
        }
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
