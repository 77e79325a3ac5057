//! Time control: one plugin may take over QEMU's virtual clock and advance it.

use std::ffi::c_void;

use crate::sys;

/// The right to move QEMU's virtual clock (only one plugin gets it).
/// Needs: QEMU 9.2 (plugin API v4).
#[derive(Debug)]
pub struct TimeControl(*const c_void);

// SAFETY: the handle is an opaque token QEMU checks by identity; QEMU's update_ns may be
// called from any thread.
unsafe impl Send for TimeControl {}
// SAFETY: as above; the token is never dereferenced by us.
unsafe impl Sync for TimeControl {}

/// Asks for control of time. `None` if another plugin already has it. Call it at
/// install. Needs: QEMU 9.2 (plugin API v4).
pub fn qemu_plugin_request_time_control() -> Option<TimeControl> {
    // SAFETY: a plain request; QEMU returns a token or NULL.
    let h = unsafe { sys::qemu_plugin_request_time_control() };
    (!h.is_null()).then_some(TimeControl(h))
}

impl TimeControl {
    /// Sets the virtual clock to `ns` nanoseconds (it must not go backwards).
    pub fn update_ns(&self, ns: i64) {
        // SAFETY: `self.0` is the token QEMU handed out.
        unsafe { sys::qemu_plugin_update_ns(self.0, ns) };
    }
}

/// Sets the virtual clock through `handle`. Needs: QEMU 9.2 (plugin API v4).
pub fn qemu_plugin_update_ns(handle: &TimeControl, time: i64) {
    handle.update_ns(time)
}
