//! Placeholder until the mock host lands.
#![allow(missing_docs)]
use std::sync::atomic::{AtomicBool, Ordering};
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}
pub(crate) fn discon_entry() -> Option<crate::sys::qemu_plugin_register_vcpu_discon_cb_fn> {
    None
}
