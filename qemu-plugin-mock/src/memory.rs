//! Mock guest state outside the vCPUs' hot path: a sparse physical memory, the
//! virtual-to-physical mapping, the MMIO window, and the register file layout.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::sync::{Mutex, MutexGuard};

const PAGE: u64 = 4096;

/// In system mode, virtual addresses map to `vaddr & SYSTEM_PHYS_MASK`.
pub const SYSTEM_PHYS_MASK: u64 = 0xFFFF_FFFF;
/// Physical addresses in `MMIO_BASE..MMIO_END` are I/O (`qemu_plugin_hwaddr_is_io`).
pub const MMIO_BASE: u64 = 0xFE00_0000;
/// End (exclusive) of the MMIO window.
pub const MMIO_END: u64 = 0xFF00_0000;
/// Device name reported for MMIO accesses.
pub const MMIO_DEVICE: &CStr = c"mock-mmio";
/// Device name reported for RAM accesses (QEMU returns "RAM").
pub const RAM_DEVICE: &CStr = c"RAM";

static SYSTEM: AtomicBool = AtomicBool::new(false);
static PAGES: Mutex<BTreeMap<u64, Box<[u8; PAGE as usize]>>> = Mutex::new(BTreeMap::new());

fn pages() -> MutexGuard<'static, BTreeMap<u64, Box<[u8; PAGE as usize]>>> {
    PAGES.lock()
}

/// Sets system (true) or user (false) mode.
pub(crate) fn set_system(system: bool) {
    SYSTEM.store(system, Ordering::Release);
}

/// Whether the host emulates a whole system.
pub(crate) fn is_system() -> bool {
    SYSTEM.load(Ordering::Acquire)
}

/// Physical address of `vaddr`: identity in user mode, masked in system mode.
pub(crate) fn phys_of(vaddr: u64) -> u64 {
    if is_system() {
        vaddr & SYSTEM_PHYS_MASK
    } else {
        vaddr
    }
}

#[cfg(since_api_5)]
/// Translates `vaddr` if its page is mapped (`qemu_plugin_translate_vaddr`).
pub(crate) fn translate(vaddr: u64) -> Option<u64> {
    let p = phys_of(vaddr);
    pages().contains_key(&(p / PAGE)).then_some(p)
}

/// Writes `data` at physical `addr`, mapping pages as needed (host side).
pub(crate) fn map_write(addr: u64, data: &[u8]) {
    let mut m = pages();
    for (i, b) in data.iter().enumerate() {
        let a = addr + i as u64;
        m.entry(a / PAGE)
            .or_insert_with(|| Box::new([0; PAGE as usize]))[(a % PAGE) as usize] = *b;
    }
}

/// Reads `len` bytes at physical `addr`; None if any page is unmapped.
pub(crate) fn read(addr: u64, len: usize) -> Option<Vec<u8>> {
    let m = pages();
    (0..len as u64)
        .map(|i| {
            let a = addr.checked_add(i)?;
            m.get(&(a / PAGE)).map(|p| p[(a % PAGE) as usize])
        })
        .collect()
}

#[cfg(since_api_5)]
/// Writes `data` at physical `addr`; false (nothing written) if any page is unmapped.
pub(crate) fn write(addr: u64, data: &[u8]) -> bool {
    let mut m = pages();
    let all_mapped = (0..data.len() as u64).all(|i| {
        addr.checked_add(i)
            .is_some_and(|a| m.contains_key(&(a / PAGE)))
    });
    if !all_mapped {
        return false;
    }
    for (i, b) in data.iter().enumerate() {
        let a = addr + i as u64;
        if let Some(p) = m.get_mut(&(a / PAGE)) {
            p[(a % PAGE) as usize] = *b;
        }
    }
    true
}

/// Register names (x86-64 gdbstub order) and their sizes in bytes.
pub(crate) const REGISTERS: &[(&CStr, usize)] = &[
    (c"rax", 8),
    (c"rbx", 8),
    (c"rcx", 8),
    (c"rdx", 8),
    (c"rsi", 8),
    (c"rdi", 8),
    (c"rbp", 8),
    (c"rsp", 8),
    (c"r8", 8),
    (c"r9", 8),
    (c"r10", 8),
    (c"r11", 8),
    (c"r12", 8),
    (c"r13", 8),
    (c"r14", 8),
    (c"r15", 8),
    (c"rip", 8),
    (c"eflags", 4),
];

/// Feature name reported for every register.
pub(crate) const REG_FEATURE: &CStr = c"org.gnu.gdb.i386.core";

/// Initial register file of vCPU `index`: register `r` holds `index << 16 | r`.
pub(crate) fn initial_registers(index: u32) -> Vec<Vec<u8>> {
    REGISTERS
        .iter()
        .enumerate()
        .map(|(r, &(_, size))| ((u64::from(index) << 16) | r as u64).to_le_bytes()[..size].to_vec())
        .collect()
}

/// Unmaps all memory (host teardown).
pub(crate) fn reset() {
    pages().clear();
    SYSTEM.store(false, Ordering::Release);
}
