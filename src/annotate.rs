//! Happens-before annotations for valgrind's race detectors (helgrind and DRD).
//!
//! Both tools see synchronisation only through the pthread functions they intercept.
//! Rust's `std::sync` locks are futex-based and its atomics compile to plain loads,
//! stores and locked instructions, so a release/acquire pair or a std `Mutex` orders
//! nothing in their eyes and every access it protects looks like a race. The functions
//! here describe such an ordering to them: [`happens_before`] where one thread publishes
//! (before its release operation) and [`happens_after`] where another has observed it
//! (after its acquire operation), both naming the same tag, usually the address of the
//! atomic or lock involved. Each call site names the real synchronisation it describes.
//!
//! Compiled to nothing unless the `race-check` feature is on. With it, each call is a
//! valgrind client request: a few register rotations that leave the registers as they
//! were, then an `xchg` of a register with itself, which valgrind recognises as a
//! request and natively does nothing. (The instruction sequence and request numbers are
//! valgrind's documented client-request protocol: `valgrind.h`, `helgrind.h`, `drd.h`.)

/// `VG_USERREQ_TOOL_BASE('H','G')`: helgrind's request numbers start here. DRD answers
/// the two happens-before requests under the same numbers (`drd.h`:
/// `VG_USERREQ__DRD_ANNOTATE_HAPPENS_BEFORE/AFTER`), so one request serves both tools.
#[cfg(feature = "race-check")]
const HG_BASE: usize = ((b'H' as usize) << 24) | ((b'G' as usize) << 16);
/// `_VG_USERREQ__HG_USERSO_SEND_PRE` (`ANNOTATE_HAPPENS_BEFORE`).
#[cfg(feature = "race-check")]
const HAPPENS_BEFORE: usize = HG_BASE + 256 + 33;
/// `_VG_USERREQ__HG_USERSO_RECV_POST` (`ANNOTATE_HAPPENS_AFTER`).
#[cfg(feature = "race-check")]
const HAPPENS_AFTER: usize = HG_BASE + 256 + 34;
/// `_VG_USERREQ__HG_ARANGE_MAKE_UNTRACKED` (`VALGRIND_HG_DISABLE_CHECKING`), helgrind only.
#[cfg(feature = "race-check")]
const HG_UNTRACKED: usize = HG_BASE + 256 + 39;
/// `VG_USERREQ__DRD_START_SUPPRESSION` (`ANNOTATE_BENIGN_RACE_SIZED`), DRD only:
/// `VG_USERREQ_TOOL_BASE('D','R') + 2`.
#[cfg(feature = "race-check")]
const DRD_SUPPRESSION: usize = (((b'D' as usize) << 24) | ((b'R' as usize) << 16)) + 2;

/// Issues client request `request` with two arguments; returns valgrind's answer, or 0
/// when not running under valgrind.
#[cfg(all(feature = "race-check", target_arch = "x86_64"))]
#[inline(always)]
fn client_request(request: usize, arg1: usize, arg2: usize) -> usize {
    let block: [usize; 6] = [request, arg1, arg2, 0, 0, 0];
    let mut result: usize = 0;
    // SAFETY: the four rotations of rdi total 128 bits, so rdi ends as it began; `xchg
    // rbx, rbx` changes nothing; natively the sequence only changes the flags (not
    // declared preserved). Under valgrind it reads the six words at rax (a live local
    // array) and writes its answer to rdx, which is declared as an output. No `nomem`:
    // the compiler must not move memory accesses across the request, which is what
    // makes it an ordering point.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") block.as_ptr(),
            inout("rdx") result,
            options(nostack),
        );
    }
    result
}

/// Issues client request `request` with two arguments; returns valgrind's answer, or 0
/// when not running under valgrind.
#[cfg(all(feature = "race-check", target_arch = "aarch64"))]
#[inline(always)]
fn client_request(request: usize, arg1: usize, arg2: usize) -> usize {
    let block: [usize; 6] = [request, arg1, arg2, 0, 0, 0];
    let mut result: usize = 0;
    // SAFETY: the four rotations of x12 total 128 bits, so x12 ends as it began; `orr
    // x10, x10, x10` changes nothing. Under valgrind the request reads the six words at
    // x4 (a live local array) and writes its answer to x3, declared as an output. No
    // `nomem`: memory accesses stay on their side of the request.
    unsafe {
        core::arch::asm!(
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            in("x4") block.as_ptr(),
            inout("x3") result,
            options(nostack),
        );
    }
    result
}

/// Valgrind has no client requests on other architectures this crate builds for.
#[cfg(all(
    feature = "race-check",
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
#[inline(always)]
fn client_request(_request: usize, _arg1: usize, _arg2: usize) -> usize {
    0
}

/// Everything the calling thread did so far happens before whatever a thread does after
/// a later [`happens_after`] on the same `tag` (`ANNOTATE_HAPPENS_BEFORE`). Call it just
/// before the release operation it describes.
#[inline(always)]
pub(crate) fn happens_before<T: ?Sized>(tag: *const T) {
    #[cfg(feature = "race-check")]
    client_request(HAPPENS_BEFORE, tag.cast::<()>() as usize, 0);
    #[cfg(not(feature = "race-check"))]
    let _ = tag;
}

/// The calling thread has observed every [`happens_before`] issued so far on `tag`
/// (`ANNOTATE_HAPPENS_AFTER`). Call it just after the acquire operation it describes.
#[inline(always)]
pub(crate) fn happens_after<T: ?Sized>(tag: *const T) {
    #[cfg(feature = "race-check")]
    client_request(HAPPENS_AFTER, tag.cast::<()>() as usize, 0);
    #[cfg(not(feature = "race-check"))]
    let _ = tag;
}

/// `var` is an atomic that is only ever accessed through atomic operations, so two
/// threads touching it at once is by definition not a data race, though the race
/// detectors, which cannot tell an atomic access from a plain one, would report it. Tells
/// them not to check its bytes (helgrind: `VALGRIND_HG_DISABLE_CHECKING`; DRD:
/// `ANNOTATE_BENIGN_RACE_SIZED`). Any ordering the atomic provides is described
/// separately, with [`happens_before`] and [`happens_after`].
#[inline(always)]
pub(crate) fn atomic_only<T>(var: &T) {
    #[cfg(feature = "race-check")]
    {
        let (addr, len) = (var as *const T as usize, size_of::<T>());
        // Each tool ignores the other's request.
        client_request(HG_UNTRACKED, addr, len);
        client_request(DRD_SUPPRESSION, addr, len);
    }
    #[cfg(not(feature = "race-check"))]
    let _ = var;
}
