//! The C library functions the loader calls: the dynamic linker's interface and
//! `memfd_create`, all in glibc's `libc.so.6` (2.34 and later; bookworm has 2.36), which
//! every Rust program on Linux already links.

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `RTLD_NOW`: resolve every symbol of the build when it is loaded, so that a build that
/// needs a function this QEMU lacks fails at load, with the dynamic linker's message.
pub const RTLD_NOW: c_int = 2;
/// `RTLD_DEFAULT`: look a symbol up in the process's global scope (QEMU's exports).
pub const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();
/// `MFD_CLOEXEC`.
pub const MFD_CLOEXEC: c_uint = 1;

/// `Dl_info`, filled by `dladdr`.
#[repr(C)]
pub struct DlInfo {
    /// Path of the object containing the address.
    pub dli_fname: *const c_char,
    /// Its load address.
    pub dli_fbase: *mut c_void,
    /// The nearest symbol's name.
    pub dli_sname: *const c_char,
    /// The nearest symbol's address.
    pub dli_saddr: *mut c_void,
}

unsafe extern "C" {
    pub fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    pub fn dlerror() -> *mut c_char;
    pub fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
    pub fn memfd_create(name: *const c_char, flags: c_uint) -> c_int;
}
