//! C entry points for plugin lifecycle, per-event callback registration, vCPU
//! queries, output, argument parsing, binary facts and time control.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr;

use super::guard;
use crate::registry::{self, Callbacks, qemu_plugin_vcpu_discon_cb_t};
use crate::sys::{
    qemu_plugin_id_t, qemu_plugin_simple_cb_t, qemu_plugin_udata_cb_t,
    qemu_plugin_vcpu_simple_cb_t, qemu_plugin_vcpu_syscall_cb_t, qemu_plugin_vcpu_syscall_ret_cb_t,
    qemu_plugin_vcpu_tb_trans_cb_t,
};
use crate::{ctx, exclusive, glib, hostinfo, memory, scoreboard, translate, vcpu};

/// `plugin_reset_uninstall`: asynchronous; with every vCPU stopped, flush TBs,
/// unregister all callbacks, (uninstall: forget the plugin), then call `cb(id)`.
fn reset_uninstall(id: qemu_plugin_id_t, cb: qemu_plugin_simple_cb_t, reset: bool) {
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
            // - plugin's completion callback, called once with its id as QEMU does.
            unsafe { f(id) };
        }
    }));
    // A vCPU runs the work at its next safe point, an exclusive holder when it ends
    // its section; any other thread (no current_cpu) runs it now.
    if ctx::vcpu().is_none() && ctx::exclusive_depth() == 0 {
        exclusive::drain();
    }
}

/// `qemu_plugin_uninstall`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_uninstall(id: qemu_plugin_id_t, cb: qemu_plugin_simple_cb_t) {
    guard("qemu_plugin_uninstall", (), || {
        reset_uninstall(id, cb, false)
    })
}

/// `qemu_plugin_reset`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_reset(id: qemu_plugin_id_t, cb: qemu_plugin_simple_cb_t) {
    guard("qemu_plugin_reset", (), || reset_uninstall(id, cb, true))
}

fn register(name: &'static str, id: qemu_plugin_id_t, f: impl FnOnce(&mut Callbacks)) {
    guard(name, (), || {
        registry::update(id, f);
    })
}

/// `qemu_plugin_register_vcpu_init_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_init_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_simple_cb_t,
) {
    register("qemu_plugin_register_vcpu_init_cb", id, |c| {
        c.vcpu_init = cb
    })
}

/// `qemu_plugin_register_vcpu_exit_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_exit_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_simple_cb_t,
) {
    register("qemu_plugin_register_vcpu_exit_cb", id, |c| {
        c.vcpu_exit = cb
    })
}

/// `qemu_plugin_register_vcpu_idle_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_idle_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_simple_cb_t,
) {
    register("qemu_plugin_register_vcpu_idle_cb", id, |c| c.idle = cb)
}

/// `qemu_plugin_register_vcpu_resume_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_resume_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_simple_cb_t,
) {
    register("qemu_plugin_register_vcpu_resume_cb", id, |c| c.resume = cb)
}

/// `qemu_plugin_register_vcpu_tb_trans_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_tb_trans_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_tb_trans_cb_t,
) {
    register("qemu_plugin_register_vcpu_tb_trans_cb", id, |c| {
        c.tb_trans = cb
    })
}

/// `qemu_plugin_register_vcpu_syscall_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_syscall_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_syscall_cb_t,
) {
    register("qemu_plugin_register_vcpu_syscall_cb", id, |c| {
        c.syscall = cb
    })
}

/// `qemu_plugin_register_vcpu_syscall_ret_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_syscall_ret_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_syscall_ret_cb_t,
) {
    register("qemu_plugin_register_vcpu_syscall_ret_cb", id, |c| {
        c.syscall_ret = cb
    })
}

/// `qemu_plugin_register_flush_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_flush_cb(id: qemu_plugin_id_t, cb: qemu_plugin_simple_cb_t) {
    register("qemu_plugin_register_flush_cb", id, |c| c.flush = cb)
}

/// `qemu_plugin_register_atexit_cb`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_atexit_cb(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_udata_cb_t,
    userdata: *mut c_void,
) {
    register("qemu_plugin_register_atexit_cb", id, |c| {
        c.atexit = cb;
        c.atexit_udata = userdata as usize;
    })
}

/// `qemu_plugin_register_vcpu_discon_cb` (QEMU 10.2): registers `cb` for every
/// discontinuity kind whose bit is set in `type_` (interrupt 1, exception 2,
/// host call 4; -1 for all).
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_register_vcpu_discon_cb(
    id: qemu_plugin_id_t,
    type_: c_int,
    cb: qemu_plugin_vcpu_discon_cb_t,
) {
    register("qemu_plugin_register_vcpu_discon_cb", id, |c| {
        for (bit, slot) in c.discon.iter_mut().enumerate() {
            if type_ & (1 << bit) != 0 {
                *slot = cb;
            }
        }
    })
}

/// `qemu_plugin_vcpu_for_each`: calls `cb` for every initialised vCPU, on the caller's thread.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_vcpu_for_each(
    id: qemu_plugin_id_t,
    cb: qemu_plugin_vcpu_simple_cb_t,
) {
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
            // - plugin callback with QEMU's signature.
            unsafe { f(id, i) };
        }
    })
}

/// `qemu_plugin_num_vcpus`: highest initialised vCPU index + 1.
#[unsafe(no_mangle)]
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
pub extern "C" fn qemu_plugin_start_code() -> u64 {
    guard("qemu_plugin_start_code", 0, || {
        code("qemu_plugin_start_code", |f| f.start_code)
    })
}

/// `qemu_plugin_end_code` (0 in system mode).
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_end_code() -> u64 {
    guard("qemu_plugin_end_code", 0, || {
        code("qemu_plugin_end_code", |f| f.end_code)
    })
}

/// `qemu_plugin_entry_code` (0 in system mode).
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_entry_code() -> u64 {
    guard("qemu_plugin_entry_code", 0, || {
        code("qemu_plugin_entry_code", |f| f.entry_code)
    })
}

/// `qemu_plugin_request_time_control`: in system mode the first caller gets a
/// handle; in user mode, and for later callers, null.
#[unsafe(no_mangle)]
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
pub extern "C" fn qemu_plugin_update_ns(handle: *const c_void, time: i64) {
    guard("qemu_plugin_update_ns", (), || {
        if memory::is_system() && handle == ptr::from_ref(&hostinfo::TIME_HANDLE).cast() {
            hostinfo::set_time(time);
        }
    })
}
