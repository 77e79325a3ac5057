//! Memory-access handles: `MemoryInfo` (size, sign, endianness, store, value) and
//! `HwAddr` (physical address, MMIO, device), valid only inside the memory callback.

// Before API 1 (QEMU 6.0) the hwaddr queries are compiled out.
#![cfg_attr(not(since_api_1), allow(unused_imports))]

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::Result;
use crate::sys;

/// Details of one memory access (`qemu_plugin_meminfo_t`), borrowed for the memory
/// callback that received it. Needs: any QEMU with plugins.
///
/// Neither `Send` nor `Sync`: QEMU answers [`Self::value`] from the state of the vCPU
/// that is running the callback (its thread's `current_cpu`), so the handle must stay on
/// that thread. Sending it to another thread does not compile:
///
/// ```compile_fail,E0277
/// # extern crate qemu_plugin_mock; // so that only the type check can fail
/// fn on_another_thread<T: Send>(_: T) {}
/// fn callback(info: qemu_plugin::MemoryInfo<'_>) {
///     on_another_thread(info);
/// }
/// ```
///
/// ```compile_fail,E0277
/// # extern crate qemu_plugin_mock; // so that only the type check can fail
/// fn shared_with_another_thread<T: Sync>(_: &T) {}
/// fn callback(info: qemu_plugin::MemoryInfo<'_>) {
///     shared_with_another_thread(&info);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MemoryInfo<'a> {
    info: sys::qemu_plugin_meminfo_t,
    marker: PhantomData<(&'a (), OnVcpuThread)>,
}

/// Makes a handle neither `Send` nor `Sync`: QEMU answers calls on it from the calling
/// thread's `current_cpu`, which only the vCPU thread running the callback has.
type OnVcpuThread = *const ();

impl MemoryInfo<'_> {
    /// # Safety
    /// `info` is the meminfo QEMU passed to the memory callback now running; the result
    /// must not outlive it.
    pub(crate) unsafe fn new(info: sys::qemu_plugin_meminfo_t) -> Self {
        Self {
            info,
            marker: PhantomData,
        }
    }

    /// log2 of the access size in bytes (0 = byte, 3 = 8 bytes).
    #[inline]
    pub fn size_shift(&self) -> usize {
        // SAFETY: `info` is a value type describing this access.
        (unsafe { sys::qemu_plugin_mem_size_shift(self.info) }) as usize
    }

    /// The access size in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        1 << self.size_shift()
    }

    /// True for a sign-extending load.
    #[inline]
    pub fn sign_extended(&self) -> bool {
        // SAFETY: as in `size_shift`.
        unsafe { sys::qemu_plugin_mem_is_sign_extended(self.info) }
    }

    /// True for a big-endian access.
    #[inline]
    pub fn big_endian(&self) -> bool {
        // SAFETY: as in `size_shift`.
        unsafe { sys::qemu_plugin_mem_is_big_endian(self.info) }
    }

    /// True for a store, false for a load.
    #[inline]
    pub fn is_store(&self) -> bool {
        // SAFETY: as in `size_shift`.
        unsafe { sys::qemu_plugin_mem_is_store(self.info) }
    }

    /// The value loaded or stored. Needs: QEMU 9.2 (plugin API v4).
    #[cfg(since_api_4)]
    #[inline]
    pub fn value(&self) -> MemValue {
        // SAFETY: valid during the memory callback, which is when `self` exists.
        MemValue::from(unsafe { sys::qemu_plugin_mem_get_value(self.info) })
    }

    /// The physical side of the access at `vaddr` (system mode); `None` in user mode.
    #[inline]
    pub fn hwaddr(&self, vaddr: u64) -> Option<HwAddr<'_>> {
        // SAFETY: valid during the memory callback; QEMU returns NULL in user mode.
        let p = unsafe { sys::qemu_plugin_get_hwaddr(self.info, vaddr) };
        NonNull::new(p).map(|ptr| HwAddr {
            ptr,
            marker: PhantomData,
        })
    }
}

/// A loaded or stored value. Needs: QEMU 9.2 (plugin API v4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemValue {
    /// 8 bits.
    U8(u8),
    /// 16 bits.
    U16(u16),
    /// 32 bits.
    U32(u32),
    /// 64 bits.
    U64(u64),
    /// 128 bits.
    U128(u128),
}

#[cfg(since_api_4)]
impl From<sys::qemu_plugin_mem_value> for MemValue {
    #[inline]
    fn from(v: sys::qemu_plugin_mem_value) -> Self {
        use sys::qemu_plugin_mem_value_type as T;
        // SAFETY: `type_` says which member of the union QEMU filled in.
        unsafe {
            match v.type_ {
                T::QEMU_PLUGIN_MEM_VALUE_U8 => MemValue::U8(v.data.u8_),
                T::QEMU_PLUGIN_MEM_VALUE_U16 => MemValue::U16(v.data.u16_),
                T::QEMU_PLUGIN_MEM_VALUE_U32 => MemValue::U32(v.data.u32_),
                T::QEMU_PLUGIN_MEM_VALUE_U64 => MemValue::U64(v.data.u64_),
                T::QEMU_PLUGIN_MEM_VALUE_U128 => {
                    MemValue::U128(((v.data.u128_.high as u128) << 64) | v.data.u128_.low as u128)
                }
            }
        }
    }
}

/// The physical side of a memory access (`struct qemu_plugin_hwaddr *`), system mode
/// only, borrowed for the memory callback. Needs: any QEMU with plugins.
///
/// Neither `Send` nor `Sync`, like [`MemoryInfo`]:
///
/// ```compile_fail,E0277
/// # extern crate qemu_plugin_mock; // so that only the type check can fail
/// fn on_another_thread<T: Send>(_: T) {}
/// fn callback(hw: qemu_plugin::HwAddr<'_>) {
///     on_another_thread(hw);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HwAddr<'a> {
    ptr: NonNull<sys::qemu_plugin_hwaddr>,
    marker: PhantomData<(&'a (), OnVcpuThread)>,
}

impl HwAddr<'_> {
    /// True if the access went to MMIO rather than RAM.
    #[inline]
    pub fn is_io(&self) -> bool {
        // SAFETY: valid during the memory callback.
        unsafe { sys::qemu_plugin_hwaddr_is_io(self.ptr.as_ptr()) }
    }

    /// The physical address.
    #[cfg(since_api_1)]
    #[inline]
    pub fn hwaddr(&self) -> u64 {
        // SAFETY: valid during the memory callback.
        unsafe { sys::qemu_plugin_hwaddr_phys_addr(self.ptr.as_ptr()) }
    }

    /// The name of the device (or RAM region) accessed.
    #[cfg(since_api_1)]
    pub fn device_name(&self) -> Result<Option<String>> {
        // SAFETY: valid during the memory callback; the string is QEMU-owned and static.
        let p = unsafe { sys::qemu_plugin_hwaddr_device_name(self.ptr.as_ptr()) };
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: non-null and NUL-terminated.
        Ok(Some(unsafe { CStr::from_ptr(p) }.to_str()?.to_string()))
    }
}
