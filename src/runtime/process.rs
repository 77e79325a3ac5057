//! What the runtime does when the guest process forks or execs (linux-user), so that
//! each process image reports its own totals once and nothing counted is lost.
//!
//! - **fork**: the child starts as a copy of the parent, shards, total and inline
//!   counters included, with only the forking thread left. A `pthread_atfork` child
//!   handler makes the child start from zero: the copied shards and total are forgotten
//!   (never merged, never dropped: a copied shard may own a copy of a parent's buffered
//!   writer, whose flush would write the parent's data twice), slots are reopened, and
//!   every [`InlineCounter`](super::InlineCounter) is zeroed. The child's shards are then
//!   created afresh on its next events, and its own atexit reports what the child did.
//! - **execve**: a successful execve replaces QEMU's image without running atexit, so
//!   at the execve syscall of a program that exists, the calling vCPU's shard is merged
//!   and the total so far goes to [`PerVcpu::on_exit`]; counting goes on from a fresh
//!   total, which atexit reports if the execve fails.

use std::ffi::c_int;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::report;
use crate::VCPUIndex;
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::Result;

unsafe extern "C" {
    /// glibc's `pthread_atfork` (POSIX).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> c_int;
}

/// The reset of the installed runtime's type, run in a forked child.
static RESET_CHILD: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
static ATFORK: Once = Once::new();

/// Arms the fork handling for plugin type `P` (called at install).
pub(crate) fn arm<P: PerVcpu>() {
    let reset: fn() -> Result<()> = reset_child::<P>;
    RESET_CHILD.store(reset as *mut (), Ordering::Release);
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

/// Runs in the child of every `fork`, on the forking thread, the only one left.
///
/// # Safety
/// No other thread uses the runtime while it runs (true in a fork's child).
pub(crate) unsafe extern "C" fn after_fork_child() {
    let reset = RESET_CHILD.load(Ordering::Acquire);
    if reset.is_null() {
        return;
    }
    // SAFETY: only `arm` stores here, and only a `fn() -> Result<()>`.
    let reset: fn() -> Result<()> = unsafe { std::mem::transmute(reset) };
    guard(Hook::Fork, (), reset);
}

fn reset_child<P: PerVcpu>() -> Result<()> {
    let rt = Runtime::<P>::get()?;
    // SAFETY: we run in a just-forked child, before it returns from `fork`: the calling
    // thread is the only thread of this process, so nothing else touches the runtime.
    unsafe { rt.reset_in_child() };
    super::inline::reset_all();
    Ok(())
}

/// At a syscall: if it is an execve of a program that exists, report the total so far.
pub(crate) fn before_syscall<P: PerVcpu>(
    rt: &'static Runtime<P>,
    index: VCPUIndex,
    num: i64,
    args: &[u64; 8],
) -> Result<()> {
    let path_arg = if num == rt.exec_syscalls[0] {
        args[0]
    } else if num == rt.exec_syscalls[1] {
        args[1]
    } else {
        return Ok(());
    };
    if num >= 0 && will_exec(path_arg) {
        report::before_exec(rt, index)?;
    }
    Ok(())
}

/// Whether the guest path at `vaddr` names an executable file (an execve of it is about
/// to replace the process). If the path cannot be read, assume it does: reporting early
/// loses nothing, failing to report before a successful execve would.
fn will_exec(vaddr: u64) -> bool {
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
        let got = if crate::qemu_plugin_read_memory_vaddr(at, &mut chunk).is_ok() {
            &chunk[..]
        } else if crate::qemu_plugin_read_memory_vaddr(at, &mut chunk[..1]).is_ok() {
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
    match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}
