//! Guest registers: the list QEMU exposes for the current vCPU, and reads and writes
//! through real glib byte arrays.

use std::ffi::CStr;
use std::fmt;

use crate::callbacks::context::require_vcpu_thread;
use crate::error::{Error, Result};
use crate::glib::ByteArray;
use crate::sys;

/// One guest register (`qemu_plugin_reg_descriptor`). Needs: QEMU 9.0 (plugin API v2).
///
/// Reads and writes must happen on a vCPU thread inside a callback registered with
/// `QEMU_PLUGIN_CB_R_REGS` (read) or `QEMU_PLUGIN_CB_RW_REGS` (write); otherwise QEMU
/// refuses and the call returns an error.
#[derive(Clone)]
pub struct RegisterDescriptor<'a> {
    handle: usize,
    /// The register's name, e.g. `rip`.
    pub name: String,
    /// The GDB feature it belongs to, if any.
    pub feature: Option<String>,
    /// QEMU flags it read-only (API 6 and later: the PC, which only
    /// `qemu_plugin_set_pc` may change); always `false` before API 6, which does not say.
    read_only: bool,
    marker: std::marker::PhantomData<&'a ()>,
}

impl fmt::Debug for RegisterDescriptor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterDescriptor")
            .field("name", &self.name)
            .field("feature", &self.feature)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl RegisterDescriptor<'_> {
    fn raw(&self) -> *mut sys::qemu_plugin_register {
        self.handle as *mut sys::qemu_plugin_register
    }

    /// Reads the register's current value (target byte order).
    pub fn read(&self) -> Result<Vec<u8>> {
        self.read_with(|bytes| bytes.to_vec())
    }

    /// Reads the register into `buf` without allocating (for hot paths): copies the
    /// first `buf.len()` bytes of its value (target byte order) and returns the
    /// register's size, which may be more or less than `buf.len()`; bytes of `buf` past
    /// the value are left as they were. Needs: QEMU 9.0 (plugin API v2).
    pub fn read_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.read_with(|bytes| {
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            bytes.len()
        })
    }

    /// Reads the register into this thread's scratch array and hands `f` its bytes.
    fn read_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        require_vcpu_thread("qemu_plugin_read_register")?;
        ByteArray::with_scratch(|buf| {
            // SAFETY: `buf` is a real, empty glib array QEMU may append to; the handle is
            // an opaque register number QEMU gave us (never dereferenced as memory).
            let r = unsafe { sys::qemu_plugin_read_register(self.raw(), buf.as_ptr()) };
            if !sys::register_access_ok(r, false) {
                return Err(Error::RegisterReadError {
                    name: self.name.clone(),
                });
            }
            Ok(f(buf.as_slice()))
        })
    }

    /// Whether QEMU refuses writes to this register (API 6 and later flag the PC so, as
    /// `rip`, `pc`, ...; before API 6 QEMU does not say, and this is `false`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Writes the register (target byte order). `data` is only read; it is `&mut` because
    /// that is 10.1.0-v2's signature. A register QEMU flags read-only (the PC, under API 6
    /// and later) is an error here, where QEMU 11 would abort. Needs: QEMU 10.1 (plugin
    /// API v5).
    #[cfg(since_api_5)]
    pub fn write(&self, data: &mut [u8]) -> Result<()> {
        require_vcpu_thread("qemu_plugin_write_register")?;
        if self.read_only {
            return Err(Error::from(crate::Failure::ReadOnlyRegister {
                name: self.name.clone(),
            }));
        }
        let buf = ByteArray::from_slice(data)?;
        // SAFETY: as in `read`; QEMU only reads `buf`.
        let r = unsafe { sys::qemu_plugin_write_register(self.raw(), buf.as_ptr()) };
        if !sys::register_access_ok(r, true) {
            return Err(Error::RegisterWriteError {
                name: self.name.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(feature = "num-traits")]
impl RegisterDescriptor<'_> {
    /// Reads the register as an integer `T` from its bytes in big-endian order (feature
    /// `num-traits`). [`Error::InvalidRegisterReadSize`] if the register is not exactly
    /// `size_of::<T>()` bytes (10.1.0-v2 panicked there).
    pub fn read_be<T>(&self) -> Result<T>
    where
        T: num_traits::PrimInt + num_traits::FromBytes,
        T::Bytes: Default + Sized,
    {
        self.read_int(T::from_be_bytes)
    }

    /// Reads the register as an integer `T` from its bytes in little-endian order
    /// (feature `num-traits`); errors as for [`Self::read_be`].
    pub fn read_le<T>(&self) -> Result<T>
    where
        T: num_traits::PrimInt + num_traits::FromBytes,
        T::Bytes: Default + Sized,
    {
        self.read_int(T::from_le_bytes)
    }

    fn read_int<T>(&self, from: impl FnOnce(&T::Bytes) -> T) -> Result<T>
    where
        T: num_traits::FromBytes,
        T::Bytes: Default + Sized,
    {
        let data = self.read()?;
        let mut bytes = T::Bytes::default();
        if bytes.as_ref().len() != data.len() {
            return Err(Error::InvalidRegisterReadSize {
                name: self.name.clone(),
                size: size_of::<T>(),
            });
        }
        bytes.as_mut().copy_from_slice(&data);
        Ok(from(&bytes))
    }
}

/// The current vCPU's registers. Call it from a vCPU callback (e.g. vcpu_init); anywhere
/// else (a thread of the plugin's own, the install, a system-mode exit on QEMU's main
/// thread) it is [`Failure::NotOnVcpuThread`](crate::Failure::NotOnVcpuThread), where QEMU itself would abort.
/// Needs: QEMU 9.0 (plugin API v2).
pub fn qemu_plugin_get_registers<'a>() -> Result<Vec<RegisterDescriptor<'a>>> {
    require_vcpu_thread("qemu_plugin_get_registers")?;
    // SAFETY: QEMU returns a new GArray of descriptors (or NULL) that we must free.
    let array = unsafe { sys::qemu_plugin_get_registers() };
    if array.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: a non-null GArray from QEMU holds `len` descriptors at `data`.
    let descs = unsafe {
        std::slice::from_raw_parts(
            (*array).data.cast::<sys::qemu_plugin_reg_descriptor>(),
            (*array).len as usize,
        )
    };
    let out = descs
        .iter()
        .map(|d| {
            // SAFETY: names are NUL-terminated strings owned by QEMU for the process's life.
            let name = unsafe { CStr::from_ptr(d.name) }
                .to_string_lossy()
                .into_owned();
            let feature = if d.feature.is_null() {
                None
            } else {
                // SAFETY: as above; checked non-null.
                let f = unsafe { CStr::from_ptr(d.feature) };
                Some(f.to_string_lossy().into_owned())
            };
            RegisterDescriptor {
                handle: d.handle as usize,
                name,
                feature,
                #[cfg(since_api_6)]
                read_only: d.is_readonly,
                #[cfg(not(since_api_6))]
                read_only: false,
                marker: Default::default(),
            }
        })
        .collect();
    // SAFETY: the caller frees the array (not the strings), exactly once (qemu-plugin.h).
    unsafe { sys::g_array_free(array, 1) };
    Ok(out)
}

/// The current vCPU's register called `name`, by QEMU's name for it (the target's GDB
/// description: `rip`, `rsp`, `rdx` on x86_64; `pc`, `sp`, `x2` on aarch64; `pc`, `sp`,
/// `a2` on riscv64). Call it where [`qemu_plugin_get_registers`] may be called; an
/// unknown name is [`Failure::NoSuchRegister`](crate::Failure::NoSuchRegister), which
/// lists the names this vCPU has. Needs: QEMU 9.0 (plugin API v2).
pub fn find_register<'a>(name: &str) -> Result<RegisterDescriptor<'a>> {
    let all = qemu_plugin_get_registers()?;
    let known = || {
        all.iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match all.iter().position(|r| r.name == name) {
        Some(i) => Ok(all[i].clone()),
        None => Err(crate::Failure::NoSuchRegister {
            name: name.to_string(),
            known: known(),
        }
        .into()),
    }
}
