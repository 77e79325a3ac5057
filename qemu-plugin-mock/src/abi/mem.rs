//! C entry points about guest memory: decoding a memory access's meminfo, its
//! hwaddr, and reading/writing the mock guest memory.

use std::ffi::{c_char, c_uint};
use std::ptr;

use super::guard;
use crate::ctx::{self, Hwaddr};
use crate::exec::{meminfo_big_endian, meminfo_sign, meminfo_size_shift, meminfo_store};
use crate::sys::{GByteArray, qemu_plugin_hwaddr, qemu_plugin_meminfo_t};
#[cfg(since_api_4)]
use crate::sys::{
    qemu_plugin_mem_value, qemu_plugin_mem_value__bindgen_ty_1,
    qemu_plugin_mem_value__bindgen_ty_1__bindgen_ty_1, qemu_plugin_mem_value_type,
};
use crate::{glib, hostinfo, memory};

/// `qemu_plugin_mem_size_shift`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_mem_size_shift(info: qemu_plugin_meminfo_t) -> c_uint {
    meminfo_size_shift(info)
}

/// `qemu_plugin_mem_is_sign_extended`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_mem_is_sign_extended(info: qemu_plugin_meminfo_t) -> bool {
    meminfo_sign(info)
}

/// `qemu_plugin_mem_is_big_endian`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_mem_is_big_endian(info: qemu_plugin_meminfo_t) -> bool {
    meminfo_big_endian(info)
}

/// `qemu_plugin_mem_is_store`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_mem_is_store(info: qemu_plugin_meminfo_t) -> bool {
    meminfo_store(info)
}

/// `qemu_plugin_mem_get_value`: the value of the access being reported on this vCPU,
/// typed by its size like QEMU.
#[unsafe(no_mangle)]
#[cfg(since_api_4)]
pub extern "C" fn qemu_plugin_mem_get_value(info: qemu_plugin_meminfo_t) -> qemu_plugin_mem_value {
    use qemu_plugin_mem_value_type::*;
    let (low, high) = ctx::mem_value();
    let (type_, data) = match meminfo_size_shift(info) {
        0 => (
            QEMU_PLUGIN_MEM_VALUE_U8,
            qemu_plugin_mem_value__bindgen_ty_1 { u8_: low as u8 },
        ),
        1 => (
            QEMU_PLUGIN_MEM_VALUE_U16,
            qemu_plugin_mem_value__bindgen_ty_1 { u16_: low as u16 },
        ),
        2 => (
            QEMU_PLUGIN_MEM_VALUE_U32,
            qemu_plugin_mem_value__bindgen_ty_1 { u32_: low as u32 },
        ),
        3 => (
            QEMU_PLUGIN_MEM_VALUE_U64,
            qemu_plugin_mem_value__bindgen_ty_1 { u64_: low },
        ),
        _ => (
            QEMU_PLUGIN_MEM_VALUE_U128,
            qemu_plugin_mem_value__bindgen_ty_1 {
                u128_: qemu_plugin_mem_value__bindgen_ty_1__bindgen_ty_1 { low, high },
            },
        ),
    };
    qemu_plugin_mem_value { type_, data }
}

/// `qemu_plugin_get_hwaddr`: null in user mode; in system mode a per-thread record
/// (like QEMU's `static __thread` one), valid until the next call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_get_hwaddr(
    _info: qemu_plugin_meminfo_t,
    vaddr: u64,
) -> *mut qemu_plugin_hwaddr {
    if !memory::is_system() {
        return ptr::null_mut();
    }
    let phys = memory::phys_of(vaddr);
    ctx::set_hwaddr(Hwaddr {
        phys,
        is_io: (memory::MMIO_BASE..memory::MMIO_END).contains(&phys),
    })
    .cast()
}

fn hwaddr(h: *const qemu_plugin_hwaddr) -> Option<Hwaddr> {
    // SAFETY:
    // - non-null `h` came from `qemu_plugin_get_hwaddr` on this thread (a thread-local
    //   that lives as long as the thread).
    (!h.is_null()).then(|| unsafe { *h.cast::<Hwaddr>() })
}

/// `qemu_plugin_hwaddr_is_io`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_hwaddr_is_io(haddr: *const qemu_plugin_hwaddr) -> bool {
    hwaddr(haddr).is_some_and(|h| h.is_io)
}

/// `qemu_plugin_hwaddr_phys_addr`.
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_hwaddr_phys_addr(haddr: *const qemu_plugin_hwaddr) -> u64 {
    hwaddr(haddr).map_or(0, |h| h.phys)
}

/// `qemu_plugin_hwaddr_device_name`: "mock-mmio" for I/O, "RAM" otherwise,
/// "Invalid" in user mode (static strings).
#[unsafe(no_mangle)]
#[cfg(since_api_1)]
pub extern "C" fn qemu_plugin_hwaddr_device_name(h: *const qemu_plugin_hwaddr) -> *const c_char {
    if !memory::is_system() {
        return c"Invalid".as_ptr();
    }
    match hwaddr(h) {
        Some(h) if h.is_io => memory::MMIO_DEVICE.as_ptr(),
        _ => memory::RAM_DEVICE.as_ptr(),
    }
}

/// Reads `len` bytes at physical `addr` into `data` after resizing it to `len`.
fn read_into(name: &'static str, addr: u64, data: *mut GByteArray, len: usize) -> bool {
    if ctx::vcpu().is_none() {
        hostinfo::violation(format!("{name} outside vCPU context"));
        return false;
    }
    if len == 0 || data.is_null() || len > c_uint::MAX as usize {
        return false;
    }
    // SAFETY:
    // - `data` is a GByteArray from this mock's glib (caller contract of the C API).
    unsafe { glib::g_byte_array_set_size(data, len as c_uint) };
    let Some(bytes) = memory::read(addr, len) else {
        return false;
    };
    // SAFETY:
    // - the array was just resized to `len` bytes; `bytes` is a separate Vec.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), (*data).data, len) };
    true
}

/// `qemu_plugin_read_memory_vaddr`: resizes `data` to `len` (like
/// `g_byte_array_set_size`), then fills it; false if `len` is 0 or memory unmapped.
///
/// # Safety
/// `data` is null or a `GByteArray` from `g_byte_array_new`.
#[unsafe(no_mangle)]
#[cfg(since_api_4)]
pub unsafe extern "C" fn qemu_plugin_read_memory_vaddr(
    addr: u64,
    data: *mut GByteArray,
    len: usize,
) -> bool {
    guard("qemu_plugin_read_memory_vaddr", false, || {
        read_into(
            "qemu_plugin_read_memory_vaddr",
            memory::phys_of(addr),
            data,
            len,
        )
    })
}

#[cfg(since_api_5)]
fn bytes_of(data: *const GByteArray) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY:
    // - `data` is a live GByteArray (caller contract); `data`/`len` describe its bytes.
    let (p, n) = unsafe { ((*data).data, (*data).len as usize) };
    if n == 0 || p.is_null() {
        return None;
    }
    // SAFETY: as above.
    Some(unsafe { std::slice::from_raw_parts(p, n) }.to_vec())
}

/// `qemu_plugin_write_memory_vaddr`: false if `data` is empty or memory unmapped.
///
/// # Safety
/// `data` is null or a `GByteArray` from `g_byte_array_new`.
#[cfg(since_api_5)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_write_memory_vaddr(addr: u64, data: *mut GByteArray) -> bool {
    guard("qemu_plugin_write_memory_vaddr", false, || {
        if ctx::vcpu().is_none() {
            hostinfo::violation("qemu_plugin_write_memory_vaddr outside vCPU context".into());
            return false;
        }
        bytes_of(data).is_some_and(|b| memory::write(memory::phys_of(addr), &b))
    })
}

#[cfg(since_api_5)]
use crate::sys::qemu_plugin_hwaddr_operation_result as HwResult;

/// `qemu_plugin_read_memory_hwaddr` (system mode only, like `CONFIG_SOFTMMU`).
///
/// # Safety
/// `data` is null or a `GByteArray` from `g_byte_array_new`.
#[cfg(since_api_5)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_read_memory_hwaddr(
    addr: u64,
    data: *mut GByteArray,
    len: usize,
) -> HwResult {
    guard(
        "qemu_plugin_read_memory_hwaddr",
        HwResult::QEMU_PLUGIN_HWADDR_OPERATION_ERROR,
        || {
            if !memory::is_system() || len == 0 || data.is_null() {
                return HwResult::QEMU_PLUGIN_HWADDR_OPERATION_ERROR;
            }
            if read_into("qemu_plugin_read_memory_hwaddr", addr, data, len) {
                HwResult::QEMU_PLUGIN_HWADDR_OPERATION_OK
            } else {
                HwResult::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS
            }
        },
    )
}

/// `qemu_plugin_write_memory_hwaddr` (system mode only).
///
/// # Safety
/// `data` is null or a `GByteArray` from `g_byte_array_new`.
#[cfg(since_api_5)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_write_memory_hwaddr(
    addr: u64,
    data: *mut GByteArray,
) -> HwResult {
    guard(
        "qemu_plugin_write_memory_hwaddr",
        HwResult::QEMU_PLUGIN_HWADDR_OPERATION_ERROR,
        || {
            let Some(b) = bytes_of(data).filter(|_| memory::is_system()) else {
                return HwResult::QEMU_PLUGIN_HWADDR_OPERATION_ERROR;
            };
            if ctx::vcpu().is_none() {
                hostinfo::violation("qemu_plugin_write_memory_hwaddr outside vCPU context".into());
                return HwResult::QEMU_PLUGIN_HWADDR_OPERATION_ERROR;
            }
            if memory::write(addr, &b) {
                HwResult::QEMU_PLUGIN_HWADDR_OPERATION_OK
            } else {
                HwResult::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS
            }
        },
    )
}

/// `qemu_plugin_translate_vaddr` (system mode only): false if the page is unmapped.
///
/// # Safety
/// `hwaddr` is null or writable.
#[cfg(since_api_5)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_translate_vaddr(vaddr: u64, hwaddr: *mut u64) -> bool {
    guard("qemu_plugin_translate_vaddr", false, || {
        if !memory::is_system() || hwaddr.is_null() {
            return false;
        }
        match memory::translate(vaddr) {
            Some(p) => {
                // SAFETY:
                // - caller guarantees `hwaddr` is writable.
                unsafe { hwaddr.write(p) };
                true
            }
            None => false,
        }
    })
}
