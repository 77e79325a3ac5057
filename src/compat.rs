//! The free registration functions of the 10.1.0-v2 crate (`qemu_plugin_register_vcpu_*`
//! taking a block or instruction handle), as thin wrappers over the handle methods.

use crate::handles::mem::MemoryInfo;
use crate::scoreboard::PluginU64;
use crate::{
    CallbackFlags, Instruction, MemRW, PluginCondition, PluginOp, TranslationBlock, VCPUIndex,
};

/// Runs `cb` each time `tb` executes. Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_tb_exec_cb<F>(
    tb: TranslationBlock<'_>,
    cb: F,
    flags: CallbackFlags,
) where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    tb.register_execute_callback_flags(cb, flags);
}

/// Runs `cb` when `tb` executes and `entry cond immediate` holds. Needs: QEMU 9.1 (API v3).
pub fn qemu_plugin_register_vcpu_tb_exec_cond_cb<F>(
    tb: TranslationBlock<'_>,
    cb: F,
    flags: CallbackFlags,
    cond: PluginCondition,
    entry: PluginU64<'static>,
    immediate: u64,
) where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    tb.register_conditional_execute_callback_flags(cb, flags, cond, entry, immediate);
}

/// Inline `op` on `entry` each time `tb` executes. Needs: QEMU 9.0 (API v2).
pub fn qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
    tb: TranslationBlock<'_>,
    op: PluginOp,
    entry: PluginU64<'static>,
    imm: u64,
) {
    tb.register_inline_per_vcpu(op, entry, imm);
}

/// Runs `cb` each time `insn` executes. Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_insn_exec_cb<F>(insn: Instruction<'_>, cb: F, flags: CallbackFlags)
where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    insn.register_execute_callback_flags(cb, flags);
}

/// Runs `cb` when `insn` executes and `entry cond immediate` holds. Needs: QEMU 9.1 (API v3).
pub fn qemu_plugin_register_vcpu_insn_exec_cond_cb<F>(
    insn: Instruction<'_>,
    cb: F,
    flags: CallbackFlags,
    cond: PluginCondition,
    entry: PluginU64<'static>,
    immediate: u64,
) where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    insn.register_conditional_execute_callback_flags(cb, flags, cond, entry, immediate);
}

/// Inline `op` on `entry` each time `insn` executes. Needs: QEMU 9.0 (API v2).
pub fn qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
    insn: Instruction<'_>,
    op: PluginOp,
    entry: PluginU64<'static>,
    imm: u64,
) {
    insn.register_inline_per_vcpu(op, entry, imm);
}

/// Runs `cb` on each memory access of `insn` matching `rw`. Needs: any QEMU with plugins.
pub fn qemu_plugin_register_vcpu_mem_cb<F>(
    insn: Instruction<'_>,
    cb: F,
    flags: CallbackFlags,
    rw: MemRW,
) where
    F: for<'a> FnMut(VCPUIndex, MemoryInfo<'a>, u64) + Send + Sync + 'static,
{
    insn.register_memory_access_callback_flags(cb, rw, flags);
}

/// Inline `op` on `entry` on each memory access of `insn` matching `rw`.
/// Needs: QEMU 9.0 (API v2).
pub fn qemu_plugin_register_vcpu_mem_inline_per_vcpu(
    insn: Instruction<'_>,
    rw: MemRW,
    op: PluginOp,
    entry: PluginU64<'static>,
    imm: u64,
) {
    insn.register_memory_inline_per_vcpu(rw, op, entry, imm);
}
