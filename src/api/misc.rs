//! Plugin output (`qemu_plugin_outs`) and QEMU's boolean parser.

use std::ffi::CString;

use crate::error::{Error, Result};
use crate::sys;

/// Writes `string` to QEMU's log (shown with `-d plugin`, redirected with `-D file`).
/// An interior NUL byte is an error. Needs: any QEMU with plugins.
pub fn qemu_plugin_outs<S: AsRef<str>>(string: S) -> Result<()> {
    let c = CString::new(string.as_ref())?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { sys::qemu_plugin_outs(c.as_ptr()) };
    Ok(())
}

/// Like [`qemu_plugin_outs`], but replaces NUL bytes instead of failing (for reports).
pub(crate) fn outs_raw(string: &str) {
    let _ = qemu_plugin_outs(string.replace('\0', "\\0"));
}

/// Parses a boolean the way QEMU does (`on`/`off`, `yes`/`no`, `true`/`false`, `y`/`n`).
/// Any QEMU with plugins (before QEMU 6.0, API 0, the crate parses it itself).
pub fn qemu_plugin_bool_parse<S: AsRef<str>>(name: S, val: S) -> Result<bool> {
    let invalid = || Error::InvalidBool {
        name: name.as_ref().to_string(),
        val: val.as_ref().to_string(),
    };
    #[cfg(since_api_1)]
    {
        let (Ok(n), Ok(v)) = (CString::new(name.as_ref()), CString::new(val.as_ref())) else {
            return Err(invalid());
        };
        let mut out = false;
        // SAFETY: both strings are valid for the call; `out` is a valid bool to write.
        if unsafe { sys::qemu_plugin_bool_parse(n.as_ptr(), v.as_ptr(), &mut out) } {
            Ok(out)
        } else {
            Err(invalid())
        }
    }
    // API 0 has no `qemu_plugin_bool_parse`: the same words, parsed here.
    #[cfg(not(since_api_1))]
    match val.as_ref() {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(invalid()),
    }
}
