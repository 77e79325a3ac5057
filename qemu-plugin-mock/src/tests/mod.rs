//! The mock host's own tests, driving it with C-style plugins written against the raw
//! C API (so they check the mock's QEMU semantics independently of the crate's runtime).
// The plugins here are deliberately C-style FFI; each call's contract is the C API's.
#![allow(clippy::undocumented_unsafe_blocks, missing_docs)]

mod api;
mod core;
mod plugin;
