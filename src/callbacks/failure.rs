//! What happens when user code fails inside a callback: one report through
//! `qemu_plugin_outs` naming the callback (with the panic's message and location), then
//! the plugin uninstalls itself so QEMU goes on running the guest without it.

use std::any::Any;
use std::cell::RefCell;
use std::panic;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::trampoline::Hook;
use crate::error::Error;
use crate::sys;

static PLUGIN_ID: AtomicU64 = AtomicU64::new(0);
static INSTALLING: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    /// Message and location of the last panic on this thread, recorded by our panic hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Remembers the plugin id (needed to uninstall) and installs the panic hook that records
/// a panic's location, which `catch_unwind`'s payload lacks.
pub(crate) fn prepare(id: sys::qemu_plugin_id_t) {
    PLUGIN_ID.store(id, Ordering::Relaxed);
    REPORTED.store(false, Ordering::Relaxed);
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

pub(crate) fn set_installing(on: bool) {
    INSTALLING.store(on, Ordering::Relaxed);
}

/// The id QEMU gave this plugin at install.
pub(crate) fn plugin_id() -> sys::qemu_plugin_id_t {
    PLUGIN_ID.load(Ordering::Relaxed)
}

/// Prints an install failure: one line on stderr, next to QEMU's own "Could not load
/// plugin" line (QEMU itself only prints the return code).
pub(crate) fn install_error(error: &Error) {
    let line = format!("{}: {error}\n", crate::install::plugin_name());
    eprint!("{line}");
    #[cfg(any(test, feature = "mock"))]
    crate::api::misc::outs_raw(&line);
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
            install_error(&Error::Other(format!("in {}: {what}", hook.name())))
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
        crate::install::plugin_name(),
        hook.name(),
        if uninstall {
            "; uninstalling the plugin, the guest continues"
        } else {
            ""
        }
    );
    let _ = panic::catch_unwind(|| crate::api::misc::outs_raw(&line));
    if uninstall {
        // SAFETY:
        // - the id is the one QEMU gave us at install;
        // - we are not inside qemu_plugin_install (checked above), the one place QEMU
        //   forbids this call;
        // - QEMU accepts repeated requests (a second one is ignored), and the callback is
        //   a plain function of this object, which `host::pin_module` keeps mapped.
        unsafe { sys::qemu_plugin_uninstall(plugin_id(), Some(uninstalled)) };
    }
}

extern "C" fn uninstalled(_id: sys::qemu_plugin_id_t) {}
