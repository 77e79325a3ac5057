//! C entry points for scoreboards and `qemu_plugin_u64` accessors.

use std::ffi::{c_uint, c_void};
use std::ptr;

use super::guard;
use crate::scoreboard::{self, Scoreboard};
use crate::sys::{qemu_plugin_scoreboard, qemu_plugin_u64};
use crate::{ctx, hostinfo};

/// `qemu_plugin_scoreboard_new`: zero-filled, one `element_size` entry per vCPU index.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_scoreboard_new(element_size: usize) -> *mut qemu_plugin_scoreboard {
    guard("qemu_plugin_scoreboard_new", ptr::null_mut(), || {
        scoreboard::new(element_size).cast()
    })
}

/// `qemu_plugin_scoreboard_free`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_scoreboard_free(score: *mut qemu_plugin_scoreboard) {
    guard("qemu_plugin_scoreboard_free", (), || {
        if !score.is_null() && !scoreboard::free(score.cast()) {
            hostinfo::violation(format!(
                "qemu_plugin_scoreboard_free({score:p}): not a live scoreboard"
            ));
        }
    })
}

/// Address of vCPU `vcpu`'s entry of `score`, or null (recorded as a violation) if
/// `vcpu` is not below the number of vCPUs, where QEMU asserts.
#[inline]
fn find(score: *mut qemu_plugin_scoreboard, vcpu: c_uint) -> *mut u8 {
    if score.is_null() || vcpu >= scoreboard::num_vcpus() {
        not_found(score, vcpu);
        return ptr::null_mut();
    }
    if !boards_pinned() {
        unpinned(score);
    }
    // SAFETY:
    // - non-null `score` is a scoreboard of this mock that the plugin has not freed
    //   (API contract); reading its atomics is safe from any thread.
    let sb = unsafe { &*score.cast::<Scoreboard>() };
    // `vcpu < num_vcpus <= capacity`, so the entry is inside the buffer.
    sb.base().wrapping_add(vcpu as usize * sb.elem_size)
}

/// Whether no scoreboard can move under this thread: QEMU grows them (moving every
/// entry) holding `plugin.lock` inside an exclusive section, which waits only for threads
/// inside `cpu_exec`. With no live vCPU (install, or after every thread exited) the next
/// vCPU gets index 0, which never grows them either.
fn boards_pinned() -> bool {
    ctx::in_cpu_exec()
        || ctx::plugin_lock_depth() > 0
        || ctx::exclusive_depth() > 0
        || ctx::installing()
        || scoreboard::num_vcpus() == 0
        || crate::vcpu::live_snapshot().is_empty()
}

#[cold]
fn unpinned(score: *mut qemu_plugin_scoreboard) {
    hostinfo::violation(format!(
        "scoreboard {score:p} accessed outside cpu_exec without plugin.lock: a vCPU init \
         growing the scoreboards meanwhile would move it (plugin_grow_scoreboards__locked)"
    ));
}

#[cold]
fn not_found(score: *mut qemu_plugin_scoreboard, vcpu: c_uint) {
    hostinfo::violation(format!(
        "scoreboard {score:p}: vCPU {vcpu} >= num_vcpus {}",
        scoreboard::num_vcpus()
    ));
}

/// `qemu_plugin_scoreboard_find`: pointer to vCPU `vcpu_index`'s entry (moves when
/// the scoreboards grow; never cache it).
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_scoreboard_find(
    score: *mut qemu_plugin_scoreboard,
    vcpu_index: c_uint,
) -> *mut c_void {
    guard("qemu_plugin_scoreboard_find", ptr::null_mut(), || {
        find(score, vcpu_index).cast()
    })
}

#[inline]
fn u64_ptr(entry: qemu_plugin_u64, vcpu: c_uint) -> *mut u64 {
    let p = find(entry.score, vcpu);
    if p.is_null() {
        ptr::null_mut()
    } else {
        p.wrapping_add(entry.offset).cast()
    }
}

/// `qemu_plugin_u64_add`: plain (non-atomic) add, like QEMU.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_u64_add(entry: qemu_plugin_u64, vcpu_index: c_uint, added: u64) {
    guard("qemu_plugin_u64_add", (), || {
        let p = u64_ptr(entry, vcpu_index);
        if !p.is_null() {
            // SAFETY:
            // - `p` is inside the live entry of `vcpu_index` (see `find`); the plugin
            //   keeps accesses to one entry on one thread at a time, as with QEMU.
            unsafe { p.write_unaligned(p.read_unaligned().wrapping_add(added)) }
        }
    })
}

/// `qemu_plugin_u64_get`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_u64_get(entry: qemu_plugin_u64, vcpu_index: c_uint) -> u64 {
    guard("qemu_plugin_u64_get", 0, || {
        let p = u64_ptr(entry, vcpu_index);
        if p.is_null() {
            return 0;
        }
        // SAFETY: as in `qemu_plugin_u64_add`.
        unsafe { p.read_unaligned() }
    })
}

/// `qemu_plugin_u64_set`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_u64_set(entry: qemu_plugin_u64, vcpu_index: c_uint, val: u64) {
    guard("qemu_plugin_u64_set", (), || {
        let p = u64_ptr(entry, vcpu_index);
        if !p.is_null() {
            // SAFETY: as in `qemu_plugin_u64_add`.
            unsafe { p.write_unaligned(val) }
        }
    })
}

/// `qemu_plugin_u64_sum`: sum over vCPU indexes `0..num_vcpus`.
#[unsafe(no_mangle)]
#[cfg(since_api_2)]
pub extern "C" fn qemu_plugin_u64_sum(entry: qemu_plugin_u64) -> u64 {
    guard("qemu_plugin_u64_sum", 0, || {
        (0..scoreboard::num_vcpus())
            .map(|i| qemu_plugin_u64_get(entry, i))
            .fold(0, u64::wrapping_add)
    })
}
