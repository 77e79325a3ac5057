//! `Vcpu<P>`: one vCPU's shard as user code sees it, with the vCPU's index and a cheap,
//! revalidating handle to the shared configuration.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use arc_swap::{ArcSwap, Cache};

use super::handle::Handle;
use super::inline::InlineCounter;
use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use crate::VCPUIndex;

/// One vCPU's shard, handed by `&mut` to the closures and hooks that run on that vCPU.
///
/// Dereferences to the plugin's [`PerVcpu::Shard`].
pub struct Vcpu<P: PerVcpu> {
    shard: P::Shard,
    index: VCPUIndex,
    rt: &'static Runtime<P>,
    config: Cache<&'static ArcSwap<P::Config>, Arc<P::Config>>,
    /// In its vCPU's slot: a `&mut` to it then exists only inside a callback of that vCPU,
    /// on its thread, with the slot entered (the slot sets and clears this as it stores
    /// and takes the `Vcpu`).
    in_slot: bool,
}

impl<P: PerVcpu> Vcpu<P> {
    pub(crate) fn new(
        shard: P::Shard,
        index: VCPUIndex,
        rt: &'static Runtime<P>,
        config: &'static ArcSwap<P::Config>,
    ) -> Self {
        Self {
            shard,
            index,
            rt,
            config: Cache::new(config),
            in_slot: false,
        }
    }

    /// Marks this `Vcpu` as stored in (or taken from) its slot.
    pub(super) fn set_in_slot(&mut self, in_slot: bool) {
        self.in_slot = in_slot;
    }

    /// This vCPU's index.
    #[inline]
    pub fn index(&self) -> VCPUIndex {
        self.index
    }

    /// The plugin's [`Handle`].
    pub fn handle(&self) -> Handle<P> {
        Handle::new(self.rt)
    }

    /// The current configuration. Costs one atomic load to check for a newer value; a
    /// value replaced by [`Handle::set_config`] is seen at the next call.
    #[inline]
    pub fn config(&mut self) -> &P::Config {
        let config: &P::Config = self.config.load();
        // Pairs with the annotation in `set_config` (nothing in a normal build).
        crate::annotate::happens_after(config);
        config
    }

    /// This vCPU's value of an inline counter.
    pub fn inline(&self, counter: &InlineCounter) -> u64 {
        counter.get(self.index)
    }

    /// Takes this vCPU's value of an inline counter, resetting it to zero (use it in
    /// [`PerVcpu::merge`], so a reused index starts from zero).
    pub fn take_inline(&self, counter: &InlineCounter) -> u64 {
        counter.take(self.index)
    }

    /// The shard itself.
    pub fn into_shard(self) -> P::Shard {
        self.shard
    }

    /// Ends QEMU with exit status `code` from inside a callback of this vCPU, as QEMU's C
    /// plugins do with `exit()` (`contrib/plugins/stoptrigger.c`).
    ///
    /// First this vCPU's shard is merged into the total, and its slot is given up (left
    /// holding a default shard) so that QEMU's exit does not wait for this callback, which
    /// never returns. Then `exit(code)` runs QEMU's atexit handler on this thread, which
    /// merges the other vCPUs' shards and calls [`PerVcpu::on_exit`], as at any exit. If
    /// the merge fails (or panics), one line says so, the total is not reported, and QEMU
    /// exits all the same. In system mode the other vCPUs are not paused first, as with
    /// any `exit()` from device code: QEMU's exit takes their shards as it always does.
    ///
    /// Returns only when this `Vcpu` is not one a callback of its vCPU was given (the one
    /// [`PerVcpu::merge`] receives, say): [`Failure::NotOnVcpuThread`](crate::Failure::NotOnVcpuThread),
    /// and nothing happens. Needs: any QEMU with plugins.
    pub fn exit_qemu(&mut self, code: i32) -> crate::Result<std::convert::Infallible>
    where
        P::Shard: Default,
    {
        self.leave_for_exit()?;
        std::process::exit(code)
    }

    /// [`Self::exit_qemu`] up to the `exit()`: merges the shard and gives the slot up.
    pub(crate) fn leave_for_exit(&mut self) -> crate::Result<()>
    where
        P::Shard: Default,
    {
        if !self.in_slot {
            return Err(crate::Failure::NotOnVcpuThread {
                api: "Vcpu::exit_qemu",
            }
            .into());
        }
        let own = Vcpu::new(
            std::mem::take(&mut self.shard),
            self.index,
            self.rt,
            &self.rt.config,
        );
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rt.merge(own)));
        let failed = match merged {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("it panicked".to_string()),
        };
        if let Some(why) = failed {
            crate::api::misc::outs_raw(&format!(
                "{}: merging vCPU {}'s shard before exiting failed ({why}); no total will be \
                 reported\n",
                crate::identity::name(),
                self.index
            ));
        }
        // SAFETY: `in_slot` and a `&mut self` mean this is a callback of vCPU `index`, on
        // its thread, with its slot entered (see the field's doc).
        unsafe { self.rt.shards.get(self.index as usize).abandon() };
        Ok(())
    }
}

impl<P: PerVcpu> Deref for Vcpu<P> {
    type Target = P::Shard;

    #[inline(always)]
    fn deref(&self) -> &P::Shard {
        &self.shard
    }
}

impl<P: PerVcpu> DerefMut for Vcpu<P> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut P::Shard {
        &mut self.shard
    }
}
