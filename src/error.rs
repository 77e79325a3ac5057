//! The crate's error type: one enum for every failure the API can report.
//!
//! The variant names of the `qemu-plugin` 10.1.0-v2 crate are kept, so code that matches
//! on them still compiles; the variants added here name the argument, hook or QEMU
//! version involved, so that a message alone tells a user what to fix.

use std::fmt;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The outcome of a physical-memory operation (`enum qemu_plugin_hwaddr_operation_result`,
/// QEMU 10.1, plugin API v5).
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwaddrOperationResult {
    /// The operation completed.
    #[error("operation completed successfully")]
    Ok,
    /// An unspecified error.
    #[error("unspecified error")]
    Error,
    /// The device reported an error.
    #[error("device error")]
    DeviceError,
    /// Access was denied.
    #[error("access denied")]
    AccessDenied,
    /// The address is not valid.
    #[error("invalid address")]
    InvalidAddress,
    /// The address space is not valid.
    #[error("invalid address space")]
    InvalidAddressSpace,
}

/// Every error this crate reports: exactly the variants of the `qemu-plugin` 10.1.0-v2
/// crate (under the same plugin-API features), so that its users' exhaustive `match`es
/// still compile. The failures this crate adds (argument checks, QEMU versions, threads)
/// are a [`Failure`], carried by [`Error::BoxedError`]; [`Error::failure`] finds it.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A plugin argument has no key (it starts with `=`).
    #[error("plugin argument `{argument}` has no key: expected key=value")]
    MissingArgKey {
        /// The whole argument as given.
        argument: String,
    },
    /// A plugin argument has no `=value` part.
    #[error("plugin argument `{argument}` has no value: expected {argument}=VALUE")]
    MissingArgValue {
        /// The whole argument as given.
        argument: String,
    },
    /// A boolean argument does not parse.
    #[error(
        "invalid boolean for argument `{name}`: {} (expected on/off, true/false or yes/no)",
        shown(.val)
    )]
    InvalidBool {
        /// The argument's key.
        name: String,
        /// The value given.
        val: String,
    },
    /// The uninstall callback was already set by an earlier call.
    #[error("qemu_plugin_uninstall was already called; its callback is set")]
    ConcurrentPluginUninstallCallbackSet,
    /// The reset callback was set concurrently.
    #[error("qemu_plugin_reset callback was set concurrently")]
    ConcurrentPluginResetCallbackSet,
    /// The reset callback's state is poisoned.
    #[error("invalid state for the plugin reset callback")]
    PluginResetCallbackState,
    /// An instruction index past the end of a translation block.
    #[error("instruction index {index} is out of range for a block of {size} instructions")]
    InvalidInstructionIndex {
        /// The index asked for.
        index: usize,
        /// The number of instructions in the block.
        size: usize,
    },
    /// QEMU returned no disassembly for an instruction.
    #[error("no disassembly available for this instruction")]
    NoDisassemblyString,
    /// A register read returned an unexpected size.
    #[error("invalid size {size} for a read of register {name}")]
    InvalidRegisterReadSize {
        /// The register.
        name: String,
        /// The size asked for.
        size: usize,
    },
    /// Reading a register failed (QEMU returned -1; was the callback registered with
    /// `QEMU_PLUGIN_CB_R_REGS` or `QEMU_PLUGIN_CB_RW_REGS`?).
    #[error("reading register {name} failed (does the callback have register access?)")]
    RegisterReadError {
        /// The register.
        name: String,
    },
    /// Writing a register failed (QEMU returned -1; the callback needs
    /// `QEMU_PLUGIN_CB_RW_REGS`).
    #[error("writing register {name} failed (does the callback have QEMU_PLUGIN_CB_RW_REGS?)")]
    RegisterWriteError {
        /// The register.
        name: String,
    },
    /// Reading guest virtual memory failed.
    #[error("reading {len} bytes at virtual address {addr:#x} failed")]
    #[cfg(since_api_4)]
    VaddrReadError {
        /// The address.
        addr: u64,
        /// The length.
        len: u32,
    },
    #[cfg(since_api_5)]
    /// Writing guest virtual memory failed.
    #[error("writing {len} bytes at virtual address {addr:#x} failed")]
    VaddrWriteError {
        /// The address.
        addr: u64,
        /// The length.
        len: u32,
    },
    #[cfg(since_api_5)]
    /// Reading guest physical memory failed.
    #[error("reading {len} bytes at physical address {addr:#x} failed: {result}")]
    HwaddrReadError {
        /// The address.
        addr: u64,
        /// The length.
        len: u32,
        /// QEMU's answer.
        result: HwaddrOperationResult,
    },
    #[cfg(since_api_5)]
    /// Writing guest physical memory failed.
    #[error("writing {len} bytes at physical address {addr:#x} failed: {result}")]
    HwaddrWriteError {
        /// The address.
        addr: u64,
        /// The length.
        len: u32,
        /// QEMU's answer.
        result: HwaddrOperationResult,
    },
    #[cfg(since_api_5)]
    /// A virtual address has no physical translation.
    #[error("virtual address {vaddr:#x} has no physical translation")]
    VaddrTranslateError {
        /// The address.
        vaddr: u64,
    },
    /// The global plugin instance was already set.
    #[error("the plugin instance is already set")]
    PluginInstanceSetError,
    /// A transparently wrapped `std::str::Utf8Error`.
    #[error(transparent)]
    StdUtf8Error(#[from] std::str::Utf8Error),
    /// A transparently wrapped `std::string::FromUtf8Error`.
    #[error(transparent)]
    FromUtf8Error(#[from] std::string::FromUtf8Error),
    /// A transparently wrapped `std::ffi::NulError`.
    #[error(transparent)]
    NulError(#[from] std::ffi::NulError),
    /// A transparently wrapped `std::io::Error`.
    #[error(transparent)]
    IoError(#[from] std::io::Error),
    /// A transparently wrapped `std::fmt::Error`.
    #[error(transparent)]
    FmtError(#[from] std::fmt::Error),
    /// A transparently wrapped `std::num::ParseIntError`.
    #[error(transparent)]
    ParseIntError(#[from] std::num::ParseIntError),
    /// A transparently wrapped `std::num::ParseFloatError`.
    #[error(transparent)]
    ParseFloatError(#[from] std::num::ParseFloatError),
    /// A transparently wrapped `std::num::TryFromIntError`.
    #[error(transparent)]
    TryFromIntError(#[from] std::num::TryFromIntError),
    /// A transparently wrapped `std::str::ParseBoolError`.
    #[error(transparent)]
    ParseBoolError(#[from] std::str::ParseBoolError),
    /// A transparently wrapped `std::array::TryFromSliceError`.
    #[error(transparent)]
    TryFromSliceError(#[from] std::array::TryFromSliceError),
    /// A transparently wrapped `std::ffi::FromBytesWithNulError`.
    #[error(transparent)]
    FromBytesWithNulError(#[from] std::ffi::FromBytesWithNulError),
    /// A transparently wrapped `std::ffi::IntoStringError`.
    #[error(transparent)]
    IntoStringError(#[from] std::ffi::IntoStringError),
    /// A transparently wrapped `std::env::VarError`.
    #[error(transparent)]
    VarError(#[from] std::env::VarError),
    /// A transparently wrapped `std::time::SystemTimeError`.
    #[error(transparent)]
    SystemTimeError(#[from] std::time::SystemTimeError),
    /// A transparently wrapped `std::cell::BorrowMutError`.
    #[error(transparent)]
    BorrowMutError(#[from] std::cell::BorrowMutError),
    /// A transparently wrapped `std::convert::Infallible`.
    #[error(transparent)]
    Infallible(#[from] std::convert::Infallible),
    /// A transparently wrapped boxed error.
    #[error(transparent)]
    BoxedError(#[from] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A transparently wrapped `std::alloc::LayoutError`.
    #[error(transparent)]
    LayoutError(#[from] std::alloc::LayoutError),
    /// A transparently wrapped `std::cell::BorrowError`.
    #[error(transparent)]
    BorrowError(#[from] std::cell::BorrowError),
    /// A transparently wrapped `std::char::CharTryFromError`.
    #[error(transparent)]
    CharTryFromError(#[from] std::char::CharTryFromError),
    /// A transparently wrapped `std::char::DecodeUtf16Error`.
    #[error(transparent)]
    DecodeUtf16Error(#[from] std::char::DecodeUtf16Error),
    /// A transparently wrapped `std::char::ParseCharError`.
    #[error(transparent)]
    ParseCharError(#[from] std::char::ParseCharError),
    /// A transparently wrapped `std::char::TryFromCharError`.
    #[error(transparent)]
    TryFromCharError(#[from] std::char::TryFromCharError),
    /// A transparently wrapped `std::collections::TryReserveError`.
    #[error(transparent)]
    TryReserveError(#[from] std::collections::TryReserveError),
    /// A transparently wrapped `std::env::JoinPathsError`.
    #[error(transparent)]
    JoinPathsError(#[from] std::env::JoinPathsError),
    /// A transparently wrapped `std::ffi::FromBytesUntilNulError`.
    #[error(transparent)]
    FromBytesUntilNulError(#[from] std::ffi::FromBytesUntilNulError),
    /// A transparently wrapped `std::ffi::FromVecWithNulError`.
    #[error(transparent)]
    FromVecWithNulError(#[from] std::ffi::FromVecWithNulError),
    /// A transparently wrapped `std::fs::TryLockError`.
    #[error(transparent)]
    FsTryLockError(#[from] std::fs::TryLockError),
    /// A transparently wrapped `std::net::AddrParseError`.
    #[error(transparent)]
    AddrParseError(#[from] std::net::AddrParseError),
    /// A transparently wrapped `std::path::StripPrefixError`.
    #[error(transparent)]
    StripPrefixError(#[from] std::path::StripPrefixError),
    /// A transparently wrapped `std::string::FromUtf16Error`.
    #[error(transparent)]
    FromUtf16Error(#[from] std::string::FromUtf16Error),
    /// A transparently wrapped `std::sync::mpsc::RecvError`.
    #[error(transparent)]
    RecvError(#[from] std::sync::mpsc::RecvError),
    /// A transparently wrapped `std::sync::mpsc::RecvTimeoutError`.
    #[error(transparent)]
    RecvTimeoutError(#[from] std::sync::mpsc::RecvTimeoutError),
    /// A transparently wrapped `std::sync::mpsc::TryRecvError`.
    #[error(transparent)]
    TryRecvError(#[from] std::sync::mpsc::TryRecvError),
    /// A transparently wrapped `std::thread::AccessError`.
    #[error(transparent)]
    AccessError(#[from] std::thread::AccessError),
    /// A transparently wrapped `std::time::TryFromFloatSecsError`.
    #[error(transparent)]
    TryFromFloatSecsError(#[from] std::time::TryFromFloatSecsError),
    /// A transparently wrapped `anyhow::Error` (feature `anyhow`).
    #[cfg(feature = "anyhow")]
    #[error(transparent)]
    AnyhowError(#[from] anyhow::Error),
}

/// The failures this crate reports beyond those of 10.1.0-v2, each naming the
/// argument, QEMU version or thread involved so that the message alone says what to fix.
/// They reach user code as `Error::BoxedError` (see [`Error::failure`]).
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Failure {
    /// An argument's value has the wrong type, or is out of range.
    #[error("invalid value for argument `{key}`: {} (expected {expected})", shown(.value))]
    InvalidArgument {
        /// The argument's key.
        key: String,
        /// The value given.
        value: String,
        /// What the plugin accepts, in words.
        expected: String,
    },
    /// The plugin does not know this argument.
    #[error("unknown argument `{key}` (known arguments: {known})")]
    UnknownArgument {
        /// The key given.
        key: String,
        /// The keys the plugin accepts, comma-separated.
        known: String,
    },
    /// A required argument was not given.
    #[error("missing required argument `{key}` ({expected})")]
    MissingArgument {
        /// The key that is required.
        key: String,
        /// What it should be, in words.
        expected: String,
    },
    /// The same argument was given twice.
    #[error("argument `{key}` given more than once")]
    DuplicateArgument {
        /// The repeated key.
        key: String,
    },
    /// A write to a register QEMU flags read-only (API 6 and later: the PC).
    #[error(
        "register {name} is read-only (QEMU 11 aborts on a write to it; a callback changes \
         the PC by returning the new one from `InsnTranslation::on_exec_redirect`)"
    )]
    ReadOnlyRegister {
        /// The register's name.
        name: String,
    },
    /// The current vCPU has no register of this name.
    #[error("this vCPU has no register named `{name}` (it has: {known})")]
    NoSuchRegister {
        /// The name asked for.
        name: String,
        /// The names QEMU lists for the vCPU, comma-separated.
        known: String,
    },
    /// A buffer is longer than QEMU's API can take in one call.
    #[error("a buffer of {len} bytes is longer than QEMU accepts in one call")]
    BufferTooLarge {
        /// The length given.
        len: usize,
    },
    /// No plugin was registered with `register!` or `per_vcpu!` in this shared object.
    #[error("no plugin is registered in this shared object (missing register! or per_vcpu!)")]
    NoPluginRegistered,
    /// The running QEMU lacks an API this call needs.
    #[error("{api} needs QEMU >= {needs}; this QEMU does not provide it")]
    Unsupported {
        /// The C function.
        api: &'static str,
        /// The first QEMU version that has it.
        needs: &'static str,
    },
    /// A function that QEMU only allows on a vCPU thread (inside one of its callbacks) was
    /// called elsewhere; QEMU would have aborted.
    #[error(
        "{api} only works on a vCPU thread, inside a callback QEMU runs for that vCPU \
         (QEMU would abort here)"
    )]
    NotOnVcpuThread {
        /// The C function.
        api: &'static str,
    },
    /// The per-vCPU runtime of the named plugin type is not the one installed.
    #[error("no per-vCPU runtime for plugin type {type_name} is installed")]
    RuntimeNotInstalled {
        /// The type asked for.
        type_name: &'static str,
    },
    /// Any other failure, described in words.
    #[error("{0}")]
    Other(String),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        Error::BoxedError(Box::new(failure))
    }
}

/// An argument's value as a message shows it: quoted, or in words when it is empty (as
/// QEMU passes `key=`), where a pair of empty quotes would be easy to misread.
fn shown(value: &str) -> String {
    if value.is_empty() {
        "an empty value".to_string()
    } else {
        format!("`{value}`")
    }
}

impl Error {
    /// An error carrying a message, for plugin code that has nothing more specific.
    pub fn msg(message: impl fmt::Display) -> Self {
        Failure::Other(message.to_string()).into()
    }

    /// The crate's own [`Failure`] this error carries, if it is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::BoxedError(e) => e.downcast_ref::<Failure>(),
            _ => None,
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Error>();
};

#[cfg(test)]
mod tests {
    use super::{Error, Result};

    /// `?` converts the standard errors the 10.1.0-v2 crate converted, so its users'
    /// functions keep compiling.
    #[test]
    fn question_mark_converts_the_standard_errors_of_10_1_0_v2() {
        fn parse_char(s: &str) -> Result<char> {
            Ok(s.parse::<char>()?)
        }
        fn strip(p: &std::path::Path) -> Result<&std::path::Path> {
            Ok(p.strip_prefix("/nowhere")?)
        }
        assert!(matches!(parse_char("ab"), Err(Error::ParseCharError(_))));
        assert!(matches!(
            strip(std::path::Path::new("/tmp")),
            Err(Error::StripPrefixError(_))
        ));
    }

    /// Feature `anyhow`: `?` on an `anyhow::Error` gives `Error::AnyhowError`, whose
    /// message is the original one.
    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_errors_convert_with_question_mark() {
        fn fails() -> Result<()> {
            Err(anyhow::anyhow!("the tracer's own failure"))?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert!(matches!(e, Error::AnyhowError(_)));
        assert_eq!(e.to_string(), "the tracer's own failure");
    }
}
