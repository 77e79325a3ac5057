//! The raw C API the mock defines: `qemu-plugin-sys`, the shapes that depend on the
//! plugin API (the crate's own `src/sys/shapes.rs`, compiled here too), and glib's
//! `gboolean`.

#![allow(non_camel_case_types)]

pub use qemu_plugin_sys::*;

#[path = "../../src/sys/shapes.rs"]
mod shapes;
pub use shapes::*;
// Named, so that they win over `qemu-plugin-sys`'s items of the same names.
pub use shapes::{QEMU_PLUGIN_VERSION, qemu_plugin_cb_flags};
#[cfg(since_api_2)]
pub use shapes::qemu_plugin_reg_descriptor;

/// glib's `gboolean`.
pub type gboolean = std::ffi::c_int;
