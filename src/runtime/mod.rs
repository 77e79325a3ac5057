//! The lock-free, per-vCPU sharded callback runtime behind [`PerVcpu`].
//!
//! An event's path (see docs/architecture.md): QEMU calls a generic `extern "C"` hook →
//! the hook finds the runtime (an exec callback through the userdata QEMU hands back,
//! which is segment 0 of the shard array; any other hook through one global pointer, in
//! `installed`) → the vCPU's slot (`slot`) in the never-moving shard array (`shards`), by
//! index → the user's closure or hook gets `&mut` that vCPU's shard ([`Vcpu`]) → at vCPU
//! exit, and at QEMU's exit for the rest, the shard is merged into the total.
//!
//! One job per file: `installed` (the runtime object and how hooks find it),
//! `shard_access` (the exec-time hot path), `exec` (the exec trampoline), `mem` (memory
//! closures, every access or filtered), `redirect` (exec closures that move the PC, API
//! 6+), `hooks` (every other `extern "C"` hook), `report` (exit and execve reports),
//! `install`, `handle`, `process` (fork and execve), `target` (per-architecture facts),
//! `macros` (`per_vcpu!`), and the data structures `shards`, `slot`, `barrier`, `inline`.

mod barrier;
mod exec;
pub(crate) mod handle;
mod hooks;
mod inline;
mod install;
pub(crate) mod installed;
mod macros;
mod mem;
mod per_vcpu;
mod process;
#[cfg(since_api_6)]
mod redirect;
mod report;
pub(crate) mod shard_access;
mod shards;
mod slot;
mod target;
mod translate;
mod vcpu;

pub use handle::Handle;
#[cfg(since_api_3)]
pub use inline::Condition;
pub use inline::InlineCounter;
pub use install::install;
pub use mem::MemAccess;
pub use per_vcpu::{Discontinuity, PerVcpu, Syscall, SyscallReturn};
pub use translate::{InsnTranslation, Scratch, Translation};
pub use vcpu::Vcpu;

#[cfg(test)]
mod exit_tests;
#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod hook_failure_tests;
#[cfg(test)]
mod mem_tests;
#[cfg(test)]
mod process_tests;
#[cfg(test)]
mod tests;
// Inline counters and guest-memory reads from vCPU and other threads: API 4 and later.
#[cfg(all(test, since_api_4))]
mod thread_tests;
