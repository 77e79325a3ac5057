//! Executing a translated block: the instrumentation QEMU would have generated,
//! run in QEMU's order with no locks and no allocation.

use std::ffi::{c_uint, c_void};
use std::sync::Arc;

use super::block::{Access, Block};
use super::ctx;
use crate::sys::qemu_plugin_cond;

/// `qemu_plugin_vcpu_udata_cb_t` without the `Option`.
pub(crate) type UdataFn = unsafe extern "C" fn(c_uint, *mut c_void);
/// `qemu_plugin_vcpu_mem_cb_t` without the `Option`.
pub(crate) type MemFn = unsafe extern "C" fn(c_uint, u32, u64, *mut c_void);

/// A `qemu_plugin_u64` resolved at translation time, as QEMU bakes
/// `score->data->data + offset` and the element size into generated code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) base: *mut u8,
    pub(crate) stride: usize,
}

impl Slot {
    /// Address of vCPU `vcpu`'s u64.
    #[inline(always)]
    fn at(self, vcpu: u32) -> *mut u64 {
        self.base.wrapping_add(vcpu as usize * self.stride).cast()
    }
}

/// One instrumentation item of a TB or an instruction, in registration order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Plain callback.
    Cb {
        f: UdataFn,
        udata: *mut c_void,
        flags: u32,
    },
    /// Conditional callback: called when `*slot cond imm` (unsigned compare).
    Cond {
        f: UdataFn,
        udata: *mut c_void,
        flags: u32,
        cond: qemu_plugin_cond,
        slot: Slot,
        imm: u64,
    },
    /// `QEMU_PLUGIN_INLINE_ADD_U64`.
    Add { slot: Slot, imm: u64 },
    /// `QEMU_PLUGIN_INLINE_STORE_U64`.
    Store { slot: Slot, imm: u64 },
}

/// One memory instrumentation item of an instruction, filtered by `rw`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemOp {
    /// `qemu_plugin_mem_rw` mask (R=1, W=2, RW=3).
    pub(crate) rw: u32,
    /// What to do.
    pub(crate) kind: MemKind,
}

/// The action of a [`MemOp`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum MemKind {
    /// Memory callback.
    Cb {
        f: MemFn,
        udata: *mut c_void,
        flags: u32,
    },
    /// Inline add on the executing vCPU's entry.
    Add { slot: Slot, imm: u64 },
    /// Inline store on the executing vCPU's entry.
    Store { slot: Slot, imm: u64 },
}

/// A translated instruction, ready to execute.
#[derive(Debug)]
pub(crate) struct ExecInsn {
    pub(crate) ops: Box<[Op]>,
    pub(crate) mem: Box<[MemOp]>,
    pub(crate) accesses: Box<[Access]>,
}

/// A translated block, ready to execute. Immutable and shared by every vCPU.
#[derive(Debug)]
pub(crate) struct ExecTb {
    pub(crate) ops: Box<[Op]>,
    pub(crate) insns: Box<[ExecInsn]>,
    /// Keeps the instruction data alive (symbols handed out during translation).
    pub(crate) _block: Arc<Block>,
}

// SAFETY:
// - an ExecTb is immutable; its raw pointers are (a) scoreboard slots, written only
//   through `Slot::at(vcpu)` by the thread of vCPU `vcpu`, and valid until the next
//   flush (growth frees old buffers only after flushing every TB, with all vCPUs
//   stopped), and (b) plugin userdata handed back verbatim to the plugin's callbacks,
//   which QEMU also calls from any vCPU thread.
unsafe impl Send for ExecTb {}
// SAFETY: as for `Send`: shared access never mutates the ExecTb itself.
unsafe impl Sync for ExecTb {}

/// Encodes a `qemu_plugin_meminfo_t`: bits 0-2 size shift, bit 3 sign-extended,
/// bit 4 big-endian, bits 5-6 `qemu_plugin_mem_rw` (like QEMU's `MemOpIdx` | rw << 16).
pub(crate) const fn encode_meminfo(
    size_shift: u8,
    sign: bool,
    big_endian: bool,
    store: bool,
) -> u32 {
    (size_shift as u32 & 7)
        | (sign as u32) << 3
        | (big_endian as u32) << 4
        | (if store { 2 } else { 1 }) << 5
}

/// Size shift of an encoded meminfo.
pub(crate) const fn meminfo_size_shift(info: u32) -> u32 {
    info & 7
}

/// Whether an encoded meminfo is sign-extended.
pub(crate) const fn meminfo_sign(info: u32) -> bool {
    info & 8 != 0
}

/// Whether an encoded meminfo is big-endian.
pub(crate) const fn meminfo_big_endian(info: u32) -> bool {
    info & 16 != 0
}

/// Whether an encoded meminfo is a store.
pub(crate) const fn meminfo_store(info: u32) -> bool {
    (info >> 5) & 2 != 0
}

/// `entry cond imm` as QEMU's generated code evaluates it (unsigned comparisons:
/// `plugin_cond_to_tcgcond` maps LT/LE/GT/GE to LTU/LEU/GTU/GEU).
#[inline(always)]
pub(crate) fn cond_holds(cond: qemu_plugin_cond, value: u64, imm: u64) -> bool {
    use qemu_plugin_cond::*;
    match cond {
        QEMU_PLUGIN_COND_NEVER => false,
        QEMU_PLUGIN_COND_ALWAYS => true,
        QEMU_PLUGIN_COND_EQ => value == imm,
        QEMU_PLUGIN_COND_NE => value != imm,
        QEMU_PLUGIN_COND_LT => value < imm,
        QEMU_PLUGIN_COND_LE => value <= imm,
        QEMU_PLUGIN_COND_GT => value > imm,
        QEMU_PLUGIN_COND_GE => value >= imm,
    }
}

#[inline(always)]
fn call_udata(f: UdataFn, vcpu: u32, udata: *mut c_void, flags: u32) {
    if flags == ctx::NO_REGS {
        // SAFETY:
        // - `f` is the plugin's callback with QEMU's signature, called as QEMU calls it.
        unsafe { f(vcpu, udata) }
    } else {
        // SAFETY: as above.
        ctx::with_flags(flags, || unsafe { f(vcpu, udata) })
    }
}

#[inline(always)]
fn run_op(op: &Op, vcpu: u32) {
    match *op {
        Op::Cb { f, udata, flags } => call_udata(f, vcpu, udata, flags),
        Op::Cond {
            f,
            udata,
            flags,
            cond,
            slot,
            imm,
        } => {
            // SAFETY:
            // - `slot` is valid for every vCPU index below the scoreboard capacity while
            //   this TB exists (see `ExecTb`'s Send impl), and `vcpu` is initialised, so
            //   below capacity; only this vCPU's thread writes this entry.
            let v = unsafe { slot.at(vcpu).read_unaligned() };
            if cond_holds(cond, v, imm) {
                call_udata(f, vcpu, udata, flags);
            }
        }
        Op::Add { slot, imm } => {
            let p = slot.at(vcpu);
            // SAFETY:
            // - as for `Cond`; a plain (non-atomic) add, like QEMU's inline op.
            unsafe { p.write_unaligned(p.read_unaligned().wrapping_add(imm)) }
        }
        Op::Store { slot, imm } => {
            // SAFETY: as for `Add`.
            unsafe { slot.at(vcpu).write_unaligned(imm) }
        }
    }
}

#[inline(always)]
fn run_mem(ops: &[MemOp], a: &Access, vcpu: u32) {
    let mut value_set = false;
    for m in ops {
        if m.rw & a.rw == 0 {
            continue;
        }
        match m.kind {
            MemKind::Cb { f, udata, flags } => {
                if !value_set {
                    ctx::set_mem_value(a.value, a.value_high);
                    value_set = true;
                }
                let call = || {
                    // SAFETY:
                    // - `f` is the plugin's memory callback, called as QEMU calls it.
                    unsafe { f(vcpu, a.meminfo, a.vaddr, udata) }
                };
                if flags == ctx::NO_REGS {
                    call()
                } else {
                    ctx::with_flags(flags, call)
                }
            }
            MemKind::Add { slot, imm } => run_op(&Op::Add { slot, imm }, vcpu),
            MemKind::Store { slot, imm } => run_op(&Op::Store { slot, imm }, vcpu),
        }
    }
}

/// Executes `tb` once on vCPU `vcpu` (the calling thread must be that vCPU, inside
/// its running section): TB items, then per instruction its items and then, for each
/// of its memory accesses, the matching memory items, all in registration order.
#[inline]
pub(crate) fn exec_tb(tb: &ExecTb, vcpu: u32) {
    for op in tb.ops.iter() {
        run_op(op, vcpu);
    }
    for insn in tb.insns.iter() {
        for op in insn.ops.iter() {
            run_op(op, vcpu);
        }
        if !insn.mem.is_empty() {
            for a in insn.accesses.iter() {
                run_mem(&insn.mem, a, vcpu);
            }
        }
    }
}
