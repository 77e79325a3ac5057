//! Callback registration and the trampolines QEMU calls: one generic guard for every
//! entry point (`trampoline`), what a callback tells about its thread (`context`),
//! failure reporting (`failure`), storage for exec closures (`stash`), and one module per
//! kind of callback.

pub(crate) mod context;
pub(crate) mod exec;
pub(crate) mod failure;
pub(crate) mod hook;
pub(crate) mod stash;
pub(crate) mod trampoline;

pub mod discon;
pub mod lifecycle;
pub mod syscall;

pub use stash::live_closures;
