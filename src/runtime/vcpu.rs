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
        }
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
