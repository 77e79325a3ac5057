//! C entry points for registers: the descriptor list and reads/writes gated, like
//! QEMU, on the register-access flags of the callback in flight.

use std::ffi::c_int;
use std::ptr;

use super::guard;
use crate::sys::{
    GArray, GByteArray, RegisterAccessResult, qemu_plugin_reg_descriptor, qemu_plugin_register,
};
use crate::{ctx, glib, hostinfo, memory, vcpu};

/// `qemu_plugin_get_registers`: a zero-terminated `GArray` of descriptors; handles
/// are `index + 1` like QEMU's `GINT_TO_POINTER(gdb_reg + 1)`. Free with `g_array_free`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
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
                // API 6 marks the PC read-only, as QEMU 11 does (one per target).
                #[cfg(since_api_6)]
                is_readonly: is_pc(i),
            };
            // SAFETY:
            // - `a` is a fresh array of descriptor-sized elements; `d` is one element.
            unsafe { glib::append(a, ptr::from_ref(&d).cast(), 1) };
        }
        a.cast()
    })
}

/// Whether register `i` is the PC (`rip`), which API 6 and later flag read-only.
#[cfg(since_api_6)]
fn is_pc(i: usize) -> bool {
    memory::REGISTERS[i].0 == c"rip"
}

/// What a register access returns: the byte count or -1 up to API 5, success from
/// API 6 on.
fn access_result(bytes: c_int) -> RegisterAccessResult {
    #[cfg(not(since_api_6))]
    {
        bytes
    }
    #[cfg(since_api_6)]
    {
        bytes > 0
    }
}

/// Whether the callback in flight may write registers: `RW_REGS`, and from API 6 on
/// also `RW_REGS_PC`.
#[cfg(since_api_5)]
fn may_write() -> bool {
    let f = ctx::flags();
    f == ctx::RW_REGS || (cfg!(since_api_6) && f == ctx::RW_REGS_PC)
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
#[cfg(since_api_2)]
pub unsafe extern "C" fn qemu_plugin_read_register(
    reg: *mut qemu_plugin_register,
    buf: *mut GByteArray,
) -> RegisterAccessResult {
    guard("qemu_plugin_read_register", access_result(-1), || {
        if ctx::flags() == ctx::NO_REGS || buf.is_null() {
            return access_result(-1);
        }
        let (Some(v), Some(i)) = (vcpu::current(), reg_index(reg)) else {
            return access_result(-1);
        };
        let bytes = v.regs.lock()[i].clone();
        // SAFETY:
        // - `buf` is a live GByteArray (caller); `bytes` is a separate Vec.
        unsafe { glib::g_byte_array_append(buf, bytes.as_ptr(), bytes.len() as u32) };
        access_result(bytes.len() as c_int)
    })
}

/// `qemu_plugin_write_register`: writes the register from `buf` and returns its
/// size; -1 unless the callback in flight has `RW_REGS` and `buf` is non-empty.
/// A `buf` shorter than the register writes only its bytes.
///
/// # Safety
/// `buf` is null or a `GByteArray` from `g_byte_array_new`.
#[cfg(since_api_5)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_write_register(
    reg: *mut qemu_plugin_register,
    buf: *mut GByteArray,
) -> RegisterAccessResult {
    guard("qemu_plugin_write_register", access_result(-1), || {
        if buf.is_null() || !may_write() {
            return access_result(-1);
        }
        // SAFETY:
        // - `buf` is a live GByteArray (caller contract).
        let (p, n) = unsafe { ((*buf).data, (*buf).len as usize) };
        if n == 0 || p.is_null() {
            return access_result(-1);
        }
        let (Some(v), Some(i)) = (vcpu::current(), reg_index(reg)) else {
            return access_result(-1);
        };
        #[cfg(since_api_6)]
        if is_pc(i) {
            hostinfo::violation(
                "qemu_plugin_write_register on a read-only register (the PC): QEMU 11 aborts"
                    .into(),
            );
            return false;
        }
        let mut regs = v.regs.lock();
        let size = regs[i].len();
        let k = n.min(size);
        // SAFETY:
        // - `p` has `n >= k` readable bytes (GByteArray invariant).
        regs[i][..k].copy_from_slice(unsafe { std::slice::from_raw_parts(p, k) });
        access_result(size as c_int)
    })
}

/// `qemu_plugin_set_pc` (API 6 and later). QEMU sets the PC and leaves the callback by a
/// longjmp, which the mock cannot do: it records a violation (QEMU aborts unless the
/// callback runs with `RW_REGS_PC`) or that it cannot follow, and aborts the process.
/// Plugins are tested with it in real QEMU 11.1.
#[cfg(since_api_6)]
#[unsafe(no_mangle)]
pub extern "C" fn qemu_plugin_set_pc(vaddr: u64) -> ! {
    if ctx::flags() != ctx::RW_REGS_PC {
        eprintln!("qemu_plugin_set_pc({vaddr:#x}) without RW_REGS_PC: QEMU aborts");
    } else {
        eprintln!("qemu_plugin_set_pc({vaddr:#x}): the mock cannot leave a callback by longjmp");
    }
    std::process::abort()
}
