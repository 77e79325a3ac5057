//! Scoreboards: QEMU-owned arrays with one entry per vCPU, and `PluginU64` handles to a
//! `u64` inside each entry, which inline operations update without a callback.
//!
//! QEMU reallocates a scoreboard (moving it) when a vCPU index outgrows it, so entries
//! are always looked up by index, never cached. Inline operations keep pointing at a
//! scoreboard for as long as a translated block does; registering one therefore needs a
//! `PluginU64<'static>`, i.e. a scoreboard that is never freed ([`Scoreboard::leak`]).
//!
//! QEMU moves the scoreboards inside an exclusive section, which only waits for threads
//! inside `cpu_exec`: every access to an entry therefore goes through
//! `callbacks::context::with_boards_pinned`, which runs it under QEMU's plugin lock when called from
//! anywhere else (a vCPU's exit or syscall callback, QEMU's exit, a thread of the
//! plugin's own).

use std::marker::PhantomData;
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::callbacks::context::with_boards_pinned;
use crate::{VCPUIndex, sys};

/// Types that may live in a scoreboard: plain data for which all-zero bytes are a valid
/// value (QEMU zero-fills new entries) and any bytes written by an inline op into a
/// `u64` field stay valid.
///
/// # Safety
/// The all-zero bit pattern must be a valid `Self`, and `Self` must have no padding-
/// sensitive invariants or pointers.
pub unsafe trait ScoreboardEntry: Copy + Send + Sync + 'static {}

macro_rules! entries {
    ($($t:ty),*) => { $(
        // SAFETY: an integer: every bit pattern, zero included, is valid.
        unsafe impl ScoreboardEntry for $t {}
    )* };
}
entries!(u8, u16, u32, u64, i8, i16, i32, i64, usize, isize);
// SAFETY: an array of valid entries is zero-valid and plain data.
unsafe impl<T: ScoreboardEntry, const N: usize> ScoreboardEntry for [T; N] {}
// SAFETY: `CachePadded<T>` is `T` plus alignment padding.
unsafe impl<T: ScoreboardEntry> ScoreboardEntry for CachePadded<T> {}

/// A per-vCPU array of `T` managed by QEMU (`struct qemu_plugin_scoreboard *`).
/// Freed on drop unless leaked. The lifetime parameter is 10.1.0-v2's (it constrains
/// nothing). Needs: QEMU 9.0 (plugin API v2).
#[derive(Debug)]
pub struct Scoreboard<'a, T: ScoreboardEntry> {
    ptr: NonNull<sys::qemu_plugin_scoreboard>,
    marker: PhantomData<(&'a (), T)>,
}

// SAFETY: QEMU's scoreboard functions may be called from any thread; entries are plain
// data (`ScoreboardEntry: Send + Sync`).
unsafe impl<T: ScoreboardEntry> Send for Scoreboard<'_, T> {}
// SAFETY: as above; shared access only reads or writes entries through QEMU's lookup.
unsafe impl<T: ScoreboardEntry> Sync for Scoreboard<'_, T> {}

impl<T: ScoreboardEntry> Scoreboard<'_, T> {
    /// Allocates a zero-filled scoreboard. Call it at install (or from a callback).
    pub fn new() -> Self {
        // SAFETY: QEMU allocates and returns a non-null scoreboard of `size_of::<T>()`
        // bytes per entry.
        let p = unsafe { sys::qemu_plugin_scoreboard_new(size_of::<T>()) };
        Self {
            ptr: NonNull::new(p).expect("qemu_plugin_scoreboard_new returned NULL"),
            marker: PhantomData,
        }
    }

    /// Never frees the scoreboard, so inline operations may point into it.
    pub fn leak(self) -> &'static Scoreboard<'static, T> {
        let this = std::mem::ManuallyDrop::new(self);
        Box::leak(Box::new(Scoreboard {
            ptr: this.ptr,
            marker: PhantomData,
        }))
    }

    pub(crate) fn raw(&self) -> *mut sys::qemu_plugin_scoreboard {
        self.ptr.as_ptr()
    }

    /// vCPU `vcpu`'s entry. Valid only while no scoreboard can move: call it inside
    /// [`with_boards_pinned`], after [`check_index`].
    fn entry(&self, vcpu: VCPUIndex) -> *mut T {
        // SAFETY: the scoreboard is live; `vcpu` is below the number of vCPUs QEMU has
        // created (checked by the caller), which QEMU grows every scoreboard to cover;
        // QEMU returns the entry's current address.
        unsafe { sys::qemu_plugin_scoreboard_find(self.raw(), vcpu) }.cast()
    }

    /// Reads vCPU `vcpu`'s entry (panics if QEMU has not created vCPU `vcpu`). While that vCPU runs, inline operations may be writing
    /// it concurrently (QEMU does not synchronise them), so the value may be stale; read
    /// it from that vCPU's own callbacks, or once the vCPU has stopped, for exact values.
    #[track_caller]
    pub fn read(&self, vcpu: VCPUIndex) -> T {
        check_index(vcpu);
        // SAFETY: the entry exists (see `entry`) and cannot move during the closure; it
        // is aligned by QEMU's allocator for `size_of::<T>()` elements and holds a valid
        // `T` (zero-filled or written as `T` or through u64 inline ops, which
        // `ScoreboardEntry` allows).
        with_boards_pinned(|| unsafe { self.entry(vcpu).read_volatile() })
    }

    /// Writes vCPU `vcpu`'s entry. The same caveat as [`Self::read`] applies.
    #[track_caller]
    pub fn write(&self, vcpu: VCPUIndex, value: T) {
        check_index(vcpu);
        // SAFETY: as in `read`.
        with_boards_pinned(|| unsafe { self.entry(vcpu).write_volatile(value) })
    }

    /// A handle to the `u64` at byte `offset` of each entry (the header's
    /// `qemu_plugin_scoreboard_u64_in_struct`). Prefer [`scoreboard_u64_in_struct!`](crate::scoreboard_u64_in_struct).
    ///
    /// # Safety
    /// `offset` must be the offset of a `u64` field of `T`.
    pub unsafe fn u64_in_struct(&self, offset: usize) -> PluginU64<'_> {
        PluginU64 {
            raw: sys::qemu_plugin_u64 {
                score: self.raw(),
                offset,
            },
            marker: PhantomData,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Never implemented (and sealed): `Scoreboard::find` requires it, so a call to `find`
/// fails to compile with the message below instead of a bare "no method".
#[diagnostic::on_unimplemented(
    message = "`Scoreboard::find` was removed: it returned an unbounded `&mut` into an entry \
               that QEMU moves when a new vCPU outgrows the scoreboard",
    label = "use `Scoreboard::read` and `Scoreboard::write` instead (docs/compatibility.md)"
)]
pub trait FindWasRemoved: sealed::Sealed {}

impl<T: ScoreboardEntry> Scoreboard<'_, T> {
    /// Removed: 10.1.0-v2's `find` returned an unbounded `&mut` into an entry that QEMU
    /// moves when it grows the scoreboard. Any call is a compile error that names the
    /// replacements, [`Self::read`] and [`Self::write`]:
    ///
    /// ```compile_fail,E0277
    /// # extern crate qemu_plugin_mock;
    /// let mut board = qemu_plugin::scoreboard::Scoreboard::<u64>::new();
    /// let _entry = board.find(0);
    /// ```
    pub fn find<'b>(&mut self, _vcpu_index: VCPUIndex) -> &'b mut std::mem::MaybeUninit<T>
    where
        Self: FindWasRemoved,
    {
        unreachable!("FindWasRemoved has no implementation, so no call of find compiles")
    }
}

impl<T: ScoreboardEntry> Default for Scoreboard<'_, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ScoreboardEntry> Drop for Scoreboard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the scoreboard is live and freed once. No inline op can still point at
        // it: registering one needs a `PluginU64<'static>`, which a droppable scoreboard
        // cannot produce.
        unsafe { sys::qemu_plugin_scoreboard_free(self.raw()) }
    }
}

impl Scoreboard<'_, u64> {
    /// A handle to each entry (the header's `qemu_plugin_scoreboard_u64`).
    pub fn u64(&self) -> PluginU64<'_> {
        // SAFETY: offset 0 of a `u64` entry is that `u64`.
        unsafe { self.u64_in_struct(0) }
    }
}

impl Scoreboard<'_, CachePadded<u64>> {
    /// A handle to each padded entry's `u64`.
    pub fn u64(&self) -> PluginU64<'_> {
        // SAFETY: `CachePadded<u64>` starts with its `u64`.
        unsafe { self.u64_in_struct(0) }
    }
}

/// `qemu_plugin_scoreboard_u64_in_struct`: a [`PluginU64`] to `$field` (which must be a
/// `u64`) of each `$ty` entry of `$scoreboard`.
#[macro_export]
macro_rules! scoreboard_u64_in_struct {
    ($scoreboard:expr, $ty:ty, $field:ident) => {{
        let _type_check: fn(&$ty) -> &u64 = |e| &e.$field;
        let sb: &$crate::scoreboard::Scoreboard<'_, $ty> = $scoreboard;
        // SAFETY: the closure above proves `$field` is a `u64` field of `$ty`.
        unsafe { sb.u64_in_struct(::core::mem::offset_of!($ty, $field)) }
    }};
}

/// Panics (inside a callback: reported, not unwound into QEMU) if QEMU has not created
/// vCPU `vcpu`: QEMU would abort on the out-of-range lookup.
#[track_caller]
fn check_index(vcpu: VCPUIndex) {
    let created = crate::qemu_plugin_num_vcpus().unwrap_or(0);
    if i64::from(vcpu) >= i64::from(created) {
        panic!("vCPU index {vcpu} is out of range: QEMU has created {created} vCPUs");
    }
}

/// One `u64` in each entry of a scoreboard (`qemu_plugin_u64`), borrowed from it.
/// Needs: QEMU 9.0 (plugin API v2).
#[derive(Debug, Clone, Copy)]
pub struct PluginU64<'s> {
    raw: sys::qemu_plugin_u64,
    marker: PhantomData<&'s ()>,
}

// SAFETY: a scoreboard pointer and an offset; QEMU's u64 functions are thread-safe.
unsafe impl Send for PluginU64<'_> {}
// SAFETY: as above.
unsafe impl Sync for PluginU64<'_> {}

impl PluginU64<'_> {
    pub(crate) fn raw(&self) -> sys::qemu_plugin_u64 {
        self.raw
    }

    /// Adds `value` to vCPU `vcpu`'s entry (not atomic: call it from that vCPU).
    /// Panics if QEMU has not created vCPU `vcpu` (QEMU itself would abort).
    #[track_caller]
    pub fn add(&self, vcpu: VCPUIndex, value: u64) {
        check_index(vcpu);
        // SAFETY: the handle points into a live scoreboard (lifetime 's), `vcpu` is in
        // range, and no scoreboard moves during the closure.
        with_boards_pinned(|| unsafe { sys::qemu_plugin_u64_add(self.raw, vcpu, value) })
    }

    /// vCPU `vcpu`'s value. Panics if QEMU has not created vCPU `vcpu`.
    #[track_caller]
    pub fn get(&self, vcpu: VCPUIndex) -> u64 {
        check_index(vcpu);
        // SAFETY: as in `add`.
        with_boards_pinned(|| unsafe { sys::qemu_plugin_u64_get(self.raw, vcpu) })
    }

    /// Sets vCPU `vcpu`'s value. Panics if QEMU has not created vCPU `vcpu`.
    #[track_caller]
    pub fn set(&self, vcpu: VCPUIndex, value: u64) {
        check_index(vcpu);
        // SAFETY: as in `add`.
        with_boards_pinned(|| unsafe { sys::qemu_plugin_u64_set(self.raw, vcpu, value) })
    }

    /// The sum over all vCPUs.
    pub fn sum(&self) -> u64 {
        // SAFETY: as in `add`.
        with_boards_pinned(|| unsafe { sys::qemu_plugin_u64_sum(self.raw) })
    }
}

/// Adds `added` to `entry` for `vcpu_index`. Needs: QEMU 9.0 (plugin API v2).
pub fn qemu_plugin_u64_add(
    entry: PluginU64<'_>,
    vcpu_index: VCPUIndex,
    added: u64,
) -> crate::Result<()> {
    entry.add(vcpu_index, added);
    Ok(())
}

/// `entry`'s value for `vcpu_index`. Needs: QEMU 9.0 (plugin API v2).
pub fn qemu_plugin_u64_get(entry: PluginU64<'_>, vcpu_index: VCPUIndex) -> u64 {
    entry.get(vcpu_index)
}

/// Sets `entry` for `vcpu_index`. Needs: QEMU 9.0 (plugin API v2).
pub fn qemu_plugin_u64_set(entry: PluginU64<'_>, vcpu_index: VCPUIndex, value: u64) {
    entry.set(vcpu_index, value)
}

/// The sum of `entry` over all vCPUs. Needs: QEMU 9.0 (plugin API v2).
pub fn qemu_plugin_scoreboard_sum(entry: PluginU64<'_>) -> u64 {
    entry.sum()
}

#[cfg(all(test, since_api_2))]
mod tests {
    use crate::scoreboard::Scoreboard;
    use qemu_plugin_mock::MockHost;

    #[test]
    fn out_of_range_vcpu_is_a_clear_panic_not_an_abort() {
        let mut host = MockHost::system(2);
        crate::install::set_installer("scoreboard-test", |_, _, _| Ok(()));
        assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
        host.boot();
        // From this (non-vCPU) thread, every access runs under QEMU's plugin lock.
        let sb: Scoreboard<u64> = Scoreboard::new();
        sb.write(1, 5);
        assert_eq!(sb.read(1), 5);
        assert_eq!(sb.u64().get(1), 5);
        assert_eq!(sb.u64().sum(), 5);
        let err = std::panic::catch_unwind(|| sb.read(2)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert_eq!(
            msg,
            "vCPU index 2 is out of range: QEMU has created 2 vCPUs"
        );
        assert!(std::panic::catch_unwind(|| sb.u64().add(7, 1)).is_err());
        drop(sb);
        assert!(host.violations().is_empty(), "{:?}", host.violations());
    }
}
