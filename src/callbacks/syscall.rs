//! Syscall entry and return callbacks (user mode).

use crate::{PluginId, SyscallCallback, SyscallReturnCallback, sys};

/// Registers `cb` to run at every syscall entry, with its number and eight arguments.
/// Needs: any QEMU with plugins (fires in user mode).
pub fn qemu_plugin_register_vcpu_syscall_cb(id: PluginId, cb: SyscallCallback) {
    // SAFETY: QEMU stores the function pointer; `cb` is a valid function or None.
    unsafe { sys::qemu_plugin_register_vcpu_syscall_cb(id, cb) };
}

/// Registers `cb` to run at every syscall return, with its number and return value.
/// Needs: any QEMU with plugins (fires in user mode).
pub fn qemu_plugin_register_vcpu_syscall_ret_cb(id: PluginId, cb: SyscallReturnCallback) {
    // SAFETY: as above.
    unsafe { sys::qemu_plugin_register_vcpu_syscall_ret_cb(id, cb) };
}
