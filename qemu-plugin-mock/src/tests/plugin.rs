//! A tiny C-style plugin written directly against the raw C API, for driving the mock.
#![allow(dead_code)]
// The plugin is deliberately C-style FFI; each call's contract is the C API's.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};

use crate::sys::*;

/// Scoreboard: entry = [inline insn count, callback insn count] per vCPU.
pub static SB: AtomicPtr<qemu_plugin_scoreboard> = AtomicPtr::new(ptr::null_mut());
pub static ID: AtomicU64 = AtomicU64::new(0);
pub static TRANS: AtomicU64 = AtomicU64::new(0);
pub static FLUSHES: AtomicU64 = AtomicU64::new(0);
pub static INITS: AtomicU64 = AtomicU64::new(0);
pub static EXITS: AtomicU64 = AtomicU64::new(0);
pub static ATEXIT_INLINE: AtomicU64 = AtomicU64::new(0);
pub static ATEXIT_CB: AtomicU64 = AtomicU64::new(0);
pub static UNINSTALL_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);
pub static CB_TOTAL: AtomicU64 = AtomicU64::new(0);
pub static UNINSTALLED: AtomicBool = AtomicBool::new(false);
pub static UNINSTALL_DONE_CALLS: AtomicU64 = AtomicU64::new(0);
pub static CBS_AFTER_DONE: AtomicU64 = AtomicU64::new(0);
pub static USE_CB: AtomicBool = AtomicBool::new(true);

pub fn entry(offset: usize) -> qemu_plugin_u64 {
    qemu_plugin_u64 {
        score: SB.load(Relaxed),
        offset,
    }
}

unsafe extern "C" fn insn_exec(vcpu: c_uint, _u: *mut c_void) {
    if UNINSTALLED.load(Relaxed) {
        CBS_AFTER_DONE.fetch_add(1, Relaxed);
    }
    unsafe { qemu_plugin_u64_add(entry(8), vcpu, 1) };
    let n = CB_TOTAL.fetch_add(1, Relaxed) + 1;
    if n == UNINSTALL_AFTER.load(Relaxed) {
        unsafe { qemu_plugin_uninstall(ID.load(Relaxed), Some(uninstalled)) };
    }
}

unsafe extern "C" fn uninstalled(_id: qemu_plugin_id_t) {
    UNINSTALL_DONE_CALLS.fetch_add(1, Relaxed);
    UNINSTALLED.store(true, SeqCst);
}

unsafe extern "C" fn tb_trans(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    TRANS.fetch_add(1, Relaxed);
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    for i in 0..n {
        let insn = unsafe { qemu_plugin_tb_get_insn(tb, i) };
        unsafe {
            qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                insn,
                qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                entry(0),
                1,
            );
            if USE_CB.load(Relaxed) {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    Some(insn_exec),
                    qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                    ptr::null_mut(),
                );
            }
        }
    }
}

unsafe extern "C" fn flush(_id: qemu_plugin_id_t) {
    FLUSHES.fetch_add(1, Relaxed);
}

unsafe extern "C" fn vcpu_init(_id: qemu_plugin_id_t, _vcpu: c_uint) {
    INITS.fetch_add(1, Relaxed);
}

unsafe extern "C" fn vcpu_exit(_id: qemu_plugin_id_t, _vcpu: c_uint) {
    EXITS.fetch_add(1, Relaxed);
}

thread_local! {
    static PENDING: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

unsafe extern "C" fn run_pending(_id: qemu_plugin_id_t, _vcpu: c_uint) {
    if let Some(f) = PENDING.with(|p| p.borrow_mut().take()) {
        f()
    }
}

/// Runs `f` (scoreboard reads) the way a plugin must outside `cpu_exec`: from inside
/// `qemu_plugin_vcpu_for_each`, which QEMU runs holding `plugin.lock`, so that no vCPU
/// init can grow (move) the scoreboards meanwhile. Directly once uninstalled (the id is
/// then invalid) or with no vCPU to call back for.
fn locked<R: 'static>(f: impl FnOnce() -> R + 'static) -> R {
    if UNINSTALLED.load(SeqCst) {
        return f();
    }
    let out = Rc::new(Cell::new(None));
    let o = out.clone();
    let f = Rc::new(Cell::new(Some(f)));
    let g = f.clone();
    PENDING.with(|p| {
        *p.borrow_mut() = Some(Box::new(move || {
            if let Some(f) = g.take() {
                o.set(Some(f()))
            }
        }))
    });
    unsafe { qemu_plugin_vcpu_for_each(ID.load(Relaxed), Some(run_pending)) };
    PENDING.with(|p| p.borrow_mut().take());
    match out.take() {
        Some(r) => r,
        None => f
            .take()
            .map(|f| f())
            .expect("the read ran without a result"),
    }
}

unsafe extern "C" fn atexit(_id: qemu_plugin_id_t, _u: *mut c_void) {
    let (a, b) =
        locked(|| unsafe { (qemu_plugin_u64_sum(entry(0)), qemu_plugin_u64_sum(entry(8))) });
    ATEXIT_INLINE.store(a, SeqCst);
    ATEXIT_CB.store(b, SeqCst);
    let s = CString::new(format!("insns: {a} {b}\n")).unwrap();
    unsafe { qemu_plugin_outs(s.as_ptr()) };
}

/// `qemu_plugin_install` of the tiny plugin. Args: `cb=on|off`, `uninstall_after=N`.
pub unsafe extern "C" fn install(
    id: qemu_plugin_id_t,
    info: *const qemu_info_t,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    for s in [
        &TRANS,
        &FLUSHES,
        &INITS,
        &EXITS,
        &ATEXIT_INLINE,
        &ATEXIT_CB,
        &CB_TOTAL,
        &UNINSTALL_DONE_CALLS,
        &CBS_AFTER_DONE,
    ] {
        s.store(0, SeqCst);
    }
    UNINSTALL_AFTER.store(u64::MAX, SeqCst);
    UNINSTALLED.store(false, SeqCst);
    USE_CB.store(true, SeqCst);
    let info = unsafe { &*info };
    assert_eq!(info.version.cur, QEMU_PLUGIN_VERSION as c_int);
    assert_eq!(info.version.min, 2);
    for i in 0..argc as usize {
        let a = unsafe { CStr::from_ptr(*argv.add(i)) }.to_str().unwrap();
        let (k, v) = a.split_once('=').unwrap();
        match k {
            "cb" => {
                let mut b = false;
                let kc = CString::new(k).unwrap();
                let vc = CString::new(v).unwrap();
                if !unsafe { qemu_plugin_bool_parse(kc.as_ptr(), vc.as_ptr(), &mut b) } {
                    return -1;
                }
                USE_CB.store(b, SeqCst);
            }
            "uninstall_after" => UNINSTALL_AFTER.store(v.parse().unwrap(), SeqCst),
            _ => return -2,
        }
    }
    ID.store(id, SeqCst);
    SB.store(unsafe { qemu_plugin_scoreboard_new(16) }, SeqCst);
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(tb_trans));
        qemu_plugin_register_flush_cb(id, Some(flush));
        qemu_plugin_register_vcpu_init_cb(id, Some(vcpu_init));
        qemu_plugin_register_vcpu_exit_cb(id, Some(vcpu_exit));
        qemu_plugin_register_atexit_cb(id, Some(atexit), ptr::null_mut());
    }
    0
}

pub fn get(offset: usize, vcpu: u32) -> u64 {
    locked(move || unsafe { qemu_plugin_u64_get(entry(offset), vcpu) })
}
