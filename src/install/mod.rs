//! The plugin's entry points: the `qemu_plugin_version` and `qemu_plugin_install` symbols
//! QEMU looks up, and the registry that `register!` / `per_vcpu!` fill before QEMU calls
//! install.

use std::ffi::{CStr, c_char, c_int};
use std::sync::Mutex;

use crate::PluginId;
use crate::callbacks::{failure, trampoline::Hook};
use crate::error::Failure;
use crate::error::Result;
use crate::sys::{QEMU_PLUGIN_VERSION, qemu_info_t, qemu_plugin_id_t};

pub mod args;
pub mod info;

pub use args::{Args, Value};
pub use info::{Info, System, Version};

/// What `qemu_plugin_install` returns on success.
pub const PLUGIN_INSTALL_SUCCESS: c_int = 0;
/// What `qemu_plugin_install` returns when the plugin refuses to install.
pub const PLUGIN_INSTALL_FAILURE: c_int = 1;

/// The plugin API version this plugin was built for; QEMU refuses to load it unless this
/// lies between its minimum and current version.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static qemu_plugin_version: c_int = QEMU_PLUGIN_VERSION as c_int;

/// A function that installs one kind of plugin: it registers its callbacks with QEMU.
pub type Installer = fn(PluginId, &Args, &Info) -> Result<()>;

static INSTALLER: Mutex<Option<Installer>> = Mutex::new(None);

/// Records which plugin this shared object installs. The `register!` and `per_vcpu!`
/// macros call it from a constructor that runs when QEMU loads the object; tests call it
/// directly before the mock host installs. A later call replaces an earlier one.
#[doc(hidden)]
pub fn set_installer(name: &'static str, install: Installer) {
    crate::identity::set_name(name);
    *INSTALLER.lock().unwrap_or_else(|p| p.into_inner()) = Some(install);
}

/// Forgets the registered installer (for tests of a plugin that never calls
/// `set_installer`).
#[cfg(test)]
pub(crate) fn clear_installer() {
    *INSTALLER.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Called by QEMU when it loads the plugin.
///
/// Parses the arguments, reads `info`, and runs the installer registered by `register!`
/// or `per_vcpu!`. Any error, and any panic, is printed to stderr as one line naming the
/// plugin and the problem, and makes this return non-zero, so QEMU refuses the plugin.
///
/// # Safety
/// Only QEMU calls this: `info` points to a valid `qemu_info_t` for the duration of the
/// call, and `argv` to `argc` NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    info: *const qemu_info_t,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    failure::set_installing(true);
    let result = crate::callbacks::trampoline::guard(Hook::Install, Err(()), || {
        // SAFETY: QEMU passes `argc` valid NUL-terminated strings in `argv` and a valid
        // `info` for the duration of this call (plugins/loader.c, plugin_load).
        match unsafe { install(id, info, argc, argv) } {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                failure::install_error(&e);
                Ok(Err(()))
            }
        }
    });
    failure::set_installing(false);
    match result {
        Ok(()) => PLUGIN_INSTALL_SUCCESS,
        Err(()) => PLUGIN_INSTALL_FAILURE,
    }
}

/// # Safety
/// As for [`qemu_plugin_install`].
unsafe fn install(
    id: qemu_plugin_id_t,
    info: *const qemu_info_t,
    argc: c_int,
    argv: *const *const c_char,
) -> Result<()> {
    let raw = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: `i < argc`, and QEMU's `argv` holds `argc` valid C strings.
            let s = unsafe { CStr::from_ptr(*argv.add(i)) };
            s.to_string_lossy().into_owned()
        })
        .collect::<Vec<_>>();
    let args = Args::parse(raw)?;
    // SAFETY: forwarded from this function's contract.
    let info = unsafe { Info::from_raw(info) }?;
    crate::identity::set_user_mode(info.is_user_mode());
    crate::identity::set_qemu_api(info.version.current);
    let registered = *INSTALLER.lock().unwrap_or_else(|p| p.into_inner());
    // A plugin of 10.1.0-v2's style may have stored itself with `PLUGIN.set(..)` or
    // `register_plugin(..)` (from a constructor of its own) instead of `register!`.
    let install = match registered {
        Some(install) => install,
        None if crate::plugin::PLUGIN.get().is_some() => crate::plugin::install,
        None => return Err(Failure::NoPluginRegistered.into()),
    };
    failure::prepare(id);
    crate::host::pin_module();
    // Marks each vCPU thread as one before it runs guest code (`callbacks::context`);
    // the plugin's own init callback, if it registers one, is chained behind it.
    crate::callbacks::lifecycle::register_vcpu_init_marker(id);
    install(id, &args, &info)
}
