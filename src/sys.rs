//! The raw C API: `qemu-plugin-sys` re-exported, plus the declarations it lacks
//! (QEMU 10.2's discontinuity callback and the glib calls the API hands memory through).
//!
//! Every call into QEMU goes through the `extern "C"` items named here. In a plugin they
//! are resolved by QEMU when it loads the shared object; in the crate's own tests the
//! mock host (the `qemu-plugin-mock` crate) defines the same symbols, so tests run the
//! crate's real code.

#![allow(non_camel_case_types, missing_docs)]

use std::ffi::{c_char, c_int, c_uint, c_void};

pub use qemu_plugin_sys::*;

/// `enum qemu_plugin_discon_type` (QEMU 10.2): a bit mask of discontinuity kinds.
pub type qemu_plugin_discon_type = c_int;
/// An interrupt: an asynchronous event, usually from outside the CPU.
pub const QEMU_PLUGIN_DISCON_INTERRUPT: qemu_plugin_discon_type = 1;
/// An exception: a synchronous event caused by an instruction.
pub const QEMU_PLUGIN_DISCON_EXCEPTION: qemu_plugin_discon_type = 2;
/// A host call: an exception handled outside the vCPU (e.g. a semihosting call).
pub const QEMU_PLUGIN_DISCON_HOSTCALL: qemu_plugin_discon_type = 4;
/// Every kind of discontinuity.
pub const QEMU_PLUGIN_DISCON_ALL: qemu_plugin_discon_type = -1;

/// `qemu_plugin_vcpu_discon_cb_t` (QEMU 10.2).
pub type qemu_plugin_vcpu_discon_cb_t = Option<
    unsafe extern "C" fn(
        id: qemu_plugin_id_t,
        vcpu_index: c_uint,
        type_: qemu_plugin_discon_type,
        from_pc: u64,
        to_pc: u64,
    ),
>;

/// The type of `qemu_plugin_register_vcpu_discon_cb` (QEMU 10.2). It is looked up at run
/// time (by the crate's `host` module), never linked, so that plugins still load in QEMU 10.1.
pub type qemu_plugin_register_vcpu_discon_cb_fn = unsafe extern "C" fn(
    id: qemu_plugin_id_t,
    type_: qemu_plugin_discon_type,
    cb: qemu_plugin_vcpu_discon_cb_t,
);

/// glib's `gboolean`.
pub type gboolean = c_int;

unsafe extern "C" {
    /// glib `g_free`: frees memory that QEMU allocated with `g_malloc`.
    pub fn g_free(mem: *mut c_void);
    /// glib `g_byte_array_new`.
    pub fn g_byte_array_new() -> *mut GByteArray;
    /// glib `g_byte_array_append`.
    pub fn g_byte_array_append(
        array: *mut GByteArray,
        data: *const u8,
        len: c_uint,
    ) -> *mut GByteArray;
    /// glib `g_byte_array_free`.
    pub fn g_byte_array_free(array: *mut GByteArray, free_segment: gboolean) -> *mut u8;
    /// glib `g_array_free`.
    pub fn g_array_free(array: *mut GArray, free_segment: gboolean) -> *mut c_char;
}
