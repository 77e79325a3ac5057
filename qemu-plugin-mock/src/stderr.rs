//! What a plugin writes to the process's standard error while the host installs it (QEMU
//! shows it on its own stderr), captured by pointing file descriptor 2 at a temporary
//! file for the duration of the call.

use std::ffi::c_int;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;

unsafe extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
}

const STDERR: c_int = 2;

/// Runs `f` with standard error captured; returns its result and what was written.
/// If the capture cannot be set up, `f` runs with standard error as it is.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, String) {
    let Ok(mut file) = tempfile() else {
        return (f(), String::new());
    };
    // SAFETY: `dup` only duplicates a descriptor of this process.
    let saved = unsafe { dup(STDERR) };
    if saved < 0 {
        return (f(), String::new());
    }
    // SAFETY: `file` is open for the duration; fd 2 is restored below.
    unsafe { dup2(file.as_raw_fd(), STDERR) };
    let r = f();
    // SAFETY: `saved` is the descriptor duplicated above, restored then closed.
    unsafe {
        dup2(saved, STDERR);
        close(saved);
    }
    let mut text = String::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_string(&mut text);
    }
    (r, text)
}

/// An anonymous temporary file (created, opened, and unlinked at once).
fn tempfile() -> std::io::Result<std::fs::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "qemu-plugin-mock-stderr-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
