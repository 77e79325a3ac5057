//! The lock-free, per-vCPU sharded callback runtime behind [`PerVcpu`].
//!
//! An event's path (see docs/architecture.md): QEMU calls a generic `extern "C"` hook →
//! the hook finds the runtime (an exec callback through the userdata QEMU hands back,
//! which is segment 0 of the shard array; any other hook through one global pointer, in
//! `driver`) → the vCPU's slot (`slot`) in the never-moving shard array (`shards`), by
//! index → the user's closure or hook gets `&mut` that vCPU's shard ([`Vcpu`]) → at vCPU
//! exit, and at QEMU's exit for the rest, the shard is merged into the total.

mod barrier;
pub(crate) mod driver;
mod exec;
mod inline;
mod per_vcpu;
mod process;
mod shards;
mod slot;
mod translate;
mod vcpu;

pub use driver::{allocated_slots, install, set_config};
pub use inline::{Condition, InlineCounter};
pub use per_vcpu::{Discontinuity, PerVcpu, Syscall, SyscallReturn};
pub use translate::{InsnTranslation, MemAccess, Scratch, Translation};
pub use vcpu::Vcpu;

#[cfg(test)]
mod hook_failure_tests;
#[cfg(test)]
mod process_tests;
#[cfg(test)]
mod tests;
