//! Queries that plugin API 1 (QEMU 6.0) added, for the examples that rewrite QEMU's
//! contrib plugins: under API 0 each answers as if QEMU had nothing to tell (the examples
//! that need a real answer refuse to install there). Shared through `#[path]`.

#![allow(dead_code)]

/// The physical address of a memory access (the offset into the device for I/O).
#[cfg(since_api_1)]
pub fn phys_addr(h: &qemu_plugin::HwAddr<'_>) -> u64 {
    h.hwaddr()
}

#[cfg(not(since_api_1))]
pub fn phys_addr(_: &qemu_plugin::HwAddr<'_>) -> u64 {
    0
}

/// The device an access went to (`RAM` for memory), or C's `(null)` when QEMU names none.
#[cfg(since_api_1)]
pub fn device_name(h: &qemu_plugin::HwAddr<'_>) -> String {
    h.device_name()
        .ok()
        .flatten()
        .unwrap_or_else(|| "(null)".into())
}

#[cfg(not(since_api_1))]
pub fn device_name(_: &qemu_plugin::HwAddr<'_>) -> String {
    "(null)".into()
}

/// The symbol an instruction belongs to, if the binary has a symbol table.
#[cfg(since_api_1)]
pub fn symbol(insn: &qemu_plugin::Instruction<'_>) -> Option<String> {
    insn.symbol().ok().flatten()
}

#[cfg(not(since_api_1))]
pub fn symbol(_: &qemu_plugin::Instruction<'_>) -> Option<String> {
    None
}
