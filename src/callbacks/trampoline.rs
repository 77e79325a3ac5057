//! The one generic trampoline every `extern "C"` entry point calls: it runs the Rust side
//! of a callback, records what the callback's kind tells about its thread (see
//! [`super::context`]), catches a panic, and turns a panic or an `Err` into a report (see
//! [`super::failure`]) and the C-side return value. Nothing unwinds into QEMU.

use std::panic::{AssertUnwindSafe, catch_unwind};

pub(crate) use super::hook::Hook;
use crate::error::Result;

/// Runs `f` for the callback `hook`, returning its value, or `fallback` after reporting
/// an `Err` or a caught panic.
///
/// The happy path costs what `f` costs: `catch_unwind` is a landing pad, not a check.
#[inline(always)]
pub(crate) fn guard<R>(hook: Hook, fallback: R, f: impl FnOnce() -> Result<R>) -> R {
    let _scope = super::context::enter(hook);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            super::failure::error(hook, &error);
            fallback
        }
        Err(payload) => {
            super::failure::panic(hook, payload);
            fallback
        }
    }
}
