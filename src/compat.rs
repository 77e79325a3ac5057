//! The free registration functions of the 10.1.0-v2 crate (`qemu_plugin_register_vcpu_*`
//! taking a block or instruction handle), as thin wrappers over the handle methods.

use crate::handles::mem::MemoryInfo;
#[cfg(since_api_2)]
use crate::scoreboard::PluginU64;
use crate::{CallbackFlags, Instruction, MemRW, PluginOp, TranslationBlock, VCPUIndex};

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
#[cfg(since_api_3)]
pub fn qemu_plugin_register_vcpu_tb_exec_cond_cb<F>(
    tb: TranslationBlock<'_>,
    cb: F,
    flags: CallbackFlags,
    cond: crate::PluginCondition,
    entry: PluginU64<'static>,
    immediate: u64,
) where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    tb.register_conditional_execute_callback_flags(cb, flags, cond, entry, immediate);
}

/// Inline `op` on `entry` each time `tb` executes. Needs: QEMU 9.0 (API v2).
#[cfg(since_api_2)]
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
#[cfg(since_api_3)]
pub fn qemu_plugin_register_vcpu_insn_exec_cond_cb<F>(
    insn: Instruction<'_>,
    cb: F,
    flags: CallbackFlags,
    cond: crate::PluginCondition,
    entry: PluginU64<'static>,
    immediate: u64,
) where
    F: FnMut(VCPUIndex) + Send + Sync + 'static,
{
    insn.register_conditional_execute_callback_flags(cb, flags, cond, entry, immediate);
}

/// Inline `op` on `entry` each time `insn` executes. Needs: QEMU 9.0 (API v2).
#[cfg(since_api_2)]
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
#[cfg(since_api_2)]
pub fn qemu_plugin_register_vcpu_mem_inline_per_vcpu(
    insn: Instruction<'_>,
    rw: MemRW,
    op: PluginOp,
    entry: PluginU64<'static>,
    imm: u64,
) {
    insn.register_memory_inline_per_vcpu(rw, op, entry, imm);
}

#[cfg(not(since_api_2))]
use crate::callbacks::exec::ExecSite;

/// The vCPU count (`qemu_plugin_n_vcpus`), `None` outside system mode. Plugin APIs 0
/// and 1 (QEMU 4.2 to 8.2) only; later APIs have [`qemu_plugin_num_vcpus`](crate::qemu_plugin_num_vcpus).
#[cfg(not(since_api_2))]
pub fn qemu_plugin_n_vcpus() -> Option<i32> {
    // SAFETY: a plain query with no arguments.
    let n = unsafe { crate::sys::qemu_plugin_n_vcpus() };
    (n >= 0).then_some(n)
}

/// The maximum vCPU count (`qemu_plugin_n_max_vcpus`), `None` outside system mode.
/// Plugin APIs 0 and 1 only.
#[cfg(not(since_api_2))]
pub fn qemu_plugin_n_max_vcpus() -> Option<i32> {
    // SAFETY: a plain query with no arguments.
    let n = unsafe { crate::sys::qemu_plugin_n_max_vcpus() };
    (n >= 0).then_some(n)
}

/// Applies `op` with `imm` to the `u64` at `ptr` each time `tb` executes, from generated
/// code on whichever vCPU runs it (`qemu_plugin_register_vcpu_tb_exec_inline`, plugin
/// APIs 0 and 1 only).
///
/// `unsafe` here, where 10.1.0-v2 declared it safe: QEMU writes through `ptr` for as
/// long as the block lives, with plain (non-atomic) stores from every vCPU thread.
///
/// # Safety
/// `ptr` points to a `u64` that stays valid for the rest of the run, that no Rust code
/// reads or writes except through raw-pointer (volatile or atomic-free) accesses it
/// accepts racing with QEMU's.
#[cfg(not(since_api_2))]
pub unsafe fn qemu_plugin_register_vcpu_tb_exec_inline(
    tb: TranslationBlock<'_>,
    op: PluginOp,
    ptr: *mut std::ffi::c_void,
    imm: u64,
) {
    // SAFETY: `tb` is being translated (its handle cannot outlive the callback); the
    // caller's contract covers `ptr`.
    unsafe { crate::sys::qemu_plugin_register_vcpu_tb_exec_inline(tb.raw(), op, ptr, imm) }
}

/// As [`qemu_plugin_register_vcpu_tb_exec_inline`], each time `insn` executes.
///
/// # Safety
/// As for [`qemu_plugin_register_vcpu_tb_exec_inline`].
#[cfg(not(since_api_2))]
pub unsafe fn qemu_plugin_register_vcpu_insn_exec_inline(
    insn: Instruction<'_>,
    op: PluginOp,
    ptr: *mut std::ffi::c_void,
    imm: u64,
) {
    // SAFETY: as for the block version.
    unsafe { crate::sys::qemu_plugin_register_vcpu_insn_exec_inline(insn.raw(), op, ptr, imm) }
}

/// As [`qemu_plugin_register_vcpu_tb_exec_inline`], on each of `insn`'s memory accesses
/// matching `rw`.
///
/// # Safety
/// As for [`qemu_plugin_register_vcpu_tb_exec_inline`].
#[cfg(not(since_api_2))]
pub unsafe fn qemu_plugin_register_vcpu_mem_inline(
    insn: Instruction<'_>,
    rw: MemRW,
    op: PluginOp,
    ptr: *mut std::ffi::c_void,
    imm: u64,
) {
    // SAFETY: as for the block version.
    unsafe { crate::sys::qemu_plugin_register_vcpu_mem_inline(insn.raw(), rw, op, ptr, imm) }
}
