//! What the crate asks of the process that hosts it, beyond the plugin API proper:
//! run-time lookup of QEMU functions newer than the linked API, and keeping the plugin's
//! code mapped after QEMU uninstalls it.
//!
//! The crate's own tests run this same code: their mock host defines the QEMU symbols in
//! the test executable, which exports them (see `build.rs`).

use crate::sys;

/// Looks up `qemu_plugin_register_vcpu_discon_cb` (QEMU >= 10.2) in the running process.
///
/// The symbol is never linked: a plugin that linked it would fail to load in QEMU 10.1.
pub(crate) fn discon_register_fn() -> Option<sys::qemu_plugin_register_vcpu_discon_cb_fn> {
    {
        // SAFETY:
        // - the name is a NUL-terminated literal;
        // - QEMU >= 10.2 exports this function with exactly the signature of
        //   `qemu_plugin_register_vcpu_discon_cb_fn` (include/qemu/qemu-plugin.h), so the
        //   transmute from the looked-up address is to the right function type.
        unsafe {
            let addr = dl::dlsym(
                dl::RTLD_DEFAULT,
                c"qemu_plugin_register_vcpu_discon_cb".as_ptr(),
            );
            if addr.is_null() {
                None
            } else {
                Some(std::mem::transmute::<
                    *mut std::ffi::c_void,
                    sys::qemu_plugin_register_vcpu_discon_cb_fn,
                >(addr))
            }
        }
    }
}

/// Keeps this shared object mapped for the life of the process.
///
/// QEMU `dlclose`s a plugin once it is uninstalled (for instance after a panic was caught).
/// A vCPU thread may still be inside one of our syscall hooks at that moment, and threads
/// the plugin spawned keep running its code; unmapping it would crash them. Marking the
/// object `RTLD_NODELETE` makes that `dlclose` a no-op.
pub(crate) fn pin_module() {
    // SAFETY:
    // - `dladdr` only reads the address of a function of this object and fills `info`;
    // - `dli_fname` is a NUL-terminated path owned by the loader, valid while the object
    //   is loaded, which it is while this function runs;
    // - `dlopen` with RTLD_NOLOAD only takes another reference to an already loaded object.
    unsafe {
        let mut info = dl::DlInfo {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        let here = pin_module as *const std::ffi::c_void;
        if dl::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
            dl::dlopen(
                info.dli_fname,
                dl::RTLD_NOW | dl::RTLD_NOLOAD | dl::RTLD_NODELETE,
            );
        }
    }
}

mod dl {
    use std::ffi::{c_char, c_int, c_void};

    pub(super) const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();
    pub(super) const RTLD_NOW: c_int = 0x2;
    pub(super) const RTLD_NOLOAD: c_int = 0x4;
    pub(super) const RTLD_NODELETE: c_int = 0x1000;

    #[repr(C)]
    pub(super) struct DlInfo {
        pub(super) dli_fname: *const c_char,
        pub(super) dli_fbase: *mut c_void,
        pub(super) dli_sname: *const c_char,
        pub(super) dli_saddr: *mut c_void,
    }

    unsafe extern "C" {
        pub(super) fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        pub(super) fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
        pub(super) fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    }
}
