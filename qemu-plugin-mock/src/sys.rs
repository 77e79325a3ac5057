//! The raw C API the mock defines: `qemu-plugin-sys`, the shapes that depend on the
//! plugin API (the crate's own `src/sys/shapes.rs`, compiled here too), and glib's
//! `gboolean`.

#![allow(non_camel_case_types)]

pub use qemu_plugin_sys::*;

#[path = "../../src/sys/shapes.rs"]
mod shapes;
pub use shapes::*;
// Named, so that they win over `qemu-plugin-sys`'s items of the same names.
#[cfg(since_api_2)]
pub use shapes::qemu_plugin_reg_descriptor;
pub use shapes::{QEMU_PLUGIN_VERSION, qemu_plugin_cb_flags};

/// `enum qemu_plugin_cond`, declared here before API 3 (QEMU 9.1), which added it: the
/// mock's exec engine evaluates conditions under every API, though only API 3 and later
/// can register them.
#[cfg(not(since_api_3))]
#[repr(u32)]
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
#[allow(dead_code, missing_docs)]
pub enum qemu_plugin_cond {
    QEMU_PLUGIN_COND_NEVER = 0,
    QEMU_PLUGIN_COND_ALWAYS = 1,
    QEMU_PLUGIN_COND_EQ = 2,
    QEMU_PLUGIN_COND_NE = 3,
    QEMU_PLUGIN_COND_LT = 4,
    QEMU_PLUGIN_COND_LE = 5,
    QEMU_PLUGIN_COND_GT = 6,
    QEMU_PLUGIN_COND_GE = 7,
}

/// glib's `gboolean`.
pub type gboolean = std::ffi::c_int;
