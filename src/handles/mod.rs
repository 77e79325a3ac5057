//! Handles to what QEMU hands a callback: blocks and instructions being translated,
//! memory accesses, registers. Each borrows QEMU's object for one callback only.

pub mod insn;
pub mod mem;
#[cfg(since_api_2)]
pub mod register;
pub mod tb;
