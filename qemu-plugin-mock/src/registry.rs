//! Installed plugins and their per-event callbacks (QEMU's `plugin.ctxs` and
//! `ctx->callbacks[ev]`): one callback per event per plugin, last registration wins.

use super::sync::{Mutex, MutexGuard};

use crate::callback_call::Registered;
use crate::sys::{
    DisconCb, PlainCb, SyscallCb, SyscallRetCb, TbTransCb, UdataCb, VcpuCb, qemu_plugin_id_t,
};

/// `qemu_plugin_vcpu_discon_cb_t` of the selected API (QEMU 10.2; absent from
/// `qemu-plugin-sys` 10.1.0-v2).
#[allow(non_camel_case_types)]
pub type qemu_plugin_vcpu_discon_cb_t = Option<DisconCb>;

/// One plugin's callbacks, one slot per QEMU event.
#[derive(Clone, Copy, Default)]
pub(crate) struct Callbacks {
    pub(crate) vcpu_init: Option<Registered<VcpuCb>>,
    pub(crate) vcpu_exit: Option<Registered<VcpuCb>>,
    pub(crate) idle: Option<Registered<VcpuCb>>,
    pub(crate) resume: Option<Registered<VcpuCb>>,
    pub(crate) tb_trans: Option<Registered<TbTransCb>>,
    pub(crate) syscall: Option<Registered<SyscallCb>>,
    pub(crate) syscall_ret: Option<Registered<SyscallRetCb>>,
    /// The syscall filter (API 6 and later).
    #[cfg(since_api_6)]
    pub(crate) syscall_filter: Option<Registered<crate::sys::SyscallFilterCb>>,
    pub(crate) flush: Option<Registered<PlainCb>>,
    pub(crate) atexit: Option<Registered<UdataCb>>,
    /// Interrupt, exception, host call (bit 0, 1, 2 of the discon type mask).
    pub(crate) discon: [Option<Registered<DisconCb>>; 3],
}

/// QEMU's `struct qemu_plugin_ctx`, reduced to what the mock needs.
pub(crate) struct PluginCtx {
    pub(crate) id: qemu_plugin_id_t,
    pub(crate) cbs: Callbacks,
    pub(crate) uninstalling: bool,
    pub(crate) resetting: bool,
}

struct Registry {
    plugins: Vec<PluginCtx>,
    next_id: qemu_plugin_id_t,
    uninstalled: Vec<qemu_plugin_id_t>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    plugins: Vec::new(),
    next_id: FIRST_ID,
    uninstalled: Vec::new(),
});

/// Ids look like QEMU's (a context address): large and non-zero.
const FIRST_ID: qemu_plugin_id_t = 0x5150_1000;

fn reg() -> MutexGuard<'static, Registry> {
    REGISTRY.lock()
}

/// Adds a plugin context and returns its id.
pub(crate) fn add_plugin() -> qemu_plugin_id_t {
    let mut r = reg();
    let id = r.next_id;
    r.next_id += 0x100;
    r.plugins.push(PluginCtx {
        id,
        cbs: Callbacks::default(),
        uninstalling: false,
        resetting: false,
    });
    id
}

/// Removes a plugin context (uninstall done, or install failed).
pub(crate) fn remove_plugin(id: qemu_plugin_id_t) {
    let mut r = reg();
    r.plugins.retain(|p| p.id != id);
    r.uninstalled.push(id);
}

/// Whether `id` was uninstalled (its uninstall callback has run).
pub(crate) fn is_uninstalled(id: qemu_plugin_id_t) -> bool {
    reg().uninstalled.contains(&id)
}

/// Updates the callbacks of plugin `id`, unless it is unknown or uninstalling
/// (`do_plugin_register_cb` ignores requests from a plugin on its way out).
/// Returns whether the update happened.
pub(crate) fn update(id: qemu_plugin_id_t, f: impl FnOnce(&mut Callbacks)) -> bool {
    let mut r = reg();
    match r.plugins.iter_mut().find(|p| p.id == id) {
        Some(p) if !p.uninstalling => {
            f(&mut p.cbs);
            true
        }
        _ => false,
    }
}

/// Applies `f` to the whole context of plugin `id` (lifecycle flags).
pub(crate) fn with_ctx<R>(id: qemu_plugin_id_t, f: impl FnOnce(&mut PluginCtx) -> R) -> Option<R> {
    reg().plugins.iter_mut().find(|p| p.id == id).map(f)
}

/// Collects `pick(id, callbacks)` over every plugin, so callbacks run without the
/// registry lock held (they may register or uninstall).
pub(crate) fn collect<T>(
    mut pick: impl FnMut(qemu_plugin_id_t, &Callbacks) -> Option<T>,
) -> Vec<T> {
    reg()
        .plugins
        .iter()
        .filter_map(|p| pick(p.id, &p.cbs))
        .collect()
}

/// Applies `f` to every plugin's callbacks (atexit-time unregistration).
pub(crate) fn for_each_mut(mut f: impl FnMut(&mut Callbacks)) {
    for p in reg().plugins.iter_mut() {
        f(&mut p.cbs);
    }
}

/// Forgets every plugin (host teardown).
pub(crate) fn reset() {
    let mut r = reg();
    r.plugins.clear();
    r.uninstalled.clear();
    r.next_id = FIRST_ID;
}
