//! C entry points for registers: the descriptor list and reads/writes gated, like
//! QEMU, on the register-access flags of the callback in flight.

use std::ffi::c_int;
use std::ptr;

use super::guard;
use crate::sys::{GArray, GByteArray, qemu_plugin_reg_descriptor, qemu_plugin_register};
use crate::{ctx, glib, hostinfo, memory, vcpu};

/// `qemu_plugin_get_registers`: a zero-terminated `GArray` of descriptors; handles
/// are `index + 1` like QEMU's `GINT_TO_POINTER(gdb_reg + 1)`. Free with `g_array_free`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_get_registers() -> *mut GArray {
    guard("qemu_plugin_get_registers", ptr::null_mut(), || {
        if ctx::vcpu().is_none() {
            hostinfo::violation("qemu_plugin_get_registers outside vCPU context".into());
        }
        let size = std::mem::size_of::<qemu_plugin_reg_descriptor>() as u32;
        let a = glib::array_new(true, true, size);
        for (i, (name, _)) in memory::REGISTERS.iter().enumerate() {
            let d = qemu_plugin_reg_descriptor {
                handle: ptr::without_provenance_mut(i + 1),
                name: name.as_ptr(),
                feature: memory::REG_FEATURE.as_ptr(),
            };
            // SAFETY:
            // - `a` is a fresh array of descriptor-sized elements; `d` is one element.
            unsafe { glib::append(a, ptr::from_ref(&d).cast(), 1) };
        }
        a.cast()
    })
}

fn reg_index(reg: *mut qemu_plugin_register) -> Option<usize> {
    (reg as usize)
        .checked_sub(1)
        .filter(|&i| i < memory::REGISTERS.len())
}

/// `qemu_plugin_read_register`: appends the register's bytes to `buf` (like
/// `gdb_read_register`) and returns its size; -1 if the callback in flight was not
/// registered with `R_REGS`/`RW_REGS`, or outside vCPU context.
///
/// # Safety
/// `buf` is null or a `GByteArray` from `g_byte_array_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_read_register(
    reg: *mut qemu_plugin_register,
    buf: *mut GByteArray,
) -> c_int {
    guard("qemu_plugin_read_register", -1, || {
        if ctx::flags() == ctx::NO_REGS || buf.is_null() {
            return -1;
        }
        let (Some(v), Some(i)) = (vcpu::current(), reg_index(reg)) else {
            return -1;
        };
        let bytes = v.regs.lock()[i].clone();
        // SAFETY:
        // - `buf` is a live GByteArray (caller); `bytes` is a separate Vec.
        unsafe { glib::g_byte_array_append(buf, bytes.as_ptr(), bytes.len() as u32) };
        bytes.len() as c_int
    })
}

/// `qemu_plugin_write_register`: writes the register from `buf` and returns its
/// size; -1 unless the callback in flight has `RW_REGS` and `buf` is non-empty.
/// A `buf` shorter than the register writes only its bytes.
///
/// # Safety
/// `buf` is null or a `GByteArray` from `g_byte_array_new`.
#[cfg(feature = "plugin-api-v5")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_write_register(
    reg: *mut qemu_plugin_register,
    buf: *mut GByteArray,
) -> c_int {
    guard("qemu_plugin_write_register", -1, || {
        if buf.is_null() || ctx::flags() != ctx::RW_REGS {
            return -1;
        }
        // SAFETY:
        // - `buf` is a live GByteArray (caller contract).
        let (p, n) = unsafe { ((*buf).data, (*buf).len as usize) };
        if n == 0 || p.is_null() {
            return -1;
        }
        let (Some(v), Some(i)) = (vcpu::current(), reg_index(reg)) else {
            return -1;
        };
        let mut regs = v.regs.lock();
        let size = regs[i].len();
        let k = n.min(size);
        // SAFETY:
        // - `p` has `n >= k` readable bytes (GByteArray invariant).
        regs[i][..k].copy_from_slice(unsafe { std::slice::from_raw_parts(p, k) });
        size as c_int
    })
}
