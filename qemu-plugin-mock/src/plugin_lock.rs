//! QEMU's `plugin.lock`: a recursive mutex that QEMU holds while it grows the scoreboards
//! (after `start_exclusive`), while it calls back from `qemu_plugin_vcpu_for_each`, and
//! while it runs an uninstall or reset completion.

use super::ctx;
use super::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

/// Holds the plugin lock until dropped (recursively on one thread).
pub(crate) struct PluginLock {
    _outer: Option<MutexGuard<'static, ()>>,
}

/// Takes the plugin lock (a no-op if this thread already holds it).
pub(crate) fn lock() -> PluginLock {
    let depth = ctx::plugin_lock_depth();
    let outer = (depth == 0).then(|| LOCK.lock());
    ctx::set_plugin_lock_depth(depth + 1);
    PluginLock { _outer: outer }
}

impl Drop for PluginLock {
    fn drop(&mut self) {
        ctx::set_plugin_lock_depth(ctx::plugin_lock_depth() - 1);
    }
}
