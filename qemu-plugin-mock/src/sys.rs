//! The raw C API the mock defines: `qemu-plugin-sys`, plus glib's `gboolean`.

#![allow(non_camel_case_types)]

pub use qemu_plugin_sys::*;

/// glib's `gboolean`.
pub type gboolean = std::ffi::c_int;
