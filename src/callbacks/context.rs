//! What QEMU guarantees about the thread plugin code runs on, recorded per thread by the
//! one generic trampoline ([`super::trampoline::guard`]), and what the crate does where a
//! guarantee is missing:
//!
//! - **Is this a vCPU thread?** QEMU's register and guest-memory functions
//!   `g_assert(current_cpu)`, which holds only on vCPU threads: elsewhere (the main
//!   thread at a system-mode exit, a thread the plugin spawned, the install) QEMU aborts.
//!   Every callback QEMU runs for a vCPU on its thread marks the thread; the crate
//!   registers a vCPU-init callback for every plugin (chained to the plugin's own), so
//!   each vCPU thread is marked before it executes guest code. [`require_vcpu_thread`]
//!   turns an unmarked thread into an error instead of an abort.
//! - **Can QEMU's scoreboards move now?** QEMU reallocates every scoreboard when a new
//!   vCPU's index outgrows them (`plugin_grow_scoreboards__locked`), inside
//!   `start_exclusive` and holding `plugin.lock`. That only excludes threads inside
//!   `cpu_exec` (exec-time, translation and discontinuity callbacks) or holding the
//!   lock. Lifecycle, syscall and exit callbacks run outside `cpu_exec`, as do threads the
//!   plugin spawned, so a scoreboard access there could touch freed memory.
//!   [`with_boards_pinned`] runs such an access under `plugin.lock`, which QEMU holds
//!   while it calls back from `qemu_plugin_vcpu_for_each`.
//!
//! The exec-time hot path records nothing: QEMU runs it inside `cpu_exec` on a vCPU
//! thread already marked at its init.

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::hook::Hook;
use crate::error::Failure;
use crate::error::{Error, Result};
use crate::sys::callback_abi::{self as abi, qemu_callback};
use std::ptr;

/// A type-erased `FnMut()`: a caller and the closure's address.
// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
type Pending = (unsafe fn(*mut c_void), *mut c_void);

thread_local! {
    /// QEMU has run a callback for a vCPU on this thread: its `current_cpu` is set.
    static VCPU_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Nesting depth of callbacks QEMU runs outside `cpu_exec`.
    static OUTSIDE_EXEC: Cell<u32> = const { Cell::new(0) };
    /// Nesting depth of callbacks during which no scoreboard can move (QEMU holds
    /// `plugin.lock`, or an exclusive section).
    static PINNED: Cell<u32> = const { Cell::new(0) };
    /// The access [`with_boards_pinned`] waits to run from `qemu_plugin_vcpu_for_each`.
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
}

/// What a callback of kind `hook` tells about its thread.
#[derive(Clone, Copy)]
struct Facts {
    vcpu_thread: bool,
    outside_exec: bool,
    pinned: bool,
}

impl Facts {
    const fn of(hook: Hook) -> Facts {
        let (vcpu_thread, outside_exec, pinned) = match hook {
            // Inside `cpu_exec`, on a vCPU thread already marked: record nothing.
            Hook::Exec | Hook::Memory => (false, false, false),
            // Inside `cpu_exec` too, and cold.
            Hook::Translate | Hook::Discontinuity => (true, false, false),
            // From QEMU 9.0 (API 2) vCPU init runs on the vCPU's own thread; before, QEMU
            // runs it on the thread that creates the vCPU (cpu.c, `cpu_exec_realizefn`),
            // for the first vCPU before any `current_cpu` is set (QEMU 7.2's
            // `qemu_plugin_entry_code` crashes there).
            Hook::VcpuInit if !cfg!(since_api_2) => (false, true, false),
            // On the vCPU's thread, outside `cpu_exec`.
            Hook::VcpuInit
            | Hook::VcpuExit
            | Hook::VcpuIdle
            | Hook::VcpuResume
            | Hook::Syscall
            | Hook::SyscallFilter
            | Hook::SyscallReturn
            | Hook::Execve => (true, true, false),
            // Any thread (a vCPU's when the guest or a device exits), outside `cpu_exec`.
            Hook::AtExit => (false, true, false),
            // QEMU holds `plugin.lock` (uninstall, reset, vcpu_for_each), or runs the
            // flush in an exclusive section; no vCPU exists yet at install.
            Hook::Install | Hook::Uninstall | Hook::Reset | Hook::ForEach | Hook::Flush => {
                (false, false, true)
            }
        };
        Facts {
            vcpu_thread,
            outside_exec,
            pinned,
        }
    }
}

/// Undoes [`enter`] when the callback returns.
pub(crate) struct Scope(Facts);

impl Drop for Scope {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.outside_exec {
            OUTSIDE_EXEC.with(|d| d.set(d.get() - 1));
        }
        if self.0.pinned {
            PINNED.with(|d| d.set(d.get() - 1));
        }
    }
}

/// Records what a callback of kind `hook` tells about the calling thread, until the
/// returned scope drops. For exec-time callbacks, nothing (a constant after inlining).
#[inline(always)]
pub(crate) fn enter(hook: Hook) -> Scope {
    let facts = Facts::of(hook);
    if facts.vcpu_thread {
        VCPU_THREAD.with(|v| v.set(true));
    }
    if facts.outside_exec {
        OUTSIDE_EXEC.with(|d| d.set(d.get() + 1));
    }
    if facts.pinned {
        PINNED.with(|d| d.set(d.get() + 1));
    }
    Scope(facts)
}

/// Whether QEMU has run a vCPU's callback on this thread (so its `current_cpu` is set).
pub(crate) fn on_vcpu_thread() -> bool {
    VCPU_THREAD.with(Cell::get)
}

/// `Ok` on a vCPU thread; elsewhere the error QEMU's `g_assert(current_cpu)` in `api`
/// would otherwise turn into an abort of the whole emulator.
#[cfg_attr(not(since_api_1), allow(dead_code))]
pub(crate) fn require_vcpu_thread(api: &'static str) -> Result<()> {
    if on_vcpu_thread() {
        Ok(())
    } else {
        Err(Error::from(Failure::NotOnVcpuThread { api }))
    }
}

/// Whether scoreboards cannot move while this thread runs plugin code here.
// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
fn boards_pinned_here() -> bool {
    PINNED.with(Cell::get) > 0
        || super::failure::installing()
        || (on_vcpu_thread() && OUTSIDE_EXEC.with(Cell::get) == 0)
}

/// Runs `access` (a read or write of scoreboard entries) where no scoreboard can move:
/// directly inside `cpu_exec`, under `plugin.lock` or an exclusive section; anywhere
/// else from inside `qemu_plugin_vcpu_for_each`, which holds `plugin.lock` for its
/// callback (a growing vCPU takes it after `start_exclusive`, so it waits).
///
/// Two cases run `access` directly, unprotected, for want of any way to take QEMU's
/// lock: if QEMU has no initialised vCPU, `qemu_plugin_vcpu_for_each` calls nothing (a
/// growth then needs a vCPU index of 16 or more, so 16 vCPUs created and not one of
/// them initialised, which linux-user and system mode never have at once); and once
/// QEMU has uninstalled the plugin, its id is invalid (QEMU would abort on it).
// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
pub(crate) fn with_boards_pinned<R>(access: impl FnOnce() -> R) -> R {
    if boards_pinned_here() || crate::identity::uninstalled() {
        return access();
    }
    let mut access = Some(access);
    let mut result = None;
    let mut run = || {
        if let Some(access) = access.take() {
            result = Some(catch_unwind(AssertUnwindSafe(access)));
        }
    };
    /// Calls the `FnMut()` at `data`.
    ///
    /// # Safety
    /// `data` points to a live `F`, not otherwise borrowed.
    unsafe fn call<F: FnMut()>(data: *mut c_void) {
        // SAFETY: per the contract.
        unsafe { (*data.cast::<F>())() }
    }
    fn call_of<F: FnMut()>(_: &F) -> unsafe fn(*mut c_void) {
        call::<F>
    }
    let pending = (call_of(&run), (&raw mut run).cast::<c_void>());
    PENDING.with(|p| p.set(Some(pending)));
    // SAFETY: `run_pending` is a plain function of this object with the signature QEMU
    // expects; QEMU calls it on this thread before returning, and `run` outlives the call.
    unsafe { abi::vcpu_for_each(crate::identity::id(), Some(run_pending), ptr::null_mut()) };
    PENDING.with(|p| p.set(None));
    // `run` (which borrows `access` and `result`) is not used after this point.
    match result {
        Some(Ok(value)) => value,
        Some(Err(panic)) => resume_unwind(panic),
        // No vCPU to call back for (see above); `run` did not take `access`.
        None => match access.take() {
            Some(access) => access(),
            None => unreachable!("the access ran without leaving a result"),
        },
    }
}

qemu_callback!(
    /// `qemu_plugin_vcpu_for_each`'s callback for [`with_boards_pinned`]: runs the pending
    /// access once (QEMU calls it for every vCPU), with `plugin.lock` held by QEMU.
    #[cfg_attr(not(since_api_2), allow(dead_code))]
    vcpu fn run_pending[](_ud, _vcpu) {
    if let Some((call, data)) = PENDING.with(Cell::take) {
        PINNED.with(|d| d.set(d.get() + 1));
        // SAFETY: `with_boards_pinned` stored a caller of the closure at `data`, which
        // lives until `qemu_plugin_vcpu_for_each` returns; the closure catches panics.
        unsafe { call(data) };
        PINNED.with(|d| d.set(d.get() - 1));
    }
});
