//! The slice of glib that QEMU's plugin API exposes: `g_malloc`/`g_free` and
//! `GArray`/`GByteArray` with glib's semantics, over the C allocator.
//!
//! Arrays are allocated as [`RealArray`], whose prefix is the public `GArray` /
//! `GByteArray` struct (`data`, `len`), exactly like glib's `GRealArray`.

use std::ffi::{c_char, c_uint, c_void};
use std::ptr;

use crate::sys::{GArray, GByteArray};

unsafe extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn calloc(n: usize, size: usize) -> *mut c_void;
    fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
}

/// glib's private array: the public `{ data, len }` prefix, then bookkeeping.
#[repr(C)]
pub(crate) struct RealArray {
    data: *mut u8,
    len: c_uint,
    elt_size: c_uint,
    alloc_elems: usize,
    zero_terminated: bool,
    clear: bool,
}

/// Allocates `size` bytes with the C allocator (`g_malloc`; never null for size > 0
/// unless the process is out of memory, where glib aborts).
pub(crate) fn alloc(size: usize) -> *mut u8 {
    // SAFETY:
    // - `malloc` has no preconditions; a null result is handled below.
    let p = unsafe { malloc(size.max(1)) }.cast::<u8>();
    if p.is_null() {
        std::process::abort();
    }
    p
}

/// Copies `s` plus a NUL into a fresh `g_malloc` buffer (`g_strdup`).
pub(crate) fn strdup(s: &std::ffi::CStr) -> *mut c_char {
    let bytes = s.to_bytes_with_nul();
    let p = alloc(bytes.len());
    // SAFETY:
    // - `p` was just allocated with `bytes.len()` bytes and cannot overlap `bytes`.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    p.cast()
}

/// `g_malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn g_malloc(n_bytes: usize) -> *mut c_void {
    if n_bytes == 0 {
        return ptr::null_mut();
    }
    alloc(n_bytes).cast()
}

/// `g_malloc0`.
#[unsafe(no_mangle)]
pub extern "C" fn g_malloc0(n_bytes: usize) -> *mut c_void {
    if n_bytes == 0 {
        return ptr::null_mut();
    }
    // SAFETY:
    // - `calloc` has no preconditions; a null result aborts like glib.
    let p = unsafe { calloc(1, n_bytes) };
    if p.is_null() {
        std::process::abort();
    }
    p
}

/// `g_free`: frees memory from `g_malloc` (or `malloc`); null is a no-op.
///
/// # Safety
/// `mem` is null or a live allocation of the C allocator that is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn g_free(mem: *mut c_void) {
    // SAFETY:
    // - caller guarantees `mem` is null or a live C-allocator allocation.
    unsafe { free(mem) };
}

/// Creates an empty array of `elt_size`-byte elements (`g_array_new`).
pub(crate) fn array_new(zero_terminated: bool, clear: bool, elt_size: c_uint) -> *mut RealArray {
    let a = alloc(std::mem::size_of::<RealArray>()).cast::<RealArray>();
    // SAFETY:
    // - `a` is a fresh allocation of the right size; C `malloc` aligns for any type.
    unsafe {
        a.write(RealArray {
            data: ptr::null_mut(),
            len: 0,
            elt_size: elt_size.max(1),
            alloc_elems: 0,
            zero_terminated,
            clear,
        })
    };
    // Like glib: a zero-terminated array always has its terminator.
    // SAFETY:
    // - `a` was initialised just above.
    unsafe { set_size(a, 0) };
    a
}

/// Resizes `a` to `len` elements, growing the buffer when needed (`g_array_set_size`).
/// New elements are zeroed (glib zeroes them only with `clear`; zeroing is a safe
/// superset that C callers cannot tell apart from uninitialised bytes).
///
/// # Safety
/// `a` points to a live [`RealArray`] not accessed concurrently.
pub(crate) unsafe fn set_size(a: *mut RealArray, len: c_uint) {
    // SAFETY:
    // - caller guarantees `a` is live and exclusively ours for this call.
    let arr = unsafe { &mut *a };
    let elt = arr.elt_size as usize;
    let need = len as usize + usize::from(arr.zero_terminated);
    if need > arr.alloc_elems || arr.data.is_null() {
        let cap = need.max(16).next_power_of_two();
        // SAFETY:
        // - `arr.data` is null or came from this allocator; `realloc(NULL, n)` is `malloc`.
        let p = unsafe { realloc(arr.data.cast(), cap * elt) }.cast::<u8>();
        if p.is_null() {
            std::process::abort();
        }
        let old = arr.alloc_elems * elt;
        // SAFETY:
        // - `p` has `cap * elt` bytes; we zero the tail past the old capacity.
        unsafe { ptr::write_bytes(p.add(old), 0, cap * elt - old) };
        arr.data = p;
        arr.alloc_elems = cap;
    }
    if len > arr.len {
        // SAFETY:
        // - `[arr.len, len)` elements lie inside the capacity checked above.
        unsafe {
            ptr::write_bytes(
                arr.data.add(arr.len as usize * elt),
                0,
                (len - arr.len) as usize * elt,
            )
        };
    }
    arr.len = len;
    if arr.zero_terminated {
        // SAFETY:
        // - capacity holds `len + 1` elements when zero-terminated.
        unsafe { ptr::write_bytes(arr.data.add(len as usize * elt), 0, elt) };
    }
}

/// Appends `n` elements copied from `src` (`g_array_append_vals`).
///
/// # Safety
/// `a` is a live [`RealArray`]; `src` points to `n * elt_size` readable bytes that do
/// not alias the array's buffer.
pub(crate) unsafe fn append(a: *mut RealArray, src: *const u8, n: c_uint) {
    if n == 0 {
        return;
    }
    // SAFETY:
    // - caller guarantees `a` is live.
    let (old, elt) = unsafe { ((*a).len, (*a).elt_size as usize) };
    // SAFETY:
    // - caller guarantees `a` is live; `set_size` grows the buffer.
    unsafe { set_size(a, old + n) };
    // SAFETY:
    // - the buffer now holds `old + n` elements; `src` has `n` elements and does not alias.
    unsafe { ptr::copy_nonoverlapping(src, (*a).data.add(old as usize * elt), n as usize * elt) };
}

/// Frees `a`; returns its data buffer (owned by the caller, free with `g_free`) unless
/// `free_segment`, in which case the buffer is freed too and null returned.
///
/// # Safety
/// `a` is null or a live [`RealArray`] that is not used again.
pub(crate) unsafe fn array_free(a: *mut RealArray, free_segment: bool) -> *mut u8 {
    if a.is_null() {
        return ptr::null_mut();
    }
    // SAFETY:
    // - caller guarantees `a` is live; we read the buffer before freeing the header.
    let data = unsafe { (*a).data };
    // SAFETY:
    // - `a` was allocated by `array_new` with the C allocator.
    unsafe { free(a.cast()) };
    if free_segment {
        // SAFETY:
        // - `data` is null or the array's C-allocated buffer, no longer referenced.
        unsafe { free(data.cast()) };
        ptr::null_mut()
    } else {
        data
    }
}

/// `g_byte_array_new`.
#[unsafe(no_mangle)]
pub extern "C" fn g_byte_array_new() -> *mut GByteArray {
    array_new(false, false, 1).cast()
}

/// `g_byte_array_append`: appends `len` bytes from `data`; returns `array`.
///
/// # Safety
/// `array` came from `g_byte_array_new` (or this mock); `data` has `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn g_byte_array_append(
    array: *mut GByteArray,
    data: *const u8,
    len: c_uint,
) -> *mut GByteArray {
    if array.is_null() || (data.is_null() && len > 0) {
        return array;
    }
    // Copy first: `data` may point into the array itself.
    // SAFETY:
    // - caller guarantees `data` has `len` readable bytes.
    let tmp: Vec<u8> = unsafe { std::slice::from_raw_parts(data, len as usize) }.to_vec();
    // SAFETY:
    // - `array` is a live RealArray (caller); `tmp` does not alias it.
    unsafe { append(array.cast(), tmp.as_ptr(), len) };
    array
}

/// `g_byte_array_set_size`: sets the length, growing the buffer if needed; returns `array`.
///
/// # Safety
/// `array` came from `g_byte_array_new` (or this mock).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn g_byte_array_set_size(
    array: *mut GByteArray,
    length: c_uint,
) -> *mut GByteArray {
    if !array.is_null() {
        // SAFETY:
        // - caller guarantees `array` is a live RealArray.
        unsafe { set_size(array.cast(), length) };
    }
    array
}

/// `g_byte_array_free`: frees the array; returns the data (caller frees it with
/// `g_free`) unless `free_segment`.
///
/// # Safety
/// `array` came from `g_byte_array_new` (or this mock) and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn g_byte_array_free(
    array: *mut GByteArray,
    free_segment: crate::sys::gboolean,
) -> *mut u8 {
    // SAFETY:
    // - caller guarantees `array` is a live RealArray not used again.
    unsafe { array_free(array.cast(), free_segment != 0) }
}

/// `g_array_free`: frees the array; returns the data (caller frees it with `g_free`)
/// unless `free_segment`.
///
/// # Safety
/// `array` came from this mock (e.g. `qemu_plugin_get_registers`) and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn g_array_free(
    array: *mut GArray,
    free_segment: crate::sys::gboolean,
) -> *mut c_char {
    // SAFETY:
    // - caller guarantees `array` is a live RealArray not used again.
    unsafe { array_free(array.cast(), free_segment != 0) }.cast()
}
