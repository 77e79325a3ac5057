//! `TranslationBlock`: the block being translated, valid only inside the translation
//! callback that receives it.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::insn::Instruction;
use crate::callbacks::exec::{self, ExecSite};
use crate::error::{Error, Result};
#[cfg(since_api_2)]
use crate::scoreboard::PluginU64;
use crate::{CallbackFlags, VCPUIndex, sys};

/// A translation block (`struct qemu_plugin_tb *`), borrowed for the translation callback.
///
/// It cannot be built from a raw pointer in safe code, nor kept past the callback: the
/// lifetime `'a` is the callback's; a copy is the same handle, with the same lifetime.
/// Needs: any QEMU with plugins.
#[derive(Debug, Clone, Copy)]
pub struct TranslationBlock<'a> {
    ptr: NonNull<sys::qemu_plugin_tb>,
    marker: PhantomData<&'a sys::qemu_plugin_tb>,
}

impl<'a> TranslationBlock<'a> {
    /// # Safety
    /// `ptr` is the block QEMU passed to the translation callback now running, and the
    /// result must not outlive that callback.
    pub(crate) unsafe fn from_raw(ptr: *mut sys::qemu_plugin_tb) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self {
            ptr,
            marker: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::qemu_plugin_tb {
        self.ptr.as_ptr()
    }

    /// The number of instructions in the block.
    pub fn size(&self) -> usize {
        // SAFETY: the block is valid for the duration of the translation callback ('a).
        unsafe { sys::qemu_plugin_tb_n_insns(self.as_ptr()) }
    }

    /// The guest virtual address of the block's first instruction.
    pub fn vaddr(&self) -> u64 {
        // SAFETY: as in `size`.
        unsafe { sys::qemu_plugin_tb_vaddr(self.as_ptr()) }
    }

    /// The instruction at `index`, or [`Error::InvalidInstructionIndex`].
    pub fn instruction(&self, index: usize) -> Result<Instruction<'a>> {
        let size = self.size();
        if index >= size {
            return Err(Error::InvalidInstructionIndex { index, size });
        }
        // SAFETY: `index < size`; QEMU returns the instruction handle, valid as long as
        // the block is ('a).
        let raw = unsafe { sys::qemu_plugin_tb_get_insn(self.as_ptr(), index) };
        // SAFETY: `raw` belongs to this block and lives for the callback.
        unsafe { Instruction::from_raw(raw) }.ok_or(Error::InvalidInstructionIndex { index, size })
    }

    /// The block's instructions, in order.
    pub fn instructions(&self) -> TranslationBlockIterator<'a> {
        TranslationBlockIterator {
            tb: *self,
            index: 0,
            size: self.size(),
        }
    }

    /// Runs `cb` each time the block executes, with the executing vCPU's index.
    /// `cb` may run on several vCPU threads at once: it may mutate what it captures
    /// (`FnMut`), so each call holds `cb`'s own lock (see
    /// [`Instruction::register_execute_callback`](crate::Instruction::register_execute_callback)
    /// for the cost; [`PerVcpu`](crate::PerVcpu) is the lock-free path).
    pub fn register_execute_callback<F>(&self, cb: F)
    where
        F: FnMut(VCPUIndex) + Send + Sync + 'static,
    {
        self.register_execute_callback_flags(cb, CallbackFlags::QEMU_PLUGIN_CB_NO_REGS)
    }

    /// As [`Self::register_execute_callback`], with register-access `flags`.
    pub fn register_execute_callback_flags<F>(&self, cb: F, flags: CallbackFlags)
    where
        F: FnMut(VCPUIndex) + Send + Sync + 'static,
    {
        exec::register(self, flags, exec::udata_mut(cb))
    }

    /// Runs `cb` when the block executes and `entry cond immediate` holds for the
    /// executing vCPU's entry. Needs: QEMU 9.1 (plugin API v3).
    #[cfg(since_api_3)]
    pub fn register_conditional_execute_callback<F>(
        &self,
        cb: F,
        cond: crate::PluginCondition,
        entry: PluginU64<'static>,
        immediate: u64,
    ) where
        F: FnMut(VCPUIndex) + Send + Sync + 'static,
    {
        self.register_conditional_execute_callback_flags(
            cb,
            CallbackFlags::QEMU_PLUGIN_CB_NO_REGS,
            cond,
            entry,
            immediate,
        )
    }

    /// As [`Self::register_conditional_execute_callback`], with register-access `flags`.
    #[cfg(since_api_3)]
    pub fn register_conditional_execute_callback_flags<F>(
        &self,
        cb: F,
        flags: CallbackFlags,
        cond: crate::PluginCondition,
        entry: PluginU64<'static>,
        immediate: u64,
    ) where
        F: FnMut(VCPUIndex) + Send + Sync + 'static,
    {
        exec::register_if(self, flags, cond, entry, immediate, exec::udata_mut(cb))
    }

    /// Applies `op` with `imm` to the executing vCPU's `entry` each time the block
    /// executes, without a callback. Needs: QEMU 9.0 (API v2; STORE needs 9.1).
    #[cfg(since_api_2)]
    pub fn register_inline_per_vcpu(
        &self,
        op: crate::PluginOp,
        entry: PluginU64<'static>,
        imm: u64,
    ) {
        exec::inline(self, op, entry, imm)
    }
}

impl ExecSite for TranslationBlock<'_> {
    type Raw = sys::qemu_plugin_tb;
    const REGISTER: exec::RegisterFn<Self::Raw> = sys::qemu_plugin_register_vcpu_tb_exec_cb;
    #[cfg(since_api_3)]
    const REGISTER_COND: exec::RegisterCondFn<Self::Raw> =
        sys::qemu_plugin_register_vcpu_tb_exec_cond_cb;
    #[cfg(since_api_2)]
    const REGISTER_INLINE: exec::RegisterInlineFn<Self::Raw> =
        sys::qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu;

    fn raw(&self) -> *mut sys::qemu_plugin_tb {
        self.as_ptr()
    }
}

/// Iterator over a block's instructions, valid for the translation callback (`'a`).
pub struct TranslationBlockIterator<'a> {
    tb: TranslationBlock<'a>,
    index: usize,
    size: usize,
}

impl<'a> Iterator for TranslationBlockIterator<'a> {
    type Item = Instruction<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.size {
            return None;
        }
        let insn = self.tb.instruction(self.index).ok();
        self.index += 1;
        insn
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.size - self.index;
        (n, Some(n))
    }
}
