//! Who this plugin is: the name its registering macro gave it (which prefixes every
//! message the crate prints), the id QEMU gave it at install, whether QEMU runs in user
//! mode and which plugin API it speaks, and whether QEMU has since uninstalled it (the id is then invalid: QEMU aborts
//! on it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::PluginId;

static NAME: Mutex<&'static str> = Mutex::new("qemu-plugin");
static ID: AtomicU64 = AtomicU64::new(0);
static UNINSTALLED: AtomicBool = AtomicBool::new(false);
static USER_MODE: AtomicBool = AtomicBool::new(false);
static QEMU_API: AtomicU64 = AtomicU64::new(0);

/// Records the plugin API version the running QEMU speaks (`qemu_info_t`'s
/// `version.cur`, at install), which can be newer than the one the plugin was built for.
pub(crate) fn set_qemu_api(current: i64) {
    QEMU_API.store(u64::try_from(current).unwrap_or(0), Ordering::Relaxed);
}

/// The plugin API version of the running QEMU, as it said at install (0 before).
#[cfg_attr(since_api_3, allow(dead_code))]
pub(crate) fn qemu_api() -> u64 {
    QEMU_API.load(Ordering::Relaxed)
}

/// Records the plugin's name (from `register!` / `per_vcpu!`).
pub(crate) fn set_name(name: &'static str) {
    *NAME.lock().unwrap_or_else(PoisonError::into_inner) = name;
}

/// The plugin's name, used to prefix its messages.
pub(crate) fn name() -> &'static str {
    *NAME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records the id QEMU gave the plugin at install.
pub(crate) fn set_id(id: PluginId) {
    ID.store(id, Ordering::Relaxed);
    UNINSTALLED.store(false, Ordering::Relaxed);
}

/// Records whether QEMU runs in user mode (from `qemu_info_t` at install).
pub(crate) fn set_user_mode(user: bool) {
    USER_MODE.store(user, Ordering::Relaxed);
}

/// Whether QEMU runs in user mode (linux-user), as it said at install.
#[cfg_attr(not(since_api_1), allow(dead_code))]
pub(crate) fn user_mode() -> bool {
    USER_MODE.load(Ordering::Relaxed)
}

/// Records that QEMU has removed the plugin (its uninstall completion ran).
pub(crate) fn set_uninstalled() {
    UNINSTALLED.store(true, Ordering::Release);
}

/// Whether QEMU has removed the plugin, so its id must not be passed to QEMU any more.
// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
pub(crate) fn uninstalled() -> bool {
    UNINSTALLED.load(Ordering::Acquire)
}

/// The id QEMU gave the plugin at install.
pub(crate) fn id() -> PluginId {
    ID.load(Ordering::Relaxed)
}
