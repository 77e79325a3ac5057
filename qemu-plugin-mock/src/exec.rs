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

/// A plain callback without register access (`QEMU_PLUGIN_CB_NO_REGS`): nearly every
/// exec item, so it gets its own flat array and a loop with nothing but the call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    f: UdataFn,
    udata: *mut c_void,
}

/// An inline add, resolved like QEMU's generated code: `base + vcpu * stride += imm`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Add {
    slot: Slot,
    imm: u64,
}

impl Add {
    #[inline(always)]
    fn apply(self, vcpu: u32) {
        let p = self.slot.at(vcpu);
        // SAFETY:
        // - `slot` is valid for every vCPU index below the scoreboard capacity while
        //   this TB exists (see `ExecTb`'s Send impl), and `vcpu` is initialised, so
        //   below capacity; only this vCPU's thread writes this entry. A plain
        //   (non-atomic) add, like QEMU's inline op.
        unsafe { p.write_unaligned(p.read_unaligned().wrapping_add(self.imm)) }
    }
}

/// One step of a block's program: a run of same-kind items, in registration order.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// `ExecTb::calls[start..end]`.
    Calls { start: u32, end: u32 },
    /// `ExecTb::adds[start..end]`.
    Adds { start: u32, end: u32 },
    /// `ExecTb::ops[i]`: a conditional callback, a store, or a callback with register
    /// access (which sets the thread's callback flags around the call).
    Op(u32),
    /// The memory items of `ExecTb::insns[i]`, for each of its accesses.
    Mem(u32),
}

/// A translated instruction's memory side (its exec items live in the block's program).
#[derive(Debug)]
pub(crate) struct ExecInsn {
    /// Exec items registered on the instruction (for [`super::TbSummary`]).
    pub(crate) n_ops: usize,
    pub(crate) mem: Box<[MemOp]>,
    pub(crate) accesses: Box<[Access]>,
}

/// A translated block, ready to execute. Immutable and shared by every vCPU.
///
/// Translation compiles the items of the block and of its instructions, in QEMU's order,
/// into a short program of [`Step`]s over flat arrays: a block whose instructions each
/// carry one plain callback is one step, a loop of `f(vcpu, udata)` calls with no
/// per-item branch on the item's kind, no thread-local access and no atomic.
#[derive(Debug)]
pub(crate) struct ExecTb {
    steps: Box<[Step]>,
    calls: Box<[Call]>,
    adds: Box<[Add]>,
    ops: Box<[Op]>,
    /// TB-level items registered (for [`super::TbSummary`]).
    pub(crate) n_tb_ops: usize,
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

/// Builds an [`ExecTb`]'s program, item by item in execution order.
#[derive(Default)]
pub(crate) struct ProgramBuilder {
    steps: Vec<Step>,
    calls: Vec<Call>,
    adds: Vec<Add>,
    ops: Vec<Op>,
}

/// Index into one of the program's arrays (blocks have far fewer than 2^32 items).
fn index(len: usize) -> u32 {
    u32::try_from(len).expect("a block has fewer than 2^32 items")
}

impl ProgramBuilder {
    /// Appends an exec item (TB-level or of the current instruction).
    pub(crate) fn push(&mut self, op: Op) {
        match op {
            Op::Cb {
                f,
                udata,
                flags: ctx::NO_REGS,
            } => {
                self.calls.push(Call { f, udata });
                let end = index(self.calls.len());
                match self.steps.last_mut() {
                    Some(Step::Calls { end: e, .. }) if *e + 1 == end => *e = end,
                    _ => self.steps.push(Step::Calls {
                        start: end - 1,
                        end,
                    }),
                }
            }
            Op::Add { slot, imm } => {
                self.adds.push(Add { slot, imm });
                let end = index(self.adds.len());
                match self.steps.last_mut() {
                    Some(Step::Adds { end: e, .. }) if *e + 1 == end => *e = end,
                    _ => self.steps.push(Step::Adds {
                        start: end - 1,
                        end,
                    }),
                }
            }
            other => {
                self.ops.push(other);
                self.steps.push(Step::Op(index(self.ops.len() - 1)));
            }
        }
    }

    /// Appends the memory items of instruction `insn` (run once per access it makes).
    pub(crate) fn push_mem(&mut self, insn: usize) {
        self.steps.push(Step::Mem(index(insn)));
    }

    /// The finished block.
    pub(crate) fn finish(
        self,
        n_tb_ops: usize,
        insns: Box<[ExecInsn]>,
        block: Arc<Block>,
    ) -> ExecTb {
        ExecTb {
            steps: self.steps.into_boxed_slice(),
            calls: self.calls.into_boxed_slice(),
            adds: self.adds.into_boxed_slice(),
            ops: self.ops.into_boxed_slice(),
            n_tb_ops,
            insns,
            _block: block,
        }
    }
}

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
        Op::Add { slot, imm } => Add { slot, imm }.apply(vcpu),
        Op::Store { slot, imm } => {
            // SAFETY: as for `Cond`: this vCPU's own, live entry.
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
    for step in tb.steps.iter() {
        match *step {
            Step::Calls { start, end } => {
                for c in &tb.calls[start as usize..end as usize] {
                    // SAFETY:
                    // - `f` is the plugin's callback with QEMU's signature, registered
                    //   without register access, called as QEMU calls it.
                    unsafe { (c.f)(vcpu, c.udata) }
                }
            }
            Step::Adds { start, end } => {
                for a in &tb.adds[start as usize..end as usize] {
                    a.apply(vcpu);
                }
            }
            Step::Op(i) => run_op(&tb.ops[i as usize], vcpu),
            Step::Mem(i) => {
                let insn = &tb.insns[i as usize];
                for a in insn.accesses.iter() {
                    run_mem(&insn.mem, a, vcpu);
                }
            }
        }
    }
}
