//! The one generic trampoline every `extern "C"` entry point calls: it runs the Rust side
//! of a callback, catches a panic, and turns a panic or an `Err` into a report (see
//! [`super::failure`]) and the C-side return value. Nothing unwinds into QEMU.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::Result;

/// Which callback a failure happened in; named in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Install,
    VcpuInit,
    VcpuExit,
    VcpuIdle,
    VcpuResume,
    Translate,
    Exec,
    Memory,
    Syscall,
    SyscallReturn,
    Discontinuity,
    Flush,
    AtExit,
    Uninstall,
    Reset,
    ForEach,
    Fork,
    Execve,
}

impl Hook {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hook::Install => "install",
            Hook::VcpuInit => "vcpu_init",
            Hook::VcpuExit => "vcpu_exit",
            Hook::VcpuIdle => "vcpu_idle",
            Hook::VcpuResume => "vcpu_resume",
            Hook::Translate => "translate",
            Hook::Exec => "exec",
            Hook::Memory => "memory",
            Hook::Syscall => "syscall",
            Hook::SyscallReturn => "syscall_return",
            Hook::Discontinuity => "discontinuity",
            Hook::Flush => "flush",
            Hook::AtExit => "on_exit",
            Hook::Uninstall => "uninstall",
            Hook::Reset => "reset",
            Hook::ForEach => "vcpu_for_each",
            Hook::Fork => "fork (child)",
            Hook::Execve => "execve (report before it)",
        }
    }
}

/// Runs `f` for the callback `hook`, returning its value, or `fallback` after reporting
/// an `Err` or a caught panic.
///
/// The happy path costs what `f` costs: `catch_unwind` is a landing pad, not a check.
#[inline(always)]
pub(crate) fn guard<R>(hook: Hook, fallback: R, f: impl FnOnce() -> Result<R>) -> R {
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
