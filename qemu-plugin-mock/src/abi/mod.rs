//! The QEMU plugin C API, defined in-process with `#[unsafe(no_mangle)]` and the exact
//! signatures of `qemu_plugin_sys`. Every entry point funnels through [`guard`].

mod lifecycle;
mod mem;
// Registers and scoreboards arrived with API 2 (QEMU 9.0).
#[cfg(since_api_2)]
mod regs;
#[cfg(since_api_2)]
mod score;
mod tb;

pub use lifecycle::*;
pub use mem::*;
#[cfg(since_api_2)]
pub use regs::*;
#[cfg(since_api_2)]
pub use score::*;
pub use tb::*;

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::hostinfo;

/// Runs the body of a C entry point: a panic (a bug in the mock) is caught, recorded
/// as a violation, and turned into `fallback`, so nothing unwinds into C.
#[inline(always)]
pub(crate) fn guard<R>(name: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            panicked(name, payload);
            fallback
        }
    }
}

#[cold]
fn panicked(name: &'static str, payload: Box<dyn std::any::Any + Send>) {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    hostinfo::violation(format!("{name}: mock panicked: {msg}"));
}
