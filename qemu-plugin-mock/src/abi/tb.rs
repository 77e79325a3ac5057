//! C entry points used during translation: querying the mock TB and its
//! instructions, and recording callbacks and inline ops on them.

use std::ffi::{c_char, c_void};
use std::ptr;

use super::guard;
use crate::block::InsnData;
use crate::exec::{MemKind, MemOp, Op, Slot};
use crate::scoreboard::{self, Scoreboard};
#[cfg(since_api_3)]
use crate::sys::qemu_plugin_cond;
#[cfg(since_api_2)]
use crate::sys::qemu_plugin_u64;
use crate::sys::{
    qemu_plugin_cb_flags, qemu_plugin_insn, qemu_plugin_mem_rw, qemu_plugin_op, qemu_plugin_tb,
    qemu_plugin_vcpu_mem_cb_t, qemu_plugin_vcpu_udata_cb_t,
};
use crate::translate::{MockInsn, MockTb};
use crate::{glib, hostinfo};

/// Resolves `entry` like QEMU's `gen_plugin_u64_ptr` (base + offset, element stride).
#[cfg(since_api_2)]
fn slot(entry: qemu_plugin_u64) -> Option<Slot> {
    let sb = entry.score.cast::<Scoreboard>();
    if sb.is_null() || !scoreboard::is_live(sb) {
        hostinfo::violation(format!(
            "inline op or condition on unknown scoreboard {sb:p}"
        ));
        return None;
    }
    // SAFETY:
    // - `sb` is a live scoreboard (checked above); the plugin frees it only at exit.
    let b = unsafe { &*sb };
    if entry.offset.saturating_add(8) > b.elem_size {
        hostinfo::violation(format!(
            "qemu_plugin_u64 offset {} outside {}-byte entry",
            entry.offset, b.elem_size
        ));
        return None;
    }
    Some(Slot {
        base: b.base().wrapping_add(entry.offset),
        stride: b.elem_size,
    })
}

#[cfg(since_api_2)]
fn inline(op: qemu_plugin_op, entry: qemu_plugin_u64, imm: u64) -> Option<Op> {
    let slot = slot(entry)?;
    Some(match op {
        qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64 => Op::Add { slot, imm },
        #[cfg(since_api_3)]
        qemu_plugin_op::QEMU_PLUGIN_INLINE_STORE_U64 => Op::Store { slot, imm },
    })
}

#[cfg(since_api_3)]
fn cond_op(
    cb: qemu_plugin_vcpu_udata_cb_t,
    flags: qemu_plugin_cb_flags,
    cond: qemu_plugin_cond,
    entry: qemu_plugin_u64,
    imm: u64,
    udata: *mut c_void,
) -> Option<Op> {
    let f = cb?;
    // `qemu_plugin_register_vcpu_*_exec_cond_cb`: NEVER installs nothing, ALWAYS a plain callback.
    match cond {
        qemu_plugin_cond::QEMU_PLUGIN_COND_NEVER => None,
        qemu_plugin_cond::QEMU_PLUGIN_COND_ALWAYS => Some(Op::Cb {
            f,
            udata,
            flags: flags as u32,
        }),
        _ => Some(Op::Cond {
            f,
            udata,
            flags: flags as u32,
            cond,
            slot: slot(entry)?,
            imm,
        }),
    }
}

/// Pushes `op` onto the TB's list. `tb` must come from this mock's `tb_trans` call.
fn push_tb(name: &'static str, tb: *mut qemu_plugin_tb, op: impl FnOnce() -> Option<Op>) {
    guard(name, (), || {
        if tb.is_null() {
            return;
        }
        if let Some(op) = op() {
            // SAFETY:
            // - `tb` is the MockTb handed to the plugin's tb_trans callback, alive for the
            //   translation, used only by this thread; we borrow just its `ops` field.
            unsafe { (*tb.cast::<MockTb>()).ops.push(op) };
        }
    })
}

/// Pushes `op` onto the instruction's list. `insn` must come from `qemu_plugin_tb_get_insn`.
fn push_insn(name: &'static str, insn: *mut qemu_plugin_insn, op: impl FnOnce() -> Option<Op>) {
    guard(name, (), || {
        if insn.is_null() {
            return;
        }
        if let Some(op) = op() {
            // SAFETY:
            // - `insn` points into the MockTb being translated on this thread; we borrow
            //   just its `ops` field.
            unsafe { (*insn.cast::<MockInsn>()).ops.push(op) };
        }
    })
}

/// `qemu_plugin_register_vcpu_tb_exec_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_tb_exec_cb(
    tb: *mut qemu_plugin_tb,
    cb: qemu_plugin_vcpu_udata_cb_t,
    flags: qemu_plugin_cb_flags,
    userdata: *mut c_void,
) {
    push_tb("qemu_plugin_register_vcpu_tb_exec_cb", tb, || {
        cb.map(|f| Op::Cb {
            f,
            udata: userdata,
            flags: flags as u32,
        })
    })
}

/// `qemu_plugin_register_vcpu_tb_exec_cond_cb`.
#[unsafe(no_mangle)]
#[cfg(since_api_3)]
pub extern "C" fn qemu_plugin_register_vcpu_tb_exec_cond_cb(
    tb: *mut qemu_plugin_tb,
    cb: qemu_plugin_vcpu_udata_cb_t,
    flags: qemu_plugin_cb_flags,
    cond: qemu_plugin_cond,
    entry: qemu_plugin_u64,
    imm: u64,
    userdata: *mut c_void,
) {
    push_tb("qemu_plugin_register_vcpu_tb_exec_cond_cb", tb, || {
        cond_op(cb, flags, cond, entry, imm, userdata)
    })
}

/// `qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
    tb: *mut qemu_plugin_tb,
    op: qemu_plugin_op,
    entry: qemu_plugin_u64,
    imm: u64,
) {
    push_tb(
        "qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu",
        tb,
        || inline(op, entry, imm),
    )
}

/// `qemu_plugin_register_vcpu_insn_exec_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_insn_exec_cb(
    insn: *mut qemu_plugin_insn,
    cb: qemu_plugin_vcpu_udata_cb_t,
    flags: qemu_plugin_cb_flags,
    userdata: *mut c_void,
) {
    push_insn("qemu_plugin_register_vcpu_insn_exec_cb", insn, || {
        cb.map(|f| Op::Cb {
            f,
            udata: userdata,
            flags: flags as u32,
        })
    })
}

/// `qemu_plugin_register_vcpu_insn_exec_cond_cb`.
#[unsafe(no_mangle)]
#[cfg(since_api_3)]
pub extern "C" fn qemu_plugin_register_vcpu_insn_exec_cond_cb(
    insn: *mut qemu_plugin_insn,
    cb: qemu_plugin_vcpu_udata_cb_t,
    flags: qemu_plugin_cb_flags,
    cond: qemu_plugin_cond,
    entry: qemu_plugin_u64,
    imm: u64,
    userdata: *mut c_void,
) {
    push_insn("qemu_plugin_register_vcpu_insn_exec_cond_cb", insn, || {
        cond_op(cb, flags, cond, entry, imm, userdata)
    })
}

/// `qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
    insn: *mut qemu_plugin_insn,
    op: qemu_plugin_op,
    entry: qemu_plugin_u64,
    imm: u64,
) {
    push_insn(
        "qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu",
        insn,
        || inline(op, entry, imm),
    )
}

fn push_mem(name: &'static str, insn: *mut qemu_plugin_insn, op: impl FnOnce() -> Option<MemOp>) {
    guard(name, (), || {
        if insn.is_null() {
            return;
        }
        if let Some(op) = op() {
            // SAFETY:
            // - `insn` points into the MockTb being translated on this thread; we borrow
            //   just its `mem` field.
            unsafe { (*insn.cast::<MockInsn>()).mem.push(op) };
        }
    })
}

/// `qemu_plugin_register_vcpu_mem_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_mem_cb(
    insn: *mut qemu_plugin_insn,
    cb: qemu_plugin_vcpu_mem_cb_t,
    flags: qemu_plugin_cb_flags,
    rw: qemu_plugin_mem_rw,
    userdata: *mut c_void,
) {
    push_mem("qemu_plugin_register_vcpu_mem_cb", insn, || {
        cb.map(|f| MemOp {
            rw: rw as u32,
            kind: MemKind::Cb {
                f,
                udata: userdata,
                flags: flags as u32,
            },
        })
    })
}

/// `qemu_plugin_register_vcpu_mem_inline_per_vcpu`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_register_vcpu_mem_inline_per_vcpu(
    insn: *mut qemu_plugin_insn,
    rw: qemu_plugin_mem_rw,
    op: qemu_plugin_op,
    entry: qemu_plugin_u64,
    imm: u64,
) {
    push_mem(
        "qemu_plugin_register_vcpu_mem_inline_per_vcpu",
        insn,
        || {
            let kind = match inline(op, entry, imm)? {
                Op::Add { slot, imm } => MemKind::Add { slot, imm },
                Op::Store { slot, imm } => MemKind::Store { slot, imm },
                _ => return None,
            };
            Some(MemOp {
                rw: rw as u32,
                kind,
            })
        },
    )
}

/// Runs `f` on the MockTb behind `tb`, or returns `fallback` for null.
fn with_tb<R>(
    name: &'static str,
    tb: *const qemu_plugin_tb,
    fallback: R,
    f: impl FnOnce(&MockTb) -> R,
) -> R {
    if tb.is_null() {
        return fallback;
    }
    // SAFETY:
    // - non-null `tb` is the MockTb handed to tb_trans, alive during translation; only
    //   shared access, and no `&mut` to it exists while the plugin runs.
    guard(name, fallback, || f(unsafe { &*tb.cast::<MockTb>() }))
}

/// Runs `f` on the instruction data behind `insn`, or returns `fallback` for null.
fn with_insn<R>(
    name: &'static str,
    insn: *const qemu_plugin_insn,
    fallback: R,
    f: impl FnOnce(&InsnData) -> R,
) -> R {
    if insn.is_null() {
        return fallback;
    }
    // SAFETY:
    // - non-null `insn` came from `qemu_plugin_tb_get_insn` during this translation; its
    //   `data` points into the Arc<Block> the MockTb holds. We only read `data`.
    let data = unsafe { (*insn.cast::<MockInsn>()).data };
    // SAFETY: as above: the InsnData outlives the translation and is immutable.
    guard(name, fallback, || f(unsafe { data.as_ref() }))
}

/// `qemu_plugin_tb_n_insns`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_tb_n_insns(tb: *const qemu_plugin_tb) -> usize {
    with_tb("qemu_plugin_tb_n_insns", tb, 0, |t| t.insns.len())
}

/// `qemu_plugin_tb_vaddr`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_tb_vaddr(tb: *const qemu_plugin_tb) -> u64 {
    with_tb("qemu_plugin_tb_vaddr", tb, 0, |t| t.block.vaddr)
}

/// `qemu_plugin_tb_get_insn`: null when `idx` is out of range, like QEMU.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_tb_get_insn(
    tb: *const qemu_plugin_tb,
    idx: usize,
) -> *mut qemu_plugin_insn {
    with_tb("qemu_plugin_tb_get_insn", tb, ptr::null_mut(), |t| {
        if idx >= t.insns.len() {
            return ptr::null_mut();
        }
        // In bounds (checked above); stays inside the allocation that `insns` owns.
        t.insns.as_ptr().cast::<MockInsn>().wrapping_add(idx).cast()
    })
}

/// `qemu_plugin_insn_data`: copies up to `len` bytes of the instruction into `dest`
/// and returns how many were copied.
#[unsafe(no_mangle)]
#[cfg(since_api_3)]
pub extern "C" fn qemu_plugin_insn_data(
    insn: *const qemu_plugin_insn,
    dest: *mut c_void,
    len: usize,
) -> usize {
    with_insn("qemu_plugin_insn_data", insn, 0, |d| {
        let n = len.min(d.bytes.len());
        if dest.is_null() {
            return 0;
        }
        // SAFETY:
        // - the caller provides `len >= n` writable bytes at `dest`, disjoint from ours.
        unsafe { ptr::copy_nonoverlapping(d.bytes.as_ptr(), dest.cast::<u8>(), n) };
        n
    })
}

/// `qemu_plugin_insn_size`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_insn_size(insn: *const qemu_plugin_insn) -> usize {
    with_insn("qemu_plugin_insn_size", insn, 0, |d| d.bytes.len())
}

/// `qemu_plugin_insn_vaddr`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_insn_vaddr(insn: *const qemu_plugin_insn) -> u64 {
    with_insn("qemu_plugin_insn_vaddr", insn, 0, |d| d.vaddr)
}

/// `qemu_plugin_insn_haddr`: a host address standing for the instruction (its bytes
/// in the mock). Like QEMU's, it is an identity, not memory to write.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_insn_haddr(insn: *const qemu_plugin_insn) -> *mut c_void {
    with_insn("qemu_plugin_insn_haddr", insn, ptr::null_mut(), |d| {
        d.bytes.as_ptr().cast_mut().cast()
    })
}

/// `qemu_plugin_insn_disas`: a `g_malloc`'d string the caller frees with `g_free`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_insn_disas(insn: *const qemu_plugin_insn) -> *mut c_char {
    with_insn("qemu_plugin_insn_disas", insn, ptr::null_mut(), |d| {
        glib::strdup(&d.disas)
    })
}

/// `qemu_plugin_insn_symbol`: borrowed string valid while the block exists, or null.
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_insn_symbol(insn: *const qemu_plugin_insn) -> *const c_char {
    with_insn("qemu_plugin_insn_symbol", insn, ptr::null(), |d| {
        d.symbol.as_ref().map_or(ptr::null(), |s| s.as_ptr())
    })
}

/// `qemu_plugin_insn_data` of APIs 0 to 2: a pointer to the instruction's bytes (valid
/// while the block is being translated; its length is `qemu_plugin_insn_size`).
#[cfg(not(since_api_3))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_insn_data(insn: *const qemu_plugin_insn) -> *const c_void {
    with_insn("qemu_plugin_insn_data", insn, ptr::null(), |d| {
        d.bytes.as_ptr().cast()
    })
}

/// The inline operations of APIs 0 and 1 (`qemu_plugin_register_vcpu_{tb,insn}_exec_inline`,
/// `..._mem_inline`), on a plain pointer rather than a scoreboard entry: registered as a
/// violation, since the mock does not emulate them (nothing in the crate uses them; its
/// `unsafe` wrappers pass them through).
#[cfg(not(since_api_2))]
fn pointer_inline_unsupported(api: &str) {
    hostinfo::violation(format!("{api}: not emulated by the mock host"));
}

/// `qemu_plugin_register_vcpu_tb_exec_inline` (APIs 0 and 1).
#[cfg(not(since_api_2))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_tb_exec_inline(
    _tb: *mut qemu_plugin_tb,
    _op: qemu_plugin_op,
    _ptr: *mut c_void,
    _imm: u64,
) {
    pointer_inline_unsupported("qemu_plugin_register_vcpu_tb_exec_inline")
}

/// `qemu_plugin_register_vcpu_insn_exec_inline` (APIs 0 and 1).
#[cfg(not(since_api_2))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_insn_exec_inline(
    _insn: *mut qemu_plugin_insn,
    _op: qemu_plugin_op,
    _ptr: *mut c_void,
    _imm: u64,
) {
    pointer_inline_unsupported("qemu_plugin_register_vcpu_insn_exec_inline")
}

/// `qemu_plugin_register_vcpu_mem_inline` (APIs 0 and 1).
#[cfg(not(since_api_2))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_mem_inline(
    _insn: *mut qemu_plugin_insn,
    _rw: qemu_plugin_mem_rw,
    _op: qemu_plugin_op,
    _ptr: *mut c_void,
    _imm: u64,
) {
    pointer_inline_unsupported("qemu_plugin_register_vcpu_mem_inline")
}
