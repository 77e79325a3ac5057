//! Finds the loader's own file and its bundled builds, and loads one build as a shared
//! object of its own.
//!
//! A build is copied into an anonymous memory file (`memfd_create`) and `dlopen`ed from
//! `/proc/self/fd/N`, with local symbol scope, so nothing is written to disk and two
//! bundles in one QEMU never see each other's symbols. A loaded build is never unloaded:
//! QEMU unloads the loader when it uninstalls the plugin, after removing its callbacks,
//! and keeping the build mapped costs only its pages, whereas unloading code that a
//! thread-local destructor or a late callback could still reach would not be sound.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::ffi;
use crate::format::{self, Entry, FormatError};

/// The signature QEMU declares for `qemu_plugin_install` in every API version.
pub type InstallFn = unsafe extern "C" fn(u64, *const c_void, c_int, *mut *mut c_char) -> c_int;

/// The loader's own file and the builds bundled in it.
#[derive(Debug)]
pub struct Bundle {
    /// The file QEMU loaded (the loader and its builds).
    pub path: PathBuf,
    /// The builds, by API.
    pub entries: Vec<Entry>,
}

/// Why the bundle could not be read or a build not loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The loader could not find the file it was loaded from.
    NoOwnPath,
    /// Reading the file failed.
    Io(io::Error),
    /// The file's bundle layout is wrong.
    Format(FormatError),
    /// The dynamic linker refused the build.
    Dlopen(String),
    /// The build lacks a symbol, or declares another API than its index entry.
    NotThePlugin(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::NoOwnPath => write!(f, "cannot find the file this loader was loaded from"),
            LoadError::Io(e) => write!(f, "reading the bundle: {e}"),
            LoadError::Format(e) => write!(f, "{e}"),
            LoadError::Dlopen(e) => write!(f, "the dynamic linker refused the build: {e}"),
            LoadError::NotThePlugin(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError::Io(e)
    }
}

impl From<FormatError> for LoadError {
    fn from(e: FormatError) -> Self {
        LoadError::Format(e)
    }
}

/// Anchors `dladdr` to this shared object.
static ANCHOR: u8 = 0;

/// The path of the shared object this code was loaded from.
fn own_path() -> Result<PathBuf, LoadError> {
    let mut info = ffi::DlInfo {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: `ANCHOR` is an address inside this object and `info` is a valid, writable
    // `Dl_info`; `dladdr` only writes it.
    let found = unsafe { ffi::dladdr(std::ptr::from_ref(&ANCHOR).cast(), &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err(LoadError::NoOwnPath);
    }
    // SAFETY: `dladdr` succeeded, so `dli_fname` is the NUL-terminated path of the loaded
    // object, owned by the dynamic linker for as long as the object stays loaded (which
    // is at least as long as this code runs).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

/// Reads the index of the bundle the loader was loaded from.
pub fn own_bundle() -> Result<Bundle, LoadError> {
    let path = own_path()?;
    let mut f = File::open(&path)?;
    let file_len = f.metadata()?.len();
    if file_len < format::TRAILER_LEN {
        return Err(FormatError::NoTrailer.into());
    }
    let mut trailer = [0u8; format::TRAILER_LEN as usize];
    f.seek(SeekFrom::Start(file_len - format::TRAILER_LEN))?;
    f.read_exact(&mut trailer)?;
    let index_len = format::index_len(&trailer)?;
    let index_start = file_len
        .checked_sub(format::TRAILER_LEN + index_len)
        .ok_or(FormatError::OutOfBounds)?;
    let mut index = vec![0u8; usize::try_from(index_len).map_err(|_| FormatError::OutOfBounds)?];
    f.seek(SeekFrom::Start(index_start))?;
    f.read_exact(&mut index)?;
    let entries = format::decode_index(&index, file_len)?;
    Ok(Bundle { path, entries })
}

fn dlerror_text() -> String {
    // SAFETY: `dlerror` returns NULL or a NUL-terminated string valid until the next
    // dynamic-linker call on this thread; it is copied before any other call.
    let e = unsafe { ffi::dlerror() };
    if e.is_null() {
        return "unknown error".into();
    }
    // SAFETY: see above; `e` is not NULL.
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

/// Loads the build of `bundle` for `api` and returns its `qemu_plugin_install`.
pub fn load_build(bundle: &Bundle, api: u32) -> Result<InstallFn, LoadError> {
    let entry = *bundle
        .entries
        .iter()
        .find(|e| e.api == api)
        .ok_or_else(|| LoadError::NotThePlugin(format!("no build for API {api}")))?;
    let mut src = File::open(&bundle.path)?;
    src.seek(SeekFrom::Start(entry.offset))?;
    let name = CString::new(format!("qemu-plugin-any-v{api}")).expect("no NUL");
    // SAFETY: `name` is NUL-terminated; `memfd_create` only reads it.
    let fd = unsafe { ffi::memfd_create(name.as_ptr(), ffi::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just returned by `memfd_create`, is open and owned by nobody else;
    // the `File` closes it when dropped.
    let mut mem = unsafe { File::from_raw_fd(fd) };
    let copied = io::copy(&mut (&mut src).take(entry.len), &mut mem)?;
    if copied != entry.len {
        return Err(FormatError::OutOfBounds.into());
    }
    let fd_path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: `fd_path` is NUL-terminated. Loading runs the build's ELF constructors,
    // which is what QEMU itself would do when loading the build directly; the build is a
    // QEMU plugin (the bundler checked its exports, and it is checked again below).
    let handle = unsafe { ffi::dlopen(fd_path.as_ptr(), ffi::RTLD_NOW) };
    drop(mem);
    if handle.is_null() {
        return Err(LoadError::Dlopen(dlerror_text()));
    }
    let sym = |s: &CStr| {
        // SAFETY: `handle` is a live handle from `dlopen` (never closed) and `s` is
        // NUL-terminated.
        unsafe { ffi::dlsym(handle, s.as_ptr()) }
    };
    let version = sym(c"qemu_plugin_version");
    let install = sym(c"qemu_plugin_install");
    if version.is_null() || install.is_null() {
        return Err(LoadError::NotThePlugin(format!(
            "the API-{api} build does not export qemu_plugin_version and qemu_plugin_install"
        )));
    }
    // SAFETY: `qemu_plugin_version` is an exported `int` (QEMU reads it the same way);
    // the object stays loaded, so the pointer stays valid.
    let declared = unsafe { version.cast::<c_int>().read() };
    if i64::from(declared) != i64::from(api) {
        return Err(LoadError::NotThePlugin(format!(
            "the build filed under API {api} declares API {declared}"
        )));
    }
    // SAFETY: the symbol is the build's `qemu_plugin_install`, which every QEMU plugin
    // defines with the signature `InstallFn` (QEMU's own declaration, the same in every
    // API version); a data pointer and a function pointer have the same size here.
    Ok(unsafe { std::mem::transmute::<*mut c_void, InstallFn>(install) })
}
