//! `Instruction`: one instruction of the block being translated, valid only inside the
//! translation callback.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::mem::MemoryInfo;
use crate::callbacks::exec::{self, ExecSite, MemUdata, mem_udata_mut};
use crate::error::{Error, Result};
#[cfg(since_api_2)]
use crate::scoreboard::PluginU64;
use crate::{CallbackFlags, MemRW, VCPUIndex, sys};

/// An instruction (`struct qemu_plugin_insn *`) of the block being translated.
///
/// Not constructible from a raw pointer in safe code, and bound to the translation
/// callback's lifetime `'a`. Needs: any QEMU with plugins.
#[derive(Debug, Clone)]
pub struct Instruction<'a> {
    ptr: NonNull<sys::qemu_plugin_insn>,
    marker: PhantomData<&'a sys::qemu_plugin_insn>,
}

impl<'a> Instruction<'a> {
    /// # Safety
    /// `ptr` is an instruction of the block being translated, and the result must not
    /// outlive the translation callback.
    pub(crate) unsafe fn from_raw(ptr: *mut sys::qemu_plugin_insn) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self {
            ptr,
            marker: PhantomData,
        })
    }

    /// Copies up to `data.len()` bytes of the instruction's encoding into `data`; returns
    /// how many were copied. Needs: any QEMU with plugins.
    pub fn read_data(&self, data: &mut [u8]) -> usize {
        // SAFETY: the instruction is valid during translation; QEMU writes at most
        // `data.len()` bytes into `data`.
        unsafe { sys::insn_data_into(self.raw(), data.as_mut_ptr().cast(), data.len()) }
    }

    /// The instruction's encoding.
    pub fn data(&self) -> Vec<u8> {
        let mut data = vec![0; self.size()];
        let n = self.read_data(&mut data);
        data.truncate(n);
        data
    }

    /// The encoding's length in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: the instruction is valid during translation.
        unsafe { sys::qemu_plugin_insn_size(self.raw()) }
    }

    /// The guest virtual address.
    pub fn vaddr(&self) -> u64 {
        // SAFETY: as in `size`.
        unsafe { sys::qemu_plugin_insn_vaddr(self.raw()) }
    }

    /// The host address of the instruction's guest page (system mode: the physical
    /// address of the RAM backing it), as a number.
    pub fn haddr(&self) -> u64 {
        // SAFETY: as in `size`; the pointer is only converted to a number.
        (unsafe { sys::qemu_plugin_insn_haddr(self.raw()) }) as usize as u64
    }

    /// The disassembly text, or [`Error::NoDisassemblyString`].
    pub fn disas(&self) -> Result<String> {
        // SAFETY: as in `size`; QEMU returns a g_malloc'd string or NULL.
        let p = unsafe { sys::qemu_plugin_insn_disas(self.raw()) };
        if p.is_null() {
            return Err(Error::NoDisassemblyString);
        }
        // SAFETY: `p` is a NUL-terminated string we own until we free it below.
        let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        // SAFETY: `p` was allocated by QEMU with g_malloc and is freed exactly once.
        unsafe { sys::g_free(p.cast()) };
        Ok(text)
    }

    /// The symbol this instruction belongs to, if the binary has a symbol table.
    #[cfg(since_api_1)]
    pub fn symbol(&self) -> Result<Option<String>> {
        // SAFETY: as in `size`; the string (if any) is owned by QEMU and static.
        let p = unsafe { sys::qemu_plugin_insn_symbol(self.raw()) };
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: non-null, NUL-terminated, owned by QEMU for the process's life.
        Ok(Some(unsafe { CStr::from_ptr(p) }.to_str()?.to_string()))
    }

    /// Runs `cb` each time the instruction executes. It may run on several vCPU threads
    /// at once: `cb` may mutate what it captures (`FnMut`), so each call holds `cb`'s own
    /// lock (an uncontended lock costs two atomic operations per event; vCPUs executing
    /// the same instruction wait for each other). The per-vCPU runtime
    /// ([`PerVcpu`](crate::PerVcpu)) is the lock-free path.
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

    /// Runs `cb` when the instruction executes and `entry cond immediate` holds for the
    /// executing vCPU. Needs: QEMU 9.1 (plugin API v3).
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

    /// Applies `op` with `imm` to the executing vCPU's `entry` each time the instruction
    /// executes. Needs: QEMU 9.0 (API v2; STORE needs 9.1).
    #[cfg(since_api_2)]
    pub fn register_inline_per_vcpu(
        &self,
        op: crate::PluginOp,
        entry: PluginU64<'static>,
        imm: u64,
    ) {
        exec::inline(self, op, entry, imm)
    }

    /// Runs `cb` for each memory access of this instruction matching `rw`, with the
    /// vCPU index, the access's [`MemoryInfo`] and its virtual address.
    pub fn register_memory_access_callback<F>(&self, cb: F, rw: MemRW)
    where
        F: for<'b> FnMut(VCPUIndex, MemoryInfo<'b>, u64) + Send + Sync + 'static,
    {
        self.register_memory_access_callback_flags(cb, rw, CallbackFlags::QEMU_PLUGIN_CB_NO_REGS)
    }

    /// As [`Self::register_memory_access_callback`], with register-access `flags`.
    pub fn register_memory_access_callback_flags<F>(&self, cb: F, rw: MemRW, flags: CallbackFlags)
    where
        F: for<'b> FnMut(VCPUIndex, MemoryInfo<'b>, u64) + Send + Sync + 'static,
    {
        self.register_memory(mem_udata_mut(cb), rw, flags)
    }

    /// Registers a stashed memory closure (the per-vCPU runtime's are `Fn` and take no
    /// lock).
    pub(crate) fn register_memory(&self, u: MemUdata, rw: MemRW, flags: CallbackFlags) {
        // SAFETY: the instruction is being translated; `u` pairs the memory trampoline
        // with its stashed closure.
        unsafe { sys::qemu_plugin_register_vcpu_mem_cb(self.raw(), u.cb, flags, rw, u.userdata) };
    }

    /// Applies `op` with `imm` to the executing vCPU's `entry` on each memory access
    /// matching `rw`. Needs: QEMU 9.0 (API v2; STORE needs 9.1).
    #[cfg(since_api_2)]
    pub fn register_memory_inline_per_vcpu(
        &self,
        rw: MemRW,
        op: crate::PluginOp,
        entry: PluginU64<'static>,
        imm: u64,
    ) {
        // SAFETY: the instruction is being translated; `entry` is in a never-freed
        // scoreboard.
        unsafe {
            sys::qemu_plugin_register_vcpu_mem_inline_per_vcpu(self.raw(), rw, op, entry.raw(), imm)
        };
    }
}

impl ExecSite for Instruction<'_> {
    type Raw = sys::qemu_plugin_insn;
    const REGISTER: exec::RegisterFn<Self::Raw> = sys::qemu_plugin_register_vcpu_insn_exec_cb;
    #[cfg(since_api_3)]
    const REGISTER_COND: exec::RegisterCondFn<Self::Raw> =
        sys::qemu_plugin_register_vcpu_insn_exec_cond_cb;
    #[cfg(since_api_2)]
    const REGISTER_INLINE: exec::RegisterInlineFn<Self::Raw> =
        sys::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu;

    fn raw(&self) -> *mut sys::qemu_plugin_insn {
        self.ptr.as_ptr()
    }
}
