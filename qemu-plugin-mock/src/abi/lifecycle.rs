//! C entry points for plugin lifecycle, per-event callback registration, vCPU
//! queries, output, argument parsing, binary facts and time control.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr;

use super::guard;
use crate::callback_call::Registered;
use crate::registry::{self, Callbacks};
use crate::sys::{
    DisconCb, PlainCb, SyscallCb, SyscallRetCb, TbTransCb, UdataCb, VcpuCb, qemu_plugin_id_t,
};
use crate::{ctx, exclusive, glib, hostinfo, memory, scoreboard, translate, vcpu};

/// `plugin_reset_uninstall`: asynchronous; with every vCPU stopped, flush TBs,
/// unregister all callbacks, (uninstall: forget the plugin), then call the completion.
fn reset_uninstall(id: qemu_plugin_id_t, cb: Option<Registered<PlainCb>>, reset: bool) {
    if ctx::installing() && !reset {
        hostinfo::violation(format!(
            "qemu_plugin_uninstall({id:#x}) called from install: QEMU aborts"
        ));
        return;
    }
    let start = registry::with_ctx(id, |c| {
        if c.uninstalling || (reset && c.resetting) {
            return false;
        }
        c.resetting = reset;
        c.uninstalling = !reset;
        true
    });
    if start != Some(true) {
        return;
    }
    exclusive::queue(Box::new(move || {
        let _plugin_lock = crate::plugin_lock::lock();
        translate::flush_locked();
        registry::with_ctx(id, |c| c.cbs = Callbacks::default());
        if reset {
            registry::with_ctx(id, |c| c.resetting = false);
        } else {
            registry::remove_plugin(id);
        }
        if let Some(f) = cb {
            // SAFETY:
            // - plugin's completion callback, called once, as QEMU does.
            unsafe { f.plain(id) };
        }
    }));
    // A vCPU runs the work at its next safe point, an exclusive holder when it ends
    // its section; any other thread (no current_cpu) runs it now.
    if ctx::vcpu().is_none() && ctx::exclusive_depth() == 0 {
        exclusive::drain();
    }
}

fn register(name: &'static str, id: qemu_plugin_id_t, f: impl FnOnce(&mut Callbacks)) {
    guard(name, (), || {
        registry::update(id, f);
    })
}

/// Defines QEMU's C functions that take the plugin id, a callback and (from API 7) its
/// userdata, with the selected API's parameters; `$body` sees `id` and
/// `cb: Option<Registered<_>>`.
macro_rules! with_userdata {
    ($(#[$m:meta])* fn $name:ident($id:ident, $cb:ident: $shape:ty) $body:block) => {
        $(#[$m])*
        #[cfg(not(since_api_7))]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($id: qemu_plugin_id_t, cb: Option<$shape>) {
            let $cb = Registered::new(cb, ptr::null_mut());
            $body
        }
        $(#[$m])*
        #[cfg(since_api_7)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($id: qemu_plugin_id_t, cb: Option<$shape>, userdata: *mut c_void) {
            let $cb = Registered::new(cb, userdata);
            $body
        }
    };
}

with_userdata! {
    /// `qemu_plugin_uninstall`.
    fn qemu_plugin_uninstall(id, cb: PlainCb) {
        guard("qemu_plugin_uninstall", (), || reset_uninstall(id, cb, false))
    }
}

with_userdata! {
    /// `qemu_plugin_reset`.
    fn qemu_plugin_reset(id, cb: PlainCb) {
        guard("qemu_plugin_reset", (), || reset_uninstall(id, cb, true))
    }
}

/// One registration function per event: `name => slot: shape`.
macro_rules! registrations {
    ($($name:ident => $slot:ident: $shape:ty;)*) => {$(
        with_userdata! {
            #[doc = concat!("`", stringify!($name), "`.")]
            fn $name(id, cb: $shape) {
                register(stringify!($name), id, |c| c.$slot = cb)
            }
        }
    )*};
}

registrations! {
    qemu_plugin_register_vcpu_init_cb => vcpu_init: VcpuCb;
    qemu_plugin_register_vcpu_exit_cb => vcpu_exit: VcpuCb;
    qemu_plugin_register_vcpu_idle_cb => idle: VcpuCb;
    qemu_plugin_register_vcpu_resume_cb => resume: VcpuCb;
    qemu_plugin_register_vcpu_tb_trans_cb => tb_trans: TbTransCb;
    qemu_plugin_register_vcpu_syscall_cb => syscall: SyscallCb;
    qemu_plugin_register_vcpu_syscall_ret_cb => syscall_ret: SyscallRetCb;
    qemu_plugin_register_flush_cb => flush: PlainCb;
}

#[cfg(since_api_6)]
registrations! {
    qemu_plugin_register_vcpu_syscall_filter_cb => syscall_filter: crate::sys::SyscallFilterCb;
}

/// `qemu_plugin_register_atexit_cb` (a userdata under every API).
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_atexit_cb(
    id: qemu_plugin_id_t,
    cb: Option<UdataCb>,
    userdata: *mut c_void,
) {
    register("qemu_plugin_register_atexit_cb", id, |c| {
        c.atexit = Registered::new(cb, userdata);
    })
}

/// Records `cb` for every discontinuity kind whose bit is set in `type_`.
fn register_discon(id: qemu_plugin_id_t, type_: c_int, cb: Option<Registered<DisconCb>>) {
    register("qemu_plugin_register_vcpu_discon_cb", id, |c| {
        for (bit, slot) in c.discon.iter_mut().enumerate() {
            if type_ & (1 << bit) != 0 {
                *slot = cb;
            }
        }
    })
}

/// `qemu_plugin_register_vcpu_discon_cb` (QEMU 10.2): registers `cb` for every
/// discontinuity kind whose bit is set in `type_` (interrupt 1, exception 2,
/// host call 4; -1 for all).
#[cfg(not(since_api_7))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_discon_cb(
    id: qemu_plugin_id_t,
    type_: c_int,
    cb: Option<DisconCb>,
) {
    register_discon(id, type_, Registered::new(cb, ptr::null_mut()))
}

/// `qemu_plugin_register_vcpu_discon_cb`, API 7: with userdata.
#[cfg(since_api_7)]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_discon_cb(
    id: qemu_plugin_id_t,
    type_: c_int,
    cb: Option<DisconCb>,
    userdata: *mut c_void,
) {
    register_discon(id, type_, Registered::new(cb, userdata))
}

with_userdata! {
    /// `qemu_plugin_vcpu_for_each`: calls `cb` for every initialised vCPU, on the
    /// caller's thread.
    fn qemu_plugin_vcpu_for_each(id, cb: VcpuCb) {
        guard("qemu_plugin_vcpu_for_each", (), || {
            let Some(f) = cb else { return };
            if registry::with_ctx(id, |_| ()).is_none() {
                hostinfo::violation(format!(
                    "qemu_plugin_vcpu_for_each({id:#x}): not an installed plugin: QEMU aborts"
                ));
                return;
            }
            // QEMU holds plugin.lock while it calls back.
            let _plugin_lock = crate::plugin_lock::lock();
            let ready: Vec<c_uint> = vcpu::live_snapshot()
                .iter()
                .filter(|v| v.is_initialised())
                .map(|v| v.index)
                .collect();
            for i in ready {
                // SAFETY:
                // - plugin callback for this event, on the caller's thread as QEMU does.
                unsafe { f.vcpu(id, i) };
            }
        })
    }
}

/// `qemu_plugin_num_vcpus`: highest initialised vCPU index + 1.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_num_vcpus() -> c_int {
    guard("qemu_plugin_num_vcpus", 0, || {
        scoreboard::num_vcpus() as c_int
    })
}

/// `qemu_plugin_outs`: captured (and optionally echoed) by the host.
///
/// # Safety
/// `string` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_outs(string: *const c_char) {
    if string.is_null() {
        return;
    }
    // SAFETY:
    // - caller guarantees a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(string) };
    guard("qemu_plugin_outs", (), || {
        hostinfo::outs(&s.to_string_lossy())
    })
}

/// `qemu_plugin_bool_parse`: `on/yes/true/y` and `off/no/false/n`, like `qapi_bool_parse`.
///
/// # Safety
/// `name`/`val` are null or NUL-terminated; `ret` is null or writable.
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub unsafe extern "C" fn qemu_plugin_bool_parse(
    name: *const c_char,
    val: *const c_char,
    ret: *mut bool,
) -> bool {
    if name.is_null() || val.is_null() || ret.is_null() {
        return false;
    }
    // SAFETY:
    // - caller guarantees `val` is NUL-terminated.
    let v = unsafe { CStr::from_ptr(val) }.to_bytes();
    let parsed = match v {
        b"on" | b"yes" | b"true" | b"y" => true,
        b"off" | b"no" | b"false" | b"n" => false,
        _ => return false,
    };
    // SAFETY:
    // - caller guarantees `ret` is writable.
    unsafe { ret.write(parsed) };
    true
}

/// `qemu_plugin_path_to_binary`: a `g_malloc`'d copy (user mode), or null.
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_path_to_binary() -> *const c_char {
    guard("qemu_plugin_path_to_binary", ptr::null(), || {
        if memory::is_system() {
            return ptr::null();
        }
        if !task_state_reachable("qemu_plugin_path_to_binary") {
            return ptr::null();
        }
        hostinfo::facts()
            .path
            .map_or(ptr::null(), |p| glib::strdup(&p).cast_const())
    })
}

/// linux-user answers the program-layout queries from `get_task_state(current_cpu)`: off
/// a vCPU thread that is a NULL dereference (QEMU crashes), recorded as a violation.
fn task_state_reachable(api: &str) -> bool {
    if ctx::vcpu().is_none() {
        hostinfo::violation(format!(
            "{api} outside vCPU context in user mode: QEMU dereferences a NULL task state"
        ));
        return false;
    }
    true
}

fn code(api: &str, pick: fn(&hostinfo::Facts) -> u64) -> u64 {
    if memory::is_system() || !task_state_reachable(api) {
        0
    } else {
        pick(&hostinfo::facts())
    }
}

/// `qemu_plugin_start_code` (0 in system mode).
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_start_code() -> u64 {
    guard("qemu_plugin_start_code", 0, || {
        code("qemu_plugin_start_code", |f| f.start_code)
    })
}

/// `qemu_plugin_end_code` (0 in system mode).
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_end_code() -> u64 {
    guard("qemu_plugin_end_code", 0, || {
        code("qemu_plugin_end_code", |f| f.end_code)
    })
}

/// `qemu_plugin_entry_code` (0 in system mode).
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_entry_code() -> u64 {
    guard("qemu_plugin_entry_code", 0, || {
        code("qemu_plugin_entry_code", |f| f.entry_code)
    })
}

/// `qemu_plugin_request_time_control`: in system mode the first caller gets a
/// handle; in user mode, and for later callers, null.
#[unsafe(no_mangle)]
#[cfg(since_api_4)]
pub extern "C" fn qemu_plugin_request_time_control() -> *const c_void {
    guard("qemu_plugin_request_time_control", ptr::null(), || {
        if memory::is_system() && hostinfo::take_time_control() {
            ptr::from_ref(&hostinfo::TIME_HANDLE).cast()
        } else {
            ptr::null()
        }
    })
}

/// `qemu_plugin_update_ns`: sets the virtual clock if `handle` is the time-control handle.
#[unsafe(no_mangle)]
#[cfg(since_api_4)]
pub extern "C" fn qemu_plugin_update_ns(handle: *const c_void, time: i64) {
    guard("qemu_plugin_update_ns", (), || {
        if memory::is_system() && handle == ptr::from_ref(&hostinfo::TIME_HANDLE).cast() {
            hostinfo::set_time(time);
        }
    })
}

/// `qemu_plugin_n_vcpus` (APIs 0 and 1): the vCPU count in system mode, -1 in user mode.
#[cfg(not(since_api_2))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_n_vcpus() -> c_int {
    guard("qemu_plugin_n_vcpus", -1, || {
        if memory::is_system() {
            scoreboard::num_vcpus() as c_int
        } else {
            -1
        }
    })
}

/// `qemu_plugin_n_max_vcpus` (APIs 0 and 1): as `qemu_plugin_n_vcpus` in the mock.
#[cfg(not(since_api_2))]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_n_max_vcpus() -> c_int {
    guard("qemu_plugin_n_max_vcpus", -1, || {
        if memory::is_system() {
            scoreboard::num_vcpus() as c_int
        } else {
            -1
        }
    })
}
