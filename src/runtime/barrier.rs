//! The asymmetric fence that lets exit-time code take a vCPU's shard while that vCPU's
//! thread may still be entering a syscall or lifecycle hook, without a read-modify-write
//! on the hook's path.
//!
//! The hook side ([`light`]) is a compiler fence; the exit side ([`heavy`]) is a
//! `membarrier(2)` call, which makes every running thread of the process execute a full
//! memory barrier. Together they order "hook marks itself busy, then checks closed"
//! against "exit marks closed, then checks busy" (the store-load pattern of Dekker's
//! algorithm). Where `membarrier` is unavailable both sides use `fence(SeqCst)`, and so
//! does a forked child (see [`after_fork_child`]).

use std::ffi::c_long;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering, compiler_fence, fence};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::annotate;

const UNSET: u8 = 0;
const FENCES: u8 = 1;
const PRIVATE: u8 = 2;
const GLOBAL: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(UNSET);
/// This process is a forked child of the one that chose `MODE`.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

const CMD_QUERY: c_long = 0;
const CMD_GLOBAL: c_long = 1;
const CMD_PRIVATE_EXPEDITED: c_long = 8;
const CMD_REGISTER_PRIVATE_EXPEDITED: c_long = 16;

#[cfg(target_arch = "x86_64")]
const SYS_MEMBARRIER: Option<c_long> = Some(324);
#[cfg(target_arch = "aarch64")]
const SYS_MEMBARRIER: Option<c_long> = Some(283);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYS_MEMBARRIER: Option<c_long> = None;

unsafe extern "C" {
    fn syscall(number: c_long, ...) -> c_long;
}

fn membarrier(cmd: c_long) -> c_long {
    match SYS_MEMBARRIER {
        // SAFETY: membarrier(cmd, flags=0, cpu_id=0) only affects memory ordering; it
        // reads and writes no user memory.
        Some(nr) => unsafe { syscall(nr, cmd, 0 as c_long, 0 as c_long) },
        None => -1,
    }
}

/// Registration with `membarrier`, running in the background (it waits for an RCU grace
/// period in a multi-threaded process: about 8 ms inside QEMU).
/// Holds the registering thread and the process that spawned it.
static REGISTERING: Mutex<Option<(JoinHandle<()>, u32)>> = Mutex::new(None);

fn choose() {
    let supported = membarrier(CMD_QUERY);
    let mode = if supported > 0
        && supported & CMD_PRIVATE_EXPEDITED != 0
        && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    {
        PRIVATE
    } else if supported > 0 && supported & CMD_GLOBAL != 0 {
        GLOBAL
    } else {
        FENCES
    };
    MODE.store(mode, Ordering::Relaxed);
}

/// Chooses the mechanism, off the install path: until the choice is made `MODE` reads
/// `UNSET`, which makes hooks use full fences, so they are ordered either way.
pub(crate) fn init() {
    // `MODE` is an atomic read by hooks on any thread while the registration thread may
    // store it; what orders those uses is argued above and in `heavy`, not a lock.
    annotate::atomic_only(&MODE);
    if MODE.load(Ordering::Relaxed) != UNSET {
        return;
    }
    let mut slot = REGISTERING.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return;
    }
    match std::thread::Builder::new()
        .name("qemu-plugin-membarrier".into())
        .spawn(choose)
    {
        Ok(handle) => *slot = Some((handle, std::process::id())),
        Err(_) => choose(),
    }
}

/// Whether an exec-time callback registered now must check the mode at each event
/// ([`light_exec::<true>`]): until `membarrier` is registered, and in a forked child.
/// A callback registered with compiler fences stays correct for the life of its block:
/// `MODE` never goes back to FENCES but in a forked child, whose [`heavy`] then issues a
/// real barrier of its own.
///
/// While the background registration is still running (the first translations of a
/// run), this waits for it once, so that no block, least of all a hot loop translated
/// early, gets the checking trampoline: only a forked child, or a kernel without
/// `membarrier`, leaves `MODE` below PRIVATE.
pub(crate) fn exec_fenced() -> bool {
    if MODE.load(Ordering::Relaxed) == UNSET {
        wait_for_registration();
    }
    MODE.load(Ordering::Relaxed) < PRIVATE
}

/// Joins the registration thread, if it is still pending in this process (as [`heavy`]
/// does): its `MODE` store then happens before the caller's next load.
fn wait_for_registration() {
    let pending = REGISTERING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some((handle, pid)) = pending {
        if pid == std::process::id() {
            let _ = handle.join();
        } else {
            std::mem::forget(handle);
        }
    }
}

/// `$build::<…, FENCED>` (a trampoline, or a call building one when arguments follow),
/// with `FENCED` what an exec-time callback registered now needs ([`exec_fenced`]): the
/// one place that picks between a callback's two trampolines.
macro_rules! for_exec_barrier {
    ($build:ident::<$($ty:ty),*>) => {
        if $crate::runtime::barrier::exec_fenced() {
            $build::<$($ty,)* true>
        } else {
            $build::<$($ty,)* false>
        }
    };
    ($build:ident::<$($ty:ty),*>($($arg:expr),*)) => {
        if $crate::runtime::barrier::exec_fenced() {
            $build::<$($ty,)* true>($($arg),*)
        } else {
            $build::<$($ty,)* false>($($arg),*)
        }
    };
}
pub(crate) use for_exec_barrier;

/// The exec-time hot path's side, chosen when the callback is registered. A callback
/// registered once `membarrier` is ready never loads `MODE`: a compiler fence. One
/// registered before (a block translated in the first milliseconds, which may be the
/// hot loop for the rest of the run) reads `MODE` at each event like the hooks
/// ([`light`]), so it pays a full fence only until the registration completes, not for
/// the block's whole life.
#[inline(always)]
pub(crate) fn light_exec<const FENCED: bool>() {
    if FENCED {
        light();
    } else {
        compiler_fence(Ordering::SeqCst);
    }
}

/// The hook side: between "I am busy" and "is the slot closed?".
#[inline(always)]
pub(crate) fn light() {
    // UNSET behaves as FENCES, so a hook that runs before `init` is still ordered.
    if MODE.load(Ordering::Relaxed) < PRIVATE {
        fence(Ordering::SeqCst);
    } else {
        compiler_fence(Ordering::SeqCst);
    }
}

/// In a forked child (from its `pthread_atfork` handler, so only async-signal-safe work:
/// two atomic stores): the child is not registered with `membarrier` (the registration
/// belongs to the parent), and the parent's registration thread, and whoever held
/// [`REGISTERING`] at the fork, do not exist here. Both sides fall back to full fences.
pub(crate) fn after_fork_child() {
    IN_CHILD.store(true, Ordering::Relaxed);
    MODE.store(FENCES, Ordering::Relaxed);
}

/// Whether hooks use full fences (for tests of the fork handling).
#[cfg(test)]
pub(crate) fn uses_fences() -> bool {
    MODE.load(Ordering::Relaxed) == FENCES
}

/// The exit side: between "the slot is closed" and "is its owner busy?".
pub(crate) fn heavy() {
    if IN_CHILD.load(Ordering::Relaxed) {
        // Every hook of the child, and every exec callback it registers, uses a full
        // fence (`MODE` is FENCES since the fork, set before any other thread of the
        // child existed). Exec callbacks registered by the parent may use compiler
        // fences: for them, a real barrier, as in the parent (the private registration
        // if the child kept it, else the global command, which needs none).
        if membarrier(CMD_PRIVATE_EXPEDITED) != 0 && membarrier(CMD_GLOBAL) != 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        fence(Ordering::SeqCst);
        return;
    }
    // Joining the registration thread orders its `MODE` store before the load below, so
    // a hook that saw PRIVATE or GLOBAL (and used only a compiler fence) is matched here.
    // In a child forked by the guest the thread does not exist (joining it could block
    // for ever): there `MODE` is FENCES since the fork (see above).
    wait_for_registration();
    let ok = match MODE.load(Ordering::Relaxed) {
        PRIVATE => membarrier(CMD_PRIVATE_EXPEDITED) == 0,
        GLOBAL => membarrier(CMD_GLOBAL) == 0,
        _ => true,
    };
    fence(Ordering::SeqCst);
    if !ok {
        // membarrier worked at init but not now: give store buffers time to drain.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
