//! [`Handle`]: user code's typed handle on its installed per-vCPU runtime.

use std::sync::Arc;

use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use crate::error::Result;
use crate::{PluginId, VCPUIndex};

/// A handle on the installed runtime of plugin `P`: its configuration, its plugin id and
/// what QEMU lets a plugin do with that id.
///
/// It is `Copy`, `Send` and `Sync`, and valid for the life of the process. Get it from
/// [`PerVcpu::started`] (keep it, or move it into a thread you start there), from
/// [`Vcpu::handle`](super::Vcpu::handle) in any per-vCPU hook or closure, or from
/// [`Translation::handle`](super::Translation::handle) at translation.
pub struct Handle<P: PerVcpu> {
    rt: &'static Runtime<P>,
}

impl<P: PerVcpu> Clone for Handle<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: PerVcpu> Copy for Handle<P> {}

impl<P: PerVcpu> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("plugin", &std::any::type_name::<P>())
            .field("id", &self.rt.id)
            .finish()
    }
}

impl<P: PerVcpu> Handle<P> {
    pub(crate) fn new(rt: &'static Runtime<P>) -> Self {
        Self { rt }
    }

    /// The plugin object.
    pub fn plugin(&self) -> &'static P {
        &self.rt.plugin
    }

    /// The id QEMU gave this plugin at install.
    pub fn id(&self) -> PluginId {
        self.rt.id
    }

    /// Replaces the configuration shared by every vCPU. Each vCPU sees it at its next
    /// event; translations already done keep what they captured.
    pub fn set_config(&self, config: P::Config) {
        let config = Arc::new(config);
        // arc_swap publishes the new value with atomics race detectors cannot see; tell
        // them (matched in `Vcpu::config`; nothing in a normal build).
        crate::annotate::happens_before(&*config);
        self.rt.config.store(config);
    }

    /// The current configuration (an owned `Arc`; in hot code prefer
    /// [`Vcpu::config`](super::Vcpu::config), which is cheaper).
    pub fn config(&self) -> Arc<P::Config> {
        self.rt.config.load_full()
    }

    /// How many per-vCPU slots the runtime has allocated: 64 from install, then
    /// segments of 64, 128, 256... as vCPU indexes pass them. Its memory is this times
    /// the padded slot size (a multiple of 128 bytes holding the shard inline), plus each
    /// shard's own heap data.
    pub fn allocated_slots(&self) -> usize {
        self.rt.shards.allocated()
    }

    /// Asks QEMU to uninstall the plugin; `done` runs once it has. Callbacks may still
    /// arrive until then. Not from [`PerVcpu::new`] (return an error there instead).
    /// Needs: any QEMU with plugins.
    pub fn uninstall<F>(&self, done: F) -> Result<()>
    where
        F: FnOnce(PluginId) + Send + Sync + 'static,
    {
        crate::qemu_plugin_uninstall(self.rt.id, done)
    }

    /// Asks QEMU to reset the plugin (drop all its callbacks); `done` runs once it has.
    /// Needs: any QEMU with plugins.
    pub fn reset<F>(&self, done: F) -> Result<()>
    where
        F: FnOnce(PluginId) + Send + Sync + 'static,
    {
        crate::qemu_plugin_reset(self.rt.id, done)
    }

    /// Calls `f` for each live vCPU, synchronously. Needs: any QEMU with plugins.
    pub fn vcpu_for_each(&self, f: impl FnMut(VCPUIndex)) {
        crate::qemu_plugin_vcpu_for_each(self.rt.id, f)
    }
}
