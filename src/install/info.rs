//! What QEMU tells the plugin about itself at install: target, API versions, and the
//! system-mode vCPU counts (or that it runs in user mode).

use std::ffi::CStr;

use crate::error::Result;
use crate::sys::qemu_info_t;

/// The plugin API versions the running QEMU supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The current plugin API version of the running QEMU.
    pub current: i64,
    /// The oldest plugin API version it still loads. (The misspelling is the field name of
    /// the 10.1.0-v2 crate, kept for compatibility; see [`Version::minimum`].)
    pub mininum: i64,
}

impl Version {
    /// The oldest plugin API version the running QEMU loads.
    pub fn minimum(&self) -> i64 {
        self.mininum
    }
}

/// System-emulation details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// The most vCPUs this machine can have (`-smp maxcpus=`).
    pub max_vcpus: i64,
    /// The vCPUs it starts with (`-smp`).
    pub smp_vcpus: i64,
}

/// From the `version` member of QEMU's `qemu_info_t` (as in 10.1.0-v2).
impl From<&crate::sys::qemu_info_t__bindgen_ty_1> for Version {
    fn from(v: &crate::sys::qemu_info_t__bindgen_ty_1) -> Self {
        Version {
            current: i64::from(v.cur),
            mininum: i64::from(v.min),
        }
    }
}

/// From the `system` member of QEMU's `qemu_info_t` (as in 10.1.0-v2).
impl From<&crate::sys::qemu_info_t__bindgen_ty_2__bindgen_ty_1> for System {
    fn from(s: &crate::sys::qemu_info_t__bindgen_ty_2__bindgen_ty_1) -> Self {
        System {
            max_vcpus: i64::from(s.max_vcpus),
            smp_vcpus: i64::from(s.smp_vcpus),
        }
    }
}

/// What QEMU tells the plugin at install. Needs: any QEMU with plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The target, e.g. `x86_64-linux-user`.
    pub target_name: String,
    /// API versions.
    pub version: Version,
    /// `Some` in system mode, `None` in user mode.
    pub system: Option<System>,
}

impl Info {
    /// Reads QEMU's `qemu_info_t`.
    ///
    /// # Safety
    /// `info` must point to a valid `qemu_info_t` whose `target_name` is a NUL-terminated
    /// string, for the duration of the call (QEMU guarantees this during install).
    pub(crate) unsafe fn from_raw(info: *const qemu_info_t) -> Result<Self> {
        // SAFETY: the caller guarantees `info` is valid for reads during this call.
        let info = unsafe { &*info };
        let target_name = if info.target_name.is_null() {
            String::new()
        } else {
            // SAFETY: QEMU's target name is a NUL-terminated static string.
            unsafe { CStr::from_ptr(info.target_name) }
                .to_str()?
                .to_string()
        };
        let system = if info.system_emulation {
            // SAFETY: `system_emulation` is true, so the `system` member of the union is the
            // one QEMU filled in (plugins/loader.c, qemu_plugin_fillin_mode_info).
            let s = unsafe { info.__bindgen_anon_1.system };
            Some(System::from(&s))
        } else {
            None
        };
        Ok(Info {
            target_name,
            version: Version::from(&info.version),
            system,
        })
    }

    /// True in user mode (linux-user and friends), where every guest thread is a vCPU.
    pub fn is_user_mode(&self) -> bool {
        self.system.is_none()
    }
}

#[cfg(test)]
mod conversion_tests {
    use super::{System, Version};
    use crate::sys;

    /// The `From` conversions of 10.1.0-v2 from QEMU's raw `qemu_info_t` members.
    #[test]
    fn version_and_system_convert_from_qemus_raw_members() {
        let v = sys::qemu_info_t__bindgen_ty_1 { min: 2, cur: 5 };
        assert_eq!(
            Version::from(&v),
            Version {
                current: 5,
                mininum: 2
            }
        );
        let s = sys::qemu_info_t__bindgen_ty_2__bindgen_ty_1 {
            smp_vcpus: 4,
            max_vcpus: 8,
        };
        assert_eq!(
            System::from(&s),
            System {
                max_vcpus: 8,
                smp_vcpus: 4
            }
        );
    }
}
