//! What a [`PerVcpu`] plugin sees at translation time: the block and its instructions,
//! the shared configuration, a per-host-thread scratch area, and registration of closures
//! that run on the executing vCPU's shard.
//!
//! A registered closure captures its per-block or per-instruction data by value (it is
//! immutable from then on) and receives `&mut Vcpu<P>` of whichever vCPU executes it.
//! Its memory is freed at the next translation-cache flush; a closure that captures
//! nothing is never allocated.

use std::any::Any;
use std::ops::Deref;
use std::sync::Arc;

use super::exec::shard_udata;
use super::handle::Handle;
#[cfg(since_api_3)]
use super::inline::Condition;
use super::inline::InlineCounter;
use super::installed::Runtime;
use super::mem::{self, MemAccess};
use super::per_vcpu::PerVcpu;
use super::vcpu::Vcpu;
use crate::callbacks::exec;
use crate::handles::insn::Instruction;
use crate::handles::tb::TranslationBlock;
use crate::{CallbackFlags, MemRW, PluginOp};

const NO_REGS: CallbackFlags = CallbackFlags::QEMU_PLUGIN_CB_NO_REGS;

/// Reusable per-host-thread space for translation callbacks (which run on several threads
/// at once in system mode): cleared by nobody, reused by the next translation on the same
/// thread.
#[derive(Default)]
pub struct Scratch {
    /// A byte buffer.
    pub bytes: Vec<u8>,
    /// A text buffer.
    pub text: String,
    any: Option<Box<dyn Any + Send>>,
}

impl Scratch {
    /// A value of type `T` kept for this thread, created with `T::default()` on first use
    /// (or when a different type was kept before).
    pub fn get<T: Default + Send + 'static>(&mut self) -> &mut T {
        if !self.any.as_ref().is_some_and(|a| a.is::<T>()) {
            self.any = Some(Box::new(T::default()));
        }
        self.any
            .as_mut()
            .and_then(|a| a.downcast_mut::<T>())
            .expect("just set")
    }
}

/// The block being translated, for a [`PerVcpu`] plugin.
pub struct Translation<'a, P: PerVcpu> {
    tb: TranslationBlock<'a>,
    rt: &'static Runtime<P>,
    config: arc_swap::Guard<Arc<P::Config>>,
    scratch: &'a mut Scratch,
}

impl<'a, P: PerVcpu> Translation<'a, P> {
    pub(crate) fn new(
        tb: TranslationBlock<'a>,
        rt: &'static Runtime<P>,
        scratch: &'a mut Scratch,
    ) -> Self {
        Self {
            tb,
            rt,
            config: rt.config.load(),
            scratch,
        }
    }

    /// The configuration current at this translation.
    pub fn config(&self) -> &P::Config {
        &self.config
    }

    /// The plugin's [`Handle`].
    pub fn handle(&self) -> Handle<P> {
        Handle::new(self.rt)
    }

    /// Per-thread scratch storage for translation-time work (see [`Scratch`]).
    pub fn scratch(&mut self) -> &mut Scratch {
        self.scratch
    }

    /// The raw block handle (all of [`TranslationBlock`]'s methods).
    pub fn tb(&self) -> &TranslationBlock<'a> {
        &self.tb
    }

    /// The number of instructions.
    pub fn size(&self) -> usize {
        self.tb.size()
    }

    /// The block's guest virtual address.
    pub fn vaddr(&self) -> u64 {
        self.tb.vaddr()
    }

    /// The block's instructions, in order.
    pub fn instructions(&self) -> impl Iterator<Item = InsnTranslation<'a, P>> + use<'a, '_, P> {
        let rt = self.rt;
        self.tb
            .instructions()
            .map(move |insn| InsnTranslation { insn, rt })
    }

    /// Runs `f` on the executing vCPU's shard each time the block executes.
    pub fn on_exec<F>(&self, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        exec::register(&self.tb, NO_REGS, shard_udata(self.rt, f));
    }

    /// As [`Self::on_exec`], with register access `flags` (to read or write registers).
    pub fn on_exec_flags<F>(&self, flags: CallbackFlags, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        exec::register(&self.tb, flags, shard_udata(self.rt, f));
    }

    /// Runs `f` when the block executes and the executing vCPU's `counter <cond> imm`.
    #[cfg(since_api_3)]
    pub fn on_exec_if<F>(&self, counter: &InlineCounter, cond: Condition, imm: u64, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        let u = shard_udata(self.rt, f);
        exec::register_if(&self.tb, NO_REGS, cond.into(), counter.entry(), imm, u);
    }

    /// Adds `imm` to the executing vCPU's `counter` each time the block executes (inline).
    pub fn inline_add(&self, counter: &InlineCounter, imm: u64) {
        counter.apply(&self.tb, PluginOp::QEMU_PLUGIN_INLINE_ADD_U64, imm);
    }

    /// Stores `imm` into the executing vCPU's `counter` each time the block executes.
    #[cfg(since_api_3)]
    pub fn inline_store(&self, counter: &InlineCounter, imm: u64) {
        counter.apply(&self.tb, PluginOp::QEMU_PLUGIN_INLINE_STORE_U64, imm);
    }
}

/// One instruction of the block being translated, for a [`PerVcpu`] plugin. Dereferences
/// to [`Instruction`] (vaddr, size, data, disassembly, symbol, haddr).
pub struct InsnTranslation<'a, P: PerVcpu> {
    insn: Instruction<'a>,
    rt: &'static Runtime<P>,
}

impl<'a, P: PerVcpu> Deref for InsnTranslation<'a, P> {
    type Target = Instruction<'a>;

    fn deref(&self) -> &Instruction<'a> {
        &self.insn
    }
}

impl<P: PerVcpu> InsnTranslation<'_, P> {
    /// Runs `f` on the executing vCPU's shard each time the instruction executes.
    pub fn on_exec<F>(&self, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        exec::register(&self.insn, NO_REGS, shard_udata(self.rt, f));
    }

    /// As [`Self::on_exec`], with register access `flags` (to read or write registers).
    pub fn on_exec_flags<F>(&self, flags: CallbackFlags, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        exec::register(&self.insn, flags, shard_udata(self.rt, f));
    }

    /// Runs `f` when the instruction executes and the executing vCPU's `counter <cond> imm`.
    #[cfg(since_api_3)]
    pub fn on_exec_if<F>(&self, counter: &InlineCounter, cond: Condition, imm: u64, f: F)
    where
        F: Fn(&mut Vcpu<P>) + Send + Sync + 'static,
    {
        let u = shard_udata(self.rt, f);
        exec::register_if(&self.insn, NO_REGS, cond.into(), counter.entry(), imm, u);
    }

    /// Runs `f` on the executing vCPU's shard each time the instruction executes, before
    /// it; when `f` returns `Some(pc)`, the vCPU continues at `pc` instead (the
    /// instruction does not execute; `pc` may be its own address, to run it again).
    ///
    /// The new PC is set with `qemu_plugin_set_pc` after `f` has returned and everything
    /// of the callback has been dropped (that call leaves the callback by a longjmp), and
    /// the callback is registered with `QEMU_PLUGIN_CB_RW_REGS_PC`, which QEMU requires.
    /// `f` may read and write registers (but not the PC itself, which is read-only).
    ///
    /// Needs: QEMU 11.0 (plugin API v6); under older APIs this is
    /// [`Failure::Unsupported`](crate::Failure::Unsupported) and registers nothing.
    pub fn on_exec_redirect<F>(&self, f: F) -> crate::Result<()>
    where
        F: Fn(&mut Vcpu<P>) -> Option<u64> + Send + Sync + 'static,
    {
        #[cfg(since_api_6)]
        {
            let flags = CallbackFlags::QEMU_PLUGIN_CB_RW_REGS_PC;
            let u = super::redirect::redirect_udata(self.rt, f);
            exec::register(&self.insn, flags, u);
            Ok(())
        }
        #[cfg(not(since_api_6))]
        {
            drop(f);
            Err(crate::Error::from(crate::Failure::Unsupported {
                api: "qemu_plugin_set_pc",
                needs: "11.0",
            }))
        }
    }

    /// Adds `imm` to the executing vCPU's `counter` each time the instruction executes.
    pub fn inline_add(&self, counter: &InlineCounter, imm: u64) {
        counter.apply(&self.insn, PluginOp::QEMU_PLUGIN_INLINE_ADD_U64, imm);
    }

    /// Stores `imm` into the executing vCPU's `counter` each time the instruction executes.
    #[cfg(since_api_3)]
    pub fn inline_store(&self, counter: &InlineCounter, imm: u64) {
        counter.apply(&self.insn, PluginOp::QEMU_PLUGIN_INLINE_STORE_U64, imm);
    }

    /// Runs `f` on the executing vCPU's shard for each memory access matching `rw`.
    pub fn on_mem<F>(&self, rw: MemRW, f: F)
    where
        F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>) + Send + Sync + 'static,
    {
        let u = mem::shard_mem_udata(self.rt, f);
        self.insn.register_memory(u, rw, NO_REGS);
    }

    /// As [`Self::on_mem`], for a callback that wants few of the accesses: `pick` looks at
    /// every access matching `rw` first, without the shard, and `f` runs on the executing
    /// vCPU's shard only for those `pick` returns `Some` for, with what it returned.
    ///
    /// The accesses `pick` turns down cost only `pick` itself (QEMU's call and whatever
    /// `pick` asks QEMU): the shard is not entered and `f`'s code stays out of their
    /// path. `hwprofile`, which counts only device accesses among all loads and stores,
    /// is what this is for. `pick` sees no shard, so it may run when `f` would not:
    /// before the vCPU's first shard exists, and after QEMU's exit has taken the shards
    /// (then `f` does not run, as for every exec-time closure).
    pub fn on_mem_filtered<T, Pick, F>(&self, rw: MemRW, pick: Pick, f: F)
    where
        Pick: for<'m> Fn(MemAccess<'m>) -> Option<T> + Send + Sync + 'static,
        F: for<'m> Fn(&mut Vcpu<P>, MemAccess<'m>, T) + Send + Sync + 'static,
    {
        let u = mem::filtered_mem_udata(self.rt, pick, f);
        self.insn.register_memory(u, rw, NO_REGS);
    }

    /// Adds `imm` to the executing vCPU's `counter` on each memory access matching `rw`.
    pub fn inline_mem_add(&self, rw: MemRW, counter: &InlineCounter, imm: u64) {
        counter.apply_mem(&self.insn, rw, PluginOp::QEMU_PLUGIN_INLINE_ADD_U64, imm);
    }
}
