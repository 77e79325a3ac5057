//! Syscall entry and return callbacks (user mode).

use crate::sys::callback_abi::{self as abi, id_shaped};
use crate::{PluginId, SyscallCallback, SyscallReturnCallback};

/// Registers `cb` to run at every syscall entry, with its number and eight arguments.
/// Needs: any QEMU with plugins (fires in user mode).
pub fn qemu_plugin_register_vcpu_syscall_cb(id: PluginId, cb: SyscallCallback) {
    let (cb, ud) = id_shaped::syscall(cb);
    // SAFETY: QEMU stores the function pointer; `cb` is the plugin's valid function or
    // None (or the adapter that calls it with `ud`).
    unsafe { abi::register_syscall(id, cb, ud) };
}

/// Registers `cb` to run at every syscall return, with its number and return value.
/// Needs: any QEMU with plugins (fires in user mode).
pub fn qemu_plugin_register_vcpu_syscall_ret_cb(id: PluginId, cb: SyscallReturnCallback) {
    let (cb, ud) = id_shaped::syscall_ret(cb);
    // SAFETY: as above.
    unsafe { abi::register_syscall_ret(id, cb, ud) };
}
