//! Host-wide facts and sinks shared with the C functions: the configuration the
//! plugin can query, captured `qemu_plugin_outs` output, recorded API misuse, and
//! the virtual clock of time control.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::sync::{Mutex, MutexGuard};

/// What `qemu_plugin_path_to_binary` and the `*_code` queries report (user mode).
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    pub(crate) path: Option<CString>,
    pub(crate) start_code: u64,
    pub(crate) end_code: u64,
    pub(crate) entry_code: u64,
}

static FACTS: Mutex<Option<Facts>> = Mutex::new(None);
static OUTPUT: Mutex<String> = Mutex::new(String::new());
static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static ECHO: AtomicBool = AtomicBool::new(false);
static TIME_TAKEN: AtomicBool = AtomicBool::new(false);
static TIME_SET: AtomicBool = AtomicBool::new(false);
static TIME_NS: AtomicI64 = AtomicI64::new(0);
/// The handle `qemu_plugin_request_time_control` hands out (QEMU: `&has_control`).
pub(crate) static TIME_HANDLE: u8 = 0;

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock()
}

/// Sets the facts and echo.
pub(crate) fn configure(facts: Facts, echo: bool) {
    *lock(&FACTS) = Some(facts);
    ECHO.store(echo, Ordering::Relaxed);
}

/// The configured facts.
pub(crate) fn facts() -> Facts {
    lock(&FACTS).clone().unwrap_or_default()
}

/// Appends plugin output (`qemu_plugin_outs`), echoing it to stderr if configured.
pub(crate) fn outs(s: &str) {
    lock(&OUTPUT).push_str(s);
    if ECHO.load(Ordering::Relaxed) {
        eprint!("{s}");
    }
}

/// Everything the plugin printed so far.
pub(crate) fn output() -> String {
    lock(&OUTPUT).clone()
}

/// Takes (and clears) the captured output.
pub(crate) fn take_output() -> String {
    std::mem::take(&mut *lock(&OUTPUT))
}

/// Records a misuse of the API that QEMU would assert on or that is undefined.
#[cold]
pub(crate) fn violation(msg: String) {
    lock(&VIOLATIONS).push(msg);
}

/// Recorded misuses.
pub(crate) fn violations() -> Vec<String> {
    lock(&VIOLATIONS).clone()
}

/// `qemu_plugin_request_time_control`: the first request wins (system mode).
pub(crate) fn take_time_control() -> bool {
    !TIME_TAKEN.swap(true, Ordering::AcqRel)
}

/// `qemu_plugin_update_ns` with the right handle.
pub(crate) fn set_time(ns: i64) {
    TIME_NS.store(ns, Ordering::Release);
    TIME_SET.store(true, Ordering::Release);
}

/// The virtual time the plugin last set, if any.
pub(crate) fn time() -> Option<i64> {
    TIME_SET
        .load(Ordering::Acquire)
        .then(|| TIME_NS.load(Ordering::Acquire))
}

/// Clears everything (host teardown).
pub(crate) fn reset() {
    *lock(&FACTS) = None;
    lock(&OUTPUT).clear();
    lock(&VIOLATIONS).clear();
    ECHO.store(false, Ordering::Relaxed);
    TIME_TAKEN.store(false, Ordering::Release);
    TIME_SET.store(false, Ordering::Release);
    TIME_NS.store(0, Ordering::Release);
}
