//! The raw C API: `qemu-plugin-sys` re-exported, with what it lacks: the items and shapes
//! of plugin APIs 6 and 7 (`shapes`), QEMU 10.2's discontinuity callback, and the glib
//! calls the API hands memory through; and how the crate registers and defines
//! callbacks under each API (`callback_abi`).
//!
//! Every call into QEMU goes through the `extern "C"` items named here. In a plugin they
//! are resolved by QEMU when it loads the shared object; in the crate's own tests the
//! mock host (the `qemu-plugin-mock` crate) defines the same symbols, so tests run the
//! crate's real code.
//!
//! `qemu-plugin-sys` has bindings up to API 5; for APIs 6 and 7 its API-5 bindings are
//! used, and every item that changed is declared again here, where a local item shadows
//! the glob re-export of the same name.

#![allow(non_camel_case_types, missing_docs)]

use std::ffi::{c_char, c_int, c_uint, c_void};

pub use qemu_plugin_sys::*;

#[path = "shapes.rs"]
mod shapes;
pub use shapes::*;
// Named, so that they win over `qemu-plugin-sys`'s items of the same names.
#[cfg(since_api_2)]
pub use shapes::qemu_plugin_reg_descriptor;
pub use shapes::{QEMU_PLUGIN_VERSION, qemu_plugin_cb_flags};

pub(crate) mod callback_abi;

/// `QEMU_PLUGIN_DISCON_INTERRUPT`: an interrupt, an asynchronous event, usually from
/// outside the CPU.
pub const QEMU_PLUGIN_DISCON_INTERRUPT: qemu_plugin_discon_type = 1;
/// An exception: a synchronous event caused by an instruction.
pub const QEMU_PLUGIN_DISCON_EXCEPTION: qemu_plugin_discon_type = 2;
/// A host call: an exception handled outside the vCPU (e.g. a semihosting call).
pub const QEMU_PLUGIN_DISCON_HOSTCALL: qemu_plugin_discon_type = 4;
/// Every kind of discontinuity.
pub const QEMU_PLUGIN_DISCON_ALL: qemu_plugin_discon_type = -1;

/// The type of `qemu_plugin_register_vcpu_discon_cb` (QEMU 10.2). It is looked up at run
/// time (by the crate's `host` module), never linked, so that plugins still load in QEMU 10.1.
#[cfg(not(since_api_7))]
pub type qemu_plugin_register_vcpu_discon_cb_fn =
    unsafe extern "C" fn(id: qemu_plugin_id_t, kind: qemu_plugin_discon_type, cb: Option<DisconCb>);
/// The type of `qemu_plugin_register_vcpu_discon_cb` (API 7: with userdata).
#[cfg(since_api_7)]
pub type qemu_plugin_register_vcpu_discon_cb_fn = unsafe extern "C" fn(
    id: qemu_plugin_id_t,
    kind: qemu_plugin_discon_type,
    cb: Option<DisconCb>,
    userdata: *mut c_void,
);

/// `qemu_plugin_vcpu_discon_cb_t` of the selected API.
pub type qemu_plugin_vcpu_discon_cb_t = Option<DisconCb>;
/// `qemu_plugin_vcpu_syscall_filter_cb_t` of the selected API (QEMU 11.0).
#[cfg(since_api_6)]
pub type qemu_plugin_vcpu_syscall_filter_cb_t = Option<SyscallFilterCb>;
/// API 7's `qemu_plugin_udata_cb_t`: userdata only.
#[cfg(since_api_7)]
pub type qemu_plugin_udata_cb_t = Option<UdataCb>;
/// API 7's `qemu_plugin_vcpu_tb_trans_cb_t`.
#[cfg(since_api_7)]
pub type qemu_plugin_vcpu_tb_trans_cb_t = Option<TbTransCb>;
/// API 7's `qemu_plugin_vcpu_syscall_cb_t`.
#[cfg(since_api_7)]
pub type qemu_plugin_vcpu_syscall_cb_t = Option<SyscallCb>;
/// API 7's `qemu_plugin_vcpu_syscall_ret_cb_t`.
#[cfg(since_api_7)]
pub type qemu_plugin_vcpu_syscall_ret_cb_t = Option<SyscallRetCb>;

// Functions whose parameters changed in API 6 (the flags enum gained `RW_REGS_PC`,
// register access returns `bool`) and the functions API 6 added.
#[cfg(since_api_6)]
unsafe extern "C" {
    pub fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut qemu_plugin_tb,
        cb: qemu_plugin_vcpu_udata_cb_t,
        flags: qemu_plugin_cb_flags,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_tb_exec_cond_cb(
        tb: *mut qemu_plugin_tb,
        cb: qemu_plugin_vcpu_udata_cb_t,
        flags: qemu_plugin_cb_flags,
        cond: qemu_plugin_cond,
        entry: qemu_plugin_u64,
        imm: u64,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_insn_exec_cb(
        insn: *mut qemu_plugin_insn,
        cb: qemu_plugin_vcpu_udata_cb_t,
        flags: qemu_plugin_cb_flags,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_insn_exec_cond_cb(
        insn: *mut qemu_plugin_insn,
        cb: qemu_plugin_vcpu_udata_cb_t,
        flags: qemu_plugin_cb_flags,
        cond: qemu_plugin_cond,
        entry: qemu_plugin_u64,
        imm: u64,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_mem_cb(
        insn: *mut qemu_plugin_insn,
        cb: qemu_plugin_vcpu_mem_cb_t,
        flags: qemu_plugin_cb_flags,
        rw: qemu_plugin_mem_rw,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_read_register(
        handle: *mut qemu_plugin_register,
        buf: *mut GByteArray,
    ) -> RegisterAccessResult;
    pub fn qemu_plugin_write_register(
        handle: *mut qemu_plugin_register,
        buf: *mut GByteArray,
    ) -> RegisterAccessResult;
    /// Sets the current vCPU's PC and leaves the callback through `cpu_loop_exit` (a
    /// longjmp): it never returns. QEMU aborts unless the callback runs with
    /// `QEMU_PLUGIN_CB_RW_REGS_PC` in effect.
    pub fn qemu_plugin_set_pc(vaddr: u64) -> !;
}

// API 6's syscall filter registration: the plugin id, then the callback.
#[cfg(all(since_api_6, not(since_api_7)))]
unsafe extern "C" {
    pub fn qemu_plugin_register_vcpu_syscall_filter_cb(
        id: qemu_plugin_id_t,
        cb: Option<SyscallFilterCb>,
    );
}

// Registration functions of the plugin-wide events, API 7: every one takes the
// userdata QEMU passes back to the callback.
#[cfg(since_api_7)]
unsafe extern "C" {
    pub fn qemu_plugin_uninstall(id: qemu_plugin_id_t, cb: Option<PlainCb>, userdata: *mut c_void);
    pub fn qemu_plugin_reset(id: qemu_plugin_id_t, cb: Option<PlainCb>, userdata: *mut c_void);
    pub fn qemu_plugin_register_vcpu_init_cb(
        id: qemu_plugin_id_t,
        cb: Option<VcpuCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_exit_cb(
        id: qemu_plugin_id_t,
        cb: Option<VcpuCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_idle_cb(
        id: qemu_plugin_id_t,
        cb: Option<VcpuCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_resume_cb(
        id: qemu_plugin_id_t,
        cb: Option<VcpuCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_tb_trans_cb(
        id: qemu_plugin_id_t,
        cb: Option<TbTransCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_syscall_cb(
        id: qemu_plugin_id_t,
        cb: Option<SyscallCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_syscall_ret_cb(
        id: qemu_plugin_id_t,
        cb: Option<SyscallRetCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_vcpu_syscall_filter_cb(
        id: qemu_plugin_id_t,
        cb: Option<SyscallFilterCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_vcpu_for_each(
        id: qemu_plugin_id_t,
        cb: Option<VcpuCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_flush_cb(
        id: qemu_plugin_id_t,
        cb: Option<PlainCb>,
        userdata: *mut c_void,
    );
    pub fn qemu_plugin_register_atexit_cb(
        id: qemu_plugin_id_t,
        cb: Option<UdataCb>,
        userdata: *mut c_void,
    );
}

/// Copies up to `len` bytes of `insn`'s encoding to `dest` and returns how many. Since
/// API 3 QEMU copies them itself; before, `qemu_plugin_insn_data` returns a pointer to
/// the encoding, whose length is `qemu_plugin_insn_size`.
///
/// QEMU changed that function's parameters in API 3 without keeping the old ones, yet
/// QEMU 9.1 and later still load plugins built for API 2: a plugin built for API 2 that
/// calls it the API-2 way there gets the byte count back as a pointer (10.1.0-v2's
/// builds crash QEMU 10.2 so). So a build for an API before 3 asks which API the running
/// QEMU speaks (recorded at install) and calls the function with that API's parameters.
///
/// # Safety
/// `insn` is an instruction of the block being translated, in its translation callback;
/// `dest` has room for `len` bytes.
pub unsafe fn insn_data_into(
    insn: *const qemu_plugin_insn,
    dest: *mut c_void,
    len: usize,
) -> usize {
    #[cfg(since_api_3)]
    // SAFETY: the caller's contract; QEMU writes at most `len` bytes.
    unsafe {
        qemu_plugin_insn_data(insn, dest, len)
    }
    #[cfg(not(since_api_3))]
    // SAFETY: the caller's contract; QEMU's pointer covers `insn_size` bytes, valid
    // during translation, and the copy takes no more than that or `len`. When the running
    // QEMU speaks API 3 or later, its `qemu_plugin_insn_data` has the API-3 parameters
    // (the declaration's shape is the API-2 one, so the function is called through a
    // pointer of the right type).
    unsafe {
        if crate::identity::qemu_api() >= 3 {
            type Api3 = unsafe extern "C" fn(*const qemu_plugin_insn, *mut c_void, usize) -> usize;
            let copy = std::mem::transmute::<
                unsafe extern "C" fn(*const qemu_plugin_insn) -> *const c_void,
                Api3,
            >(qemu_plugin_insn_data);
            return copy(insn, dest, len);
        }
        let src = qemu_plugin_insn_data(insn);
        if src.is_null() {
            return 0;
        }
        let n = qemu_plugin_insn_size(insn).min(len);
        std::ptr::copy_nonoverlapping(src.cast::<u8>(), dest.cast::<u8>(), n);
        n
    }
}

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
    /// glib `g_byte_array_set_size`.
    pub fn g_byte_array_set_size(array: *mut GByteArray, length: c_uint) -> *mut GByteArray;
    /// glib `g_byte_array_free`.
    pub fn g_byte_array_free(array: *mut GByteArray, free_segment: gboolean) -> *mut u8;
    /// glib `g_array_free`.
    pub fn g_array_free(array: *mut GArray, free_segment: gboolean) -> *mut c_char;
}
