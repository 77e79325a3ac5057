//! The C types whose shape depends on the plugin API: the one place that says how each
//! API version differs in what QEMU passes to a plugin's callbacks and in the structs
//! and enums it shares with it.
//!
//! Each callback kind has one name here whatever the API (`VcpuCb`, `TbTransCb`, ...);
//! its parameters are the selected API's. Up to API 6 QEMU passes the plugin id first
//! and no userdata to plugin-wide events; from API 7 (QEMU 11.1) no callback gets the id
//! and every one gets its registration's userdata last (`../shared/QEMU-API-6-7.md` §2).
//! `qemu-plugin-sys` 10.1.0-v2 stops at API 5, so what API 6 and 7 add or change is
//! declared here from those facts.
//!
//! `qemu-plugin-mock` compiles this same file (`#[path]`), so the stand-in host and the
//! crate cannot disagree on a shape.

#![allow(non_camel_case_types, dead_code)]

use std::ffi::{c_int, c_uint, c_void};

use qemu_plugin_sys::{qemu_plugin_id_t, qemu_plugin_tb};

/// `QEMU_PLUGIN_VERSION` of the selected API: the value the plugin exports as
/// `qemu_plugin_version`.
#[cfg(not(since_api_6))]
pub const QEMU_PLUGIN_VERSION: u32 = qemu_plugin_sys::QEMU_PLUGIN_VERSION;
/// `QEMU_PLUGIN_VERSION` of the selected API (QEMU 11.0).
#[cfg(all(since_api_6, not(since_api_7)))]
pub const QEMU_PLUGIN_VERSION: u32 = 6;
/// `QEMU_PLUGIN_VERSION` of the selected API (QEMU 11.1).
#[cfg(since_api_7)]
pub const QEMU_PLUGIN_VERSION: u32 = 7;

/// `enum qemu_plugin_discon_type` (QEMU 10.2): a bit mask of discontinuity kinds. A C
/// `int`, because of `ALL = -1`.
pub type qemu_plugin_discon_type = c_int;

#[cfg(not(since_api_7))]
mod callbacks {
    use super::*;

    // Up to API 6 the plugin-wide callbacks get the plugin id first: the id-first shapes.
    /// Flush, and the completion of an uninstall or reset (`qemu_plugin_simple_cb_t`).
    pub type PlainCb = IdPlainCb;
    /// atexit (`qemu_plugin_udata_cb_t`).
    pub type UdataCb = unsafe extern "C" fn(id: qemu_plugin_id_t, userdata: *mut c_void);
    /// vCPU init, exit, idle, resume and `vcpu_for_each` (`qemu_plugin_vcpu_simple_cb_t`).
    pub type VcpuCb = IdVcpuCb;
    /// Block translation (`qemu_plugin_vcpu_tb_trans_cb_t`).
    pub type TbTransCb = IdTbTransCb;
    /// Syscall entry (`qemu_plugin_vcpu_syscall_cb_t`).
    pub type SyscallCb = IdSyscallCb;
    /// Syscall return (`qemu_plugin_vcpu_syscall_ret_cb_t`).
    pub type SyscallRetCb = IdSyscallRetCb;
    /// A discontinuity (`qemu_plugin_vcpu_discon_cb_t`, QEMU 10.2).
    pub type DisconCb = IdDisconCb;
    /// The syscall filter (`qemu_plugin_vcpu_syscall_filter_cb_t`, QEMU 11.0): `true`
    /// means the plugin answered the syscall, with `*sysret`.
    pub type SyscallFilterCb = unsafe extern "C" fn(
        id: qemu_plugin_id_t,
        vcpu_index: c_uint,
        num: i64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        a6: u64,
        a7: u64,
        a8: u64,
        sysret: *mut SysRet,
    ) -> bool;
    /// The pointee of the filter's `sysret` (`uint64_t` in API 6).
    pub type SysRet = u64;
}

#[cfg(since_api_7)]
mod callbacks {
    use super::*;

    /// Flush, and the completion of an uninstall or reset (`qemu_plugin_udata_cb_t`).
    pub type PlainCb = unsafe extern "C" fn(userdata: *mut c_void);
    /// atexit (`qemu_plugin_udata_cb_t`).
    pub type UdataCb = unsafe extern "C" fn(userdata: *mut c_void);
    /// vCPU init, exit, idle, resume and `vcpu_for_each` (`qemu_plugin_vcpu_udata_cb_t`).
    pub type VcpuCb = unsafe extern "C" fn(vcpu_index: c_uint, userdata: *mut c_void);
    /// Block translation (`qemu_plugin_vcpu_tb_trans_cb_t`).
    pub type TbTransCb = unsafe extern "C" fn(tb: *mut qemu_plugin_tb, userdata: *mut c_void);
    /// Syscall entry (`qemu_plugin_vcpu_syscall_cb_t`).
    pub type SyscallCb = unsafe extern "C" fn(
        vcpu_index: c_uint,
        num: i64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        a6: u64,
        a7: u64,
        a8: u64,
        userdata: *mut c_void,
    );
    /// Syscall return (`qemu_plugin_vcpu_syscall_ret_cb_t`).
    pub type SyscallRetCb =
        unsafe extern "C" fn(vcpu_index: c_uint, num: i64, ret: i64, userdata: *mut c_void);
    /// A discontinuity (`qemu_plugin_vcpu_discon_cb_t`).
    pub type DisconCb = unsafe extern "C" fn(
        vcpu_index: c_uint,
        kind: qemu_plugin_discon_type,
        from_pc: u64,
        to_pc: u64,
        userdata: *mut c_void,
    );
    /// The syscall filter (`qemu_plugin_vcpu_syscall_filter_cb_t`): `true` means the
    /// plugin answered the syscall, with `*sysret`.
    pub type SyscallFilterCb = unsafe extern "C" fn(
        vcpu_index: c_uint,
        num: i64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        a6: u64,
        a7: u64,
        a8: u64,
        sysret: *mut SysRet,
        userdata: *mut c_void,
    ) -> bool;
    /// The pointee of the filter's `sysret` (`int64_t` since API 7).
    pub type SysRet = i64;
}

pub use callbacks::*;

/// `enum qemu_plugin_cb_flags` of API 6 and later, which adds `RW_REGS_PC`.
#[cfg(since_api_6)]
#[repr(u32)]
#[derive(Debug, Copy, Clone, Hash, PartialEq, Eq)]
pub enum qemu_plugin_cb_flags {
    /// The callback does not access the vCPU's registers.
    QEMU_PLUGIN_CB_NO_REGS = 0,
    /// The callback reads the vCPU's registers.
    QEMU_PLUGIN_CB_R_REGS = 1,
    /// The callback reads and writes the vCPU's registers.
    QEMU_PLUGIN_CB_RW_REGS = 2,
    /// The callback reads and writes the registers, and may set the PC
    /// (`qemu_plugin_set_pc`). Needs: QEMU 11.0 (plugin API v6).
    QEMU_PLUGIN_CB_RW_REGS_PC = 3,
}
/// `enum qemu_plugin_cb_flags` up to API 5.
#[cfg(not(since_api_6))]
pub use qemu_plugin_sys::qemu_plugin_cb_flags;

/// `struct qemu_plugin_reg_descriptor` of API 6 and later: 32 bytes, with `is_readonly`.
#[cfg(since_api_6)]
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct qemu_plugin_reg_descriptor {
    /// The opaque register handle.
    pub handle: *mut qemu_plugin_sys::qemu_plugin_register,
    /// The register's name.
    pub name: *const std::ffi::c_char,
    /// The GDB feature it belongs to, or null.
    pub feature: *const std::ffi::c_char,
    /// Whether QEMU refuses writes to it (the PC: write it with `qemu_plugin_set_pc`).
    pub is_readonly: bool,
}
/// `struct qemu_plugin_reg_descriptor` of APIs 2 to 5 (24 bytes).
#[cfg(all(since_api_2, not(since_api_6)))]
pub use qemu_plugin_sys::qemu_plugin_reg_descriptor;

/// What `qemu_plugin_read_register` / `write_register` return: the byte count or -1 up
/// to API 5, success since API 6.
#[cfg(not(since_api_6))]
pub type RegisterAccessResult = c_int;
/// What `qemu_plugin_read_register` / `write_register` return since API 6.
#[cfg(since_api_6)]
pub type RegisterAccessResult = bool;

/// Whether a register access result means success.
#[cfg(not(since_api_6))]
pub fn register_access_ok(r: RegisterAccessResult, writing: bool) -> bool {
    // API 5 returns the bytes read or written, -1 when refused; a write of 0 bytes failed.
    if writing { r > 0 } else { r >= 0 }
}
/// Whether a register access result means success.
#[cfg(since_api_6)]
pub fn register_access_ok(r: RegisterAccessResult, _writing: bool) -> bool {
    r
}

// The id-first shapes: the plugin-wide callbacks of APIs 0 to 6, and the shape the
// crate's raw registration functions take under every API (under API 7 through an
// adapter), so code written for `qemu-plugin` 10.1.0-v2 keeps compiling.

/// A vCPU event callback that gets the plugin id (the shape of API 0-6).
pub type IdVcpuCb = unsafe extern "C" fn(id: qemu_plugin_id_t, vcpu_index: c_uint);
/// A flush callback that gets the plugin id (API 0-6 shape).
pub type IdPlainCb = unsafe extern "C" fn(id: qemu_plugin_id_t);
/// A translation callback that gets the plugin id (API 0-6 shape).
pub type IdTbTransCb = unsafe extern "C" fn(id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb);
/// A syscall entry callback that gets the plugin id (API 0-6 shape).
pub type IdSyscallCb = unsafe extern "C" fn(
    id: qemu_plugin_id_t,
    vcpu_index: c_uint,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
);
/// A syscall return callback that gets the plugin id (API 0-6 shape).
pub type IdSyscallRetCb =
    unsafe extern "C" fn(id: qemu_plugin_id_t, vcpu_idx: c_uint, num: i64, ret: i64);
/// A discontinuity callback that gets the plugin id (API 0-6 shape).
pub type IdDisconCb = unsafe extern "C" fn(
    id: qemu_plugin_id_t,
    vcpu_index: c_uint,
    kind: qemu_plugin_discon_type,
    from_pc: u64,
    to_pc: u64,
);
