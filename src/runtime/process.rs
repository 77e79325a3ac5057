//! What the runtime does when the guest process forks or execs (linux-user), so that
//! each process image reports its own totals once and nothing counted is lost.
//!
//! - **fork**: the child starts as a copy of the parent, shards, total and inline
//!   counters included, with only the forking thread left. The child must start from
//!   zero, but the `pthread_atfork` child handler runs inside every `fork()` of QEMU
//!   (system-mode helper forks too), where POSIX allows only async-signal-safe work: it
//!   only records that a fork happened and switches the exit barrier to full fences
//!   ([`barrier::after_fork_child`]). The reset itself happens at the child's next hook,
//!   [`settle_fork`], which every cold hook calls first: in linux-user that is the
//!   return hook of the fork syscall, on the forking thread, before any guest code of
//!   the child runs (so still the child's only thread). There the copied shards and
//!   total are forgotten (never merged, never dropped: a copied shard may own a copy of
//!   a parent's buffered writer, whose flush would write the parent's data twice), slots
//!   are reopened, and each of its [`InlineCounter`](super::InlineCounter)s is zeroed. The
//!   child's shards are then created afresh on its next events, and its own atexit
//!   reports what the child did.
//! - **execve**: a successful execve replaces QEMU's image without running atexit, so
//!   at the execve syscall of a program that exists, the calling vCPU's shard is merged
//!   and the total so far goes to [`PerVcpu::on_exit`]; counting goes on from a fresh
//!   total, which atexit reports if the execve fails.

use std::ffi::c_int;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::{barrier, report};
use crate::VCPUIndex;
use crate::error::Result;

unsafe extern "C" {
    /// glibc's `pthread_atfork` (POSIX).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> c_int;
}

/// A fork happened and this child has not reset its runtime yet.
static FORKED: AtomicBool = AtomicBool::new(false);
static ATFORK: Once = Once::new();

/// Arms the fork handling (called at install).
pub(crate) fn arm() {
    ATFORK.call_once(|| {
        // SAFETY: `after_fork_child` is a plain function of this object, which stays
        // mapped (`host::pin_module`), with the signature `pthread_atfork` expects.
        let rc = unsafe { pthread_atfork(None, None, Some(after_fork_child)) };
        if rc != 0 {
            crate::api::misc::outs_raw(&format!(
                "{}: pthread_atfork failed ({rc}): a forked guest's child would report its \
                 parent's counts as well as its own\n",
                crate::identity::name()
            ));
        }
    });
}

/// Runs in the child of every `fork`, on the forking thread. Only async-signal-safe work
/// (atomic stores): no allocation, no lock, no user code.
pub(crate) extern "C" fn after_fork_child() {
    barrier::after_fork_child();
    FORKED.store(true, Ordering::Relaxed);
}

/// First thing in every cold hook: if this process is a forked child that has not reset
/// its runtime yet, reset it (see the module doc for why this runs while the child has
/// one thread).
#[inline]
pub(crate) fn settle_fork<P: PerVcpu>(rt: &'static Runtime<P>) {
    if FORKED.load(Ordering::Relaxed) && FORKED.swap(false, Ordering::Relaxed) {
        // SAFETY: the first hook of a linux-user fork's child is the fork syscall's
        // return hook, on the forking thread, before the child's guest code runs: the
        // child's only thread (module doc). System-mode helper forks run no hook.
        unsafe { rt.reset_in_child() };
    }
}

/// At a syscall: if it is an execve of a program that exists, report the total so far.
pub(crate) fn before_syscall<P: PerVcpu>(
    rt: &'static Runtime<P>,
    index: VCPUIndex,
    num: i64,
    args: &[u64; 8],
) -> Result<()> {
    // execve(path, ...) and execveat(dirfd, path, ...): a relative path is relative to
    // the current directory, or to `dirfd` for execveat (an `int`: the low 32 bits).
    let (dirfd, path_arg) = if num == rt.exec_syscalls[0] {
        (AT_FDCWD, args[0])
    } else if num == rt.exec_syscalls[1] {
        (args[0] as u32 as i32, args[1])
    } else {
        return Ok(());
    };
    if num >= 0 && will_exec(dirfd, path_arg) {
        report::before_exec(rt, index)?;
    }
    Ok(())
}

/// Reads guest memory at `vaddr` into `buf`; false if it cannot. Before API 4 (QEMU 9.2)
/// a plugin cannot read guest memory at all, so every execve is taken to succeed and
/// the total is reported before each one (early, never lost).
fn read_guest(vaddr: u64, buf: &mut [u8]) -> bool {
    #[cfg(since_api_4)]
    {
        crate::qemu_plugin_read_memory_vaddr(vaddr, buf).is_ok()
    }
    #[cfg(not(since_api_4))]
    {
        let _ = (vaddr, buf);
        false
    }
}

/// `AT_FDCWD`: "relative to the current directory" for the `*at` syscalls.
const AT_FDCWD: i32 = -100;

/// Whether the guest path at `vaddr`, relative to `dirfd` if relative, names an
/// executable file (an execve of it is about to replace the process). If the path cannot
/// be read, assume it does: reporting early loses nothing, failing to report before a
/// successful execve would. (linux-user gives the guest the host's file descriptors, so
/// `dirfd` is a descriptor of this process.)
fn will_exec(dirfd: i32, vaddr: u64) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;

    let mut path = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        if path.len() > 4096 {
            return true;
        }
        let at = vaddr.wrapping_add(path.len() as u64);
        // A chunk may cross into an unmapped page: fall back to single bytes there.
        let got = if read_guest(at, &mut chunk) {
            &chunk[..]
        } else if read_guest(at, &mut chunk[..1]) {
            &chunk[..1]
        } else {
            return true;
        };
        match got.iter().position(|&b| b == 0) {
            Some(end) => {
                path.extend_from_slice(&got[..end]);
                break;
            }
            None => path.extend_from_slice(got),
        }
    }
    if path.is_empty() {
        // execveat(fd, "", AT_EMPTY_PATH): the program is an open file.
        return true;
    }
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
    let path = if path.is_relative() && dirfd != AT_FDCWD {
        std::path::Path::new(&format!("/proc/self/fd/{dirfd}")).join(path)
    } else {
        path.to_path_buf()
    };
    match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}
