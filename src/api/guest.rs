//! Guest memory (by virtual and physical address), address translation, and the
//! user-mode program's layout (binary path, code and entry addresses).

// Before API 1 (QEMU 6.0) only what API 0 has is left here.
#![cfg_attr(not(since_api_1), allow(unused_imports))]

use std::ffi::CStr;
use std::path::PathBuf;

use crate::callbacks::context::require_vcpu_thread;
#[cfg(since_api_4)]
use crate::error::Error;
#[cfg(since_api_4)]
use crate::error::Failure;
use crate::error::Result;
#[cfg(since_api_4)]
use crate::glib::ByteArray;
use crate::sys;

#[cfg(since_api_4)]
fn len32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::from(Failure::BufferTooLarge { len }))
}

/// Reads `buf.len()` bytes of guest virtual memory at `addr` (current vCPU's view). Only
/// on a vCPU thread, inside one of its callbacks; elsewhere [`Failure::NotOnVcpuThread`]
/// (QEMU itself would abort), as for every function here that acts for "the current
/// vCPU". Needs: QEMU 9.2 (plugin API v4).
#[cfg(since_api_4)]
pub fn qemu_plugin_read_memory_vaddr(addr: u64, buf: &mut [u8]) -> Result<()> {
    require_vcpu_thread("qemu_plugin_read_memory_vaddr")?;
    let len = len32(buf.len())?;
    ByteArray::with_scratch(|arr| {
        // SAFETY: `arr` is a real GByteArray that QEMU resizes to `len`.
        if !unsafe { sys::qemu_plugin_read_memory_vaddr(addr, arr.as_ptr(), buf.len()) } {
            return Err(Error::VaddrReadError { addr, len });
        }
        let got = arr.as_slice();
        if got.len() < buf.len() {
            return Err(Error::VaddrReadError { addr, len });
        }
        buf.copy_from_slice(&got[..buf.len()]);
        Ok(())
    })
}

/// Writes `data` to guest virtual memory at `addr`. The buffer is only read; it is `&mut` because that is 10.1.0-v2's signature (so code
/// that names the function's type still compiles).
/// Needs: QEMU 10.1 (plugin API v5).
#[cfg(since_api_5)]
pub fn qemu_plugin_write_memory_vaddr(addr: u64, data: &mut [u8]) -> Result<()> {
    require_vcpu_thread("qemu_plugin_write_memory_vaddr")?;
    let len = len32(data.len())?;
    let arr = ByteArray::from_slice(data)?;
    // SAFETY: `arr` is a real GByteArray holding `data`; QEMU only reads it.
    if unsafe { sys::qemu_plugin_write_memory_vaddr(addr, arr.as_ptr()) } {
        Ok(())
    } else {
        Err(Error::VaddrWriteError { addr, len })
    }
}

/// From QEMU's result of a physical-memory operation (as in 10.1.0-v2).
#[cfg(since_api_5)]
impl From<sys::qemu_plugin_hwaddr_operation_result> for crate::HwaddrOperationResult {
    fn from(r: sys::qemu_plugin_hwaddr_operation_result) -> Self {
        use crate::HwaddrOperationResult as R;
        use sys::qemu_plugin_hwaddr_operation_result as Q;
        match r {
            Q::QEMU_PLUGIN_HWADDR_OPERATION_OK => R::Ok,
            Q::QEMU_PLUGIN_HWADDR_OPERATION_ERROR => R::Error,
            Q::QEMU_PLUGIN_HWADDR_OPERATION_DEVICE_ERROR => R::DeviceError,
            Q::QEMU_PLUGIN_HWADDR_OPERATION_ACCESS_DENIED => R::AccessDenied,
            Q::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS => R::InvalidAddress,
            Q::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS_SPACE => R::InvalidAddressSpace,
        }
    }
}

/// Reads `buf.len()` bytes of guest physical memory at `addr` (system mode).
/// Needs: QEMU 10.1 (plugin API v5).
#[cfg(since_api_5)]
pub fn qemu_plugin_read_memory_hwaddr(addr: u64, buf: &mut [u8]) -> Result<()> {
    require_vcpu_thread("qemu_plugin_read_memory_hwaddr")?;
    let len = len32(buf.len())?;
    ByteArray::with_scratch(|arr| {
        // SAFETY: as for the vaddr read.
        let r: crate::HwaddrOperationResult =
            unsafe { sys::qemu_plugin_read_memory_hwaddr(addr, arr.as_ptr(), buf.len()) }.into();
        let got = arr.as_slice();
        if r != crate::HwaddrOperationResult::Ok || got.len() < buf.len() {
            return Err(Error::HwaddrReadError {
                addr,
                len,
                result: r,
            });
        }
        buf.copy_from_slice(&got[..buf.len()]);
        Ok(())
    })
}

/// Writes `data` to guest physical memory at `addr` (system mode). The buffer is only read; it is `&mut` because that is 10.1.0-v2's signature (so code
/// that names the function's type still compiles).
/// Needs: QEMU 10.1 (plugin API v5).
#[cfg(since_api_5)]
pub fn qemu_plugin_write_memory_hwaddr(addr: u64, data: &mut [u8]) -> Result<()> {
    require_vcpu_thread("qemu_plugin_write_memory_hwaddr")?;
    let len = len32(data.len())?;
    let arr = ByteArray::from_slice(data)?;
    // SAFETY: as for the vaddr write.
    let r: crate::HwaddrOperationResult =
        unsafe { sys::qemu_plugin_write_memory_hwaddr(addr, arr.as_ptr()) }.into();
    match r {
        crate::HwaddrOperationResult::Ok => Ok(()),
        result => Err(Error::HwaddrWriteError { addr, len, result }),
    }
}

/// Translates a guest virtual address to a physical one (current vCPU, system mode).
/// Needs: QEMU 10.1 (plugin API v5).
#[cfg(since_api_5)]
pub fn qemu_plugin_translate_vaddr(vaddr: u64) -> Result<u64> {
    require_vcpu_thread("qemu_plugin_translate_vaddr")?;
    let mut hw = 0u64;
    // SAFETY: `hw` is a valid u64 for QEMU to write.
    if unsafe { sys::qemu_plugin_translate_vaddr(vaddr, &mut hw) } {
        Ok(hw)
    } else {
        Err(Error::VaddrTranslateError { vaddr })
    }
}

/// Whether a user-mode program-layout query may reach QEMU here: linux-user answers it
/// from the calling vCPU's task state (`get_task_state(current_cpu)`), which is a NULL
/// dereference off a vCPU thread (at install, or on a thread of the plugin's own).
#[cfg(since_api_1)]
fn layout_query_allowed(api: &'static str) -> Result<()> {
    if crate::identity::user_mode() {
        require_vcpu_thread(api)
    } else {
        Ok(())
    }
}

/// The path of the guest binary (user mode), `None` in system mode. In user mode only on
/// a vCPU thread (in one of its callbacks): elsewhere [`Failure::NotOnVcpuThread`], where
/// QEMU itself would crash. Needs: QEMU 6.0 (plugin API v1).
#[cfg(since_api_1)]
pub fn qemu_plugin_path_to_binary() -> Result<Option<PathBuf>> {
    layout_query_allowed("qemu_plugin_path_to_binary")?;
    // SAFETY: QEMU returns a g_malloc'd string we own, or NULL.
    let p = unsafe { sys::qemu_plugin_path_to_binary() };
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: allocated by QEMU with g_malloc; freed once.
    unsafe { sys::g_free(p as *mut _) };
    Ok(Some(PathBuf::from(s)))
}

#[cfg(since_api_1)]
macro_rules! layout_fn {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// `None` in system mode (QEMU answers 0), and in user mode off a vCPU thread (at
        /// install, or on a thread of the plugin's own), where QEMU would crash.
        /// Needs: QEMU 6.0 (plugin API v1).
        pub fn $name() -> Option<u64> {
            layout_query_allowed(stringify!($name)).ok()?;
            // SAFETY: a plain query with no arguments.
            let v = unsafe { sys::$name() };
            (v != 0).then_some(v)
        }
    };
}

#[cfg(since_api_1)]
layout_fn!(
    /// Start of the guest binary's text segment (user mode).
    qemu_plugin_start_code
);
#[cfg(since_api_1)]
layout_fn!(
    /// End of the guest binary's text segment (user mode).
    qemu_plugin_end_code
);
#[cfg(since_api_1)]
layout_fn!(
    /// The guest binary's entry point (user mode).
    qemu_plugin_entry_code
);
