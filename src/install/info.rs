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
            Some(System {
                max_vcpus: s.max_vcpus as i64,
                smp_vcpus: s.smp_vcpus as i64,
            })
        } else {
            None
        };
        Ok(Info {
            target_name,
            version: Version {
                current: info.version.cur as i64,
                mininum: info.version.min as i64,
            },
            system,
        })
    }

    /// True in user mode (linux-user and friends), where every guest thread is a vCPU.
    pub fn is_user_mode(&self) -> bool {
        self.system.is_none()
    }
}
