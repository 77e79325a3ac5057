//! Discontinuity callbacks (interrupts, exceptions, host calls): QEMU 10.2's
//! `qemu_plugin_register_vcpu_discon_cb`, looked up at run time so that a plugin using
//! this crate still loads in QEMU 10.1.

use std::ffi::c_void;

use crate::error::Failure;
use crate::error::{Error, Result};
use crate::sys::callback_abi::{self as abi, id_shaped};
use crate::{PluginId, sys};

/// Which discontinuities to be called for: a bit mask of QEMU's
/// `enum qemu_plugin_discon_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DisconTypes(pub(crate) i32);

impl DisconTypes {
    /// None: do not register.
    pub const NONE: Self = Self(0);
    /// Interrupts (asynchronous).
    pub const INTERRUPT: Self = Self(sys::QEMU_PLUGIN_DISCON_INTERRUPT);
    /// Exceptions (synchronous).
    pub const EXCEPTION: Self = Self(sys::QEMU_PLUGIN_DISCON_EXCEPTION);
    /// Host calls.
    pub const HOSTCALL: Self = Self(sys::QEMU_PLUGIN_DISCON_HOSTCALL);
    /// All kinds.
    pub const ALL: Self = Self(sys::QEMU_PLUGIN_DISCON_ALL);

    /// Both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True if no kind is selected.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw mask.
    pub const fn bits(self) -> i32 {
        self.0
    }
}

/// The kind of one discontinuity event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconKind {
    /// An interrupt.
    Interrupt,
    /// An exception.
    Exception,
    /// A host call.
    HostCall,
    /// A kind this crate does not know yet (the raw value).
    Other(i32),
}

impl From<i32> for DisconKind {
    fn from(v: i32) -> Self {
        match v {
            sys::QEMU_PLUGIN_DISCON_INTERRUPT => DisconKind::Interrupt,
            sys::QEMU_PLUGIN_DISCON_EXCEPTION => DisconKind::Exception,
            sys::QEMU_PLUGIN_DISCON_HOSTCALL => DisconKind::HostCall,
            other => DisconKind::Other(other),
        }
    }
}

/// The raw discontinuity callback type: `qemu_plugin_vcpu_discon_cb_t` of QEMU 10.2, which
/// gets the plugin id (under API 7, where QEMU passes no id, the crate passes it).
pub type DisconCallback = Option<sys::IdDisconCb>;

/// Registers `cb` for the discontinuities in `types`.
///
/// Needs: QEMU 10.2. On an older QEMU this returns [`Failure::Unsupported`] and registers
/// nothing; the plugin still loads.
pub fn qemu_plugin_register_vcpu_discon_cb(
    id: PluginId,
    types: DisconTypes,
    cb: DisconCallback,
) -> Result<()> {
    let (cb, ud) = id_shaped::discon(cb);
    register_api_shaped(id, types, cb, ud)
}

/// Registers a discontinuity callback of the selected API's shape (the runtime's).
pub(crate) fn register_api_shaped(
    id: PluginId,
    types: DisconTypes,
    cb: Option<sys::DisconCb>,
    userdata: *mut c_void,
) -> Result<()> {
    let register = crate::host::discon_register_fn().ok_or_else(|| {
        Error::from(Failure::Unsupported {
            api: "qemu_plugin_register_vcpu_discon_cb",
            needs: "10.2",
        })
    })?;
    // SAFETY: `register` is QEMU's function with the declared signature (looked up by
    // name); `cb` is a valid function of this (pinned) object or None, and `userdata`
    // is what it expects.
    unsafe { abi::register_discon(register, id, types.0, cb, userdata) };
    Ok(())
}
