//! What happens when user code fails inside a callback: one report through
//! `qemu_plugin_outs` naming the callback (with the panic's message and location), then
//! the plugin uninstalls itself so QEMU goes on running the guest without it. From the
//! report on, the runtime's hooks call no more user code ([`stopped`]).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use super::hook::Hook;
use crate::error::Error;
use crate::error::Failure;
use crate::sys::callback_abi::{self as abi, qemu_callback};

static INSTALLING: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);
/// An uninstall that a failure in the runtime's vCPU exit hook left for a hook of a live
/// vCPU.
static DEFERRED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    /// Message and location of the last panic on this thread, recorded by our panic hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set while the per-vCPU runtime's vCPU exit hook runs on this thread.
    static IN_EXIT_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Remembers the plugin id (needed to uninstall) and installs the panic hook that records
/// a panic's location, which `catch_unwind`'s payload lacks.
pub(crate) fn prepare(id: crate::sys::qemu_plugin_id_t) {
    crate::identity::set_id(id);
    REPORTED.store(false, Ordering::Relaxed);
    DEFERRED.store(false, Ordering::Relaxed);
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = payload_text(info.payload());
            let text = match info.location() {
                Some(l) => format!("{message} at {}:{}:{}", l.file(), l.line(), l.column()),
                None => message,
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            // QEMU's own threads are unnamed: their panics are caught by a trampoline and
            // reported once through qemu_plugin_outs. Named threads (the plugin's own, or
            // a test harness's) keep the default report.
            if std::thread::current().name().is_some() {
                previous(info);
            }
        }));
    });
}

/// Whether QEMU is inside the plugin's `qemu_plugin_install` now.
pub(crate) fn installing() -> bool {
    INSTALLING.load(Ordering::Relaxed)
}

pub(crate) fn set_installing(on: bool) {
    INSTALLING.store(on, Ordering::Relaxed);
}

/// Prints an install failure: one line on stderr, next to QEMU's own "Could not load
/// plugin" line (QEMU itself only prints the return code).
pub(crate) fn install_error(error: &Error) {
    let line = format!("{}: {error}\n", crate::identity::name());
    // Not `eprint!`, which panics if stderr is closed.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

#[cold]
#[inline(never)]
pub(crate) fn error(hook: Hook, error: &Error) {
    fail(hook, format!("error: {error}"));
}

#[cold]
#[inline(never)]
pub(crate) fn panic(hook: Hook, payload: Box<dyn Any + Send>) {
    let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
    let text = recorded.unwrap_or_else(|| payload_text(&*payload));
    // Dropping a payload can itself panic; never let that escape.
    let _ = panic::catch_unwind(panic::AssertUnwindSafe(move || drop(payload)));
    fail(hook, format!("panic: {text}"));
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

fn fail(hook: Hook, what: String) {
    if INSTALLING.load(Ordering::Relaxed) {
        // qemu_plugin_install turns this into a refusal; QEMU forbids uninstalling here.
        let _ = panic::catch_unwind(|| {
            install_error(&Error::from(Failure::Other(format!(
                "in {}: {what}",
                hook.name()
            ))))
        });
        return;
    }
    if REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let uninstall = !matches!(
        hook,
        Hook::AtExit | Hook::Flush | Hook::Uninstall | Hook::Reset
    );
    let line = format!(
        "{}: {what} (in the {} callback){}\n",
        crate::identity::name(),
        hook.name(),
        if uninstall {
            "; uninstalling the plugin, the guest continues"
        } else {
            ""
        }
    );
    let _ = panic::catch_unwind(|| crate::api::misc::outs_raw(&line));
    if uninstall && IN_EXIT_HOOK.with(Cell::get) {
        // QEMU queues the request as safe work on the calling vCPU (`current_cpu`), and
        // an exiting vCPU never runs it: `cpu_common_finalize` frees it unrun, and the
        // plugin, marked as uninstalling, could not ask again. So the runtime's next hook
        // on a live vCPU asks ([`stopped`]).
        DEFERRED.store(true, Ordering::Relaxed);
    } else if uninstall {
        request_uninstall();
    }
}

/// Runs `f`, the per-vCPU runtime's vCPU exit hook (which catches every failure): an
/// uninstall that a failure in it calls for is left to the runtime's next hook on a live
/// vCPU ([`stopped`]).
pub(crate) fn in_exit_hook<R>(f: impl FnOnce() -> R) -> R {
    IN_EXIT_HOOK.with(|c| c.set(true));
    let r = f();
    IN_EXIT_HOOK.with(|c| c.set(false));
    r
}

/// Whether a failure has been reported since install: the runtime's hooks then call no
/// more user code (the plugin is on its way out; at QEMU's exit, `merge` and `on_exit`
/// must not see a total a failed call may have left half-updated). A hook running on a
/// live vCPU passes `on_live_vcpu`, and asks QEMU for an uninstall that a failure in a
/// vCPU's exit hook left to it.
#[inline]
pub(crate) fn stopped(on_live_vcpu: bool) -> bool {
    if !REPORTED.load(Ordering::Relaxed) {
        return false;
    }
    if on_live_vcpu && DEFERRED.swap(false, Ordering::Relaxed) {
        request_uninstall();
    }
    true
}

fn request_uninstall() {
    // SAFETY:
    // - the id is the one QEMU gave us at install;
    // - we are not inside qemu_plugin_install, the one place QEMU forbids this call: a
    //   failure there returns from `fail` before anything else, so neither `fail` nor
    //   `stopped` (which needs `DEFERRED`, set only by `fail`) gets here then;
    // - QEMU accepts repeated requests (a second one is ignored), and the callback is
    //   a plain function of this object, which `host::pin_module` keeps mapped.
    unsafe {
        abi::uninstall(
            crate::identity::id(),
            Some(uninstalled),
            std::ptr::null_mut(),
        )
    };
}

qemu_callback!(
    /// QEMU has removed the plugin: its id is invalid from now on (QEMU aborts on it), which
    /// the scoreboard accesses that borrow QEMU's lock through `vcpu_for_each` must know.
    plain fn uninstalled[](_ud) {
    crate::identity::set_uninstalled();
});
