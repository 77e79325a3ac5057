//! A real glib `GByteArray`, owned: the buffers QEMU's register and memory calls resize.
//! (The older crate passed a stack-built imitation that QEMU reallocated: corruption.)

use crate::sys;

/// An owned `GByteArray`, freed (with its data) on drop.
// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
pub(crate) struct ByteArray(*mut sys::GByteArray);

// Scoreboards, registers and guest-memory reads need API 2 or later.
#[cfg_attr(not(since_api_2), allow(dead_code))]
impl ByteArray {
    pub(crate) fn new() -> Self {
        // SAFETY: g_byte_array_new has no preconditions and never returns NULL.
        Self(unsafe { sys::g_byte_array_new() })
    }

    #[cfg(since_api_5)]
    pub(crate) fn from_slice(data: &[u8]) -> crate::Result<Self> {
        let len = u32::try_from(data.len()).map_err(|_| {
            crate::Error::from(crate::error::Failure::BufferTooLarge { len: data.len() })
        })?;
        let a = Self::new();
        // SAFETY: `a.0` is a live GByteArray; glib copies `len` bytes from `data`.
        unsafe { sys::g_byte_array_append(a.0, data.as_ptr(), len) };
        Ok(a)
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::GByteArray {
        self.0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: a live GByteArray holds `len` initialised bytes at `data` (data may be
        // NULL only when len is 0).
        unsafe {
            let a = &*self.0;
            if a.len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(a.data, a.len as usize)
            }
        }
    }

    /// Runs `f` with this thread's empty scratch array, kept from call to call so that a
    /// register or memory read on a hot path allocates nothing. A nested call (none of
    /// the crate's callers nest) gets a fresh array.
    pub(crate) fn with_scratch<R>(f: impl FnOnce(&ByteArray) -> R) -> R {
        thread_local! {
            static SCRATCH: std::cell::Cell<Option<ByteArray>> = const { std::cell::Cell::new(None) };
        }
        let arr = SCRATCH
            .try_with(|s| s.take())
            .ok()
            .flatten()
            .unwrap_or_else(ByteArray::new);
        // SAFETY: `arr.0` is a live GByteArray we own; shrinking it to 0 keeps its storage.
        unsafe { sys::g_byte_array_set_size(arr.0, 0) };
        let r = f(&arr);
        // During thread teardown the slot may be gone: the array is then dropped (freed).
        let _ = SCRATCH.try_with(|s| s.set(Some(arr)));
        r
    }
}

impl Drop for ByteArray {
    fn drop(&mut self) {
        // SAFETY: we own the array; TRUE frees its data too; dropped once.
        unsafe { sys::g_byte_array_free(self.0, 1) };
    }
}
