//! API details: queries, memory callbacks, conditions, registers, glib, events.
// The plugin side is deliberately C-style FFI; each call's contract is the C API's.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use crate::sys::*;
use crate::{Block, Config, DisconKind, Insn, MemAccess, MockHost, Workload};
use crate::{g_array_free, g_byte_array_append, g_byte_array_free, g_byte_array_new, g_free};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SB: AtomicPtr<qemu_plugin_scoreboard> = AtomicPtr::new(ptr::null_mut());
static COND_HITS: AtomicU64 = AtomicU64::new(0);

fn log(s: String) {
    LOG.lock().unwrap().push(s);
}

fn entry() -> qemu_plugin_u64 {
    qemu_plugin_u64 {
        score: SB.load(Relaxed),
        offset: 0,
    }
}

unsafe extern "C" fn mem_cb(
    vcpu: c_uint,
    info: qemu_plugin_meminfo_t,
    vaddr: u64,
    _u: *mut c_void,
) {
    let v = unsafe { qemu_plugin_mem_get_value(info) };
    let hw = unsafe { qemu_plugin_get_hwaddr(info, vaddr) };
    let phys = if hw.is_null() {
        None
    } else {
        Some(unsafe { qemu_plugin_hwaddr_phys_addr(hw) })
    };
    let low = unsafe { v.data.u64_ }
        & (u64::MAX >> (64 - (8 << unsafe { qemu_plugin_mem_size_shift(info) }).min(64)));
    log(format!(
        "mem v{vcpu} {vaddr:#x} shift={} store={} val={low:#x} phys={phys:x?}",
        unsafe { qemu_plugin_mem_size_shift(info) },
        unsafe { qemu_plugin_mem_is_store(info) }
    ));
}

unsafe extern "C" fn cond_cb(_vcpu: c_uint, _u: *mut c_void) {
    COND_HITS.fetch_add(1, Relaxed);
}

unsafe extern "C" fn regs_cb(_vcpu: c_uint, u: *mut c_void) {
    let regs = unsafe { qemu_plugin_get_registers() };
    let n = unsafe { (*regs).len };
    let d = unsafe { &*(*regs).data.cast::<qemu_plugin_reg_descriptor>() };
    let name = unsafe { CStr::from_ptr(d.name) }
        .to_str()
        .unwrap()
        .to_owned();
    let buf = g_byte_array_new();
    let r = unsafe { qemu_plugin_read_register(d.handle, buf) };
    log(format!(
        "regs flags={} n={n} first={name} read={r}",
        u as usize
    ));
    unsafe { g_byte_array_free(buf, 1) };
    unsafe { g_array_free(regs, 1) };
}

unsafe extern "C" {
    fn g_byte_array_set_size(a: *mut GByteArray, len: c_uint) -> *mut GByteArray;
}

unsafe extern "C" fn tb_trans(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    assert!(unsafe { qemu_plugin_tb_get_insn(tb, n) }.is_null());
    for i in 0..n {
        let insn = unsafe { qemu_plugin_tb_get_insn(tb, i) };
        let d = unsafe { qemu_plugin_insn_disas(insn) };
        let disas = unsafe { CStr::from_ptr(d) }.to_str().unwrap().to_owned();
        unsafe { g_free(d.cast()) };
        let sym = unsafe { qemu_plugin_insn_symbol(insn) };
        let sym = if sym.is_null() {
            "-".into()
        } else {
            unsafe { CStr::from_ptr(sym) }
                .to_string_lossy()
                .into_owned()
        };
        let mut bytes = [0u8; 2];
        let copied = unsafe { qemu_plugin_insn_data(insn, bytes.as_mut_ptr().cast(), 2) };
        log(format!(
            "insn {:#x} size={} {disas} sym={sym} data={:?}",
            unsafe { qemu_plugin_insn_vaddr(insn) },
            unsafe { qemu_plugin_insn_size(insn) },
            &bytes[..copied]
        ));
        unsafe {
            qemu_plugin_register_vcpu_mem_cb(
                insn,
                Some(mem_cb),
                qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_W,
                ptr::null_mut(),
            );
        }
    }
    unsafe {
        // Count executions, then call cond_cb when the count (before this TB's add)... note
        // QEMU order: items run in registration order, so the cond sees the count after the add.
        qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
            tb,
            qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
            entry(),
            1,
        );
        qemu_plugin_register_vcpu_tb_exec_cond_cb(
            tb,
            Some(cond_cb),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            qemu_plugin_cond::QEMU_PLUGIN_COND_GE,
            entry(),
            8,
            ptr::null_mut(),
        );
        qemu_plugin_register_vcpu_tb_exec_cond_cb(
            tb,
            Some(cond_cb),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            qemu_plugin_cond::QEMU_PLUGIN_COND_NEVER,
            entry(),
            0,
            ptr::null_mut(),
        );
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(regs_cb),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS,
            ptr::without_provenance_mut(1),
        );
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(regs_cb),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            ptr::null_mut(),
        );
    }
}

unsafe extern "C" fn syscall(
    _id: u64,
    vcpu: c_uint,
    num: i64,
    a1: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    a8: u64,
) {
    log(format!("syscall v{vcpu} {num} {a1} {a8}"));
}
unsafe extern "C" fn syscall_ret(_id: u64, vcpu: c_uint, num: i64, ret: i64) {
    log(format!("sysret v{vcpu} {num} {ret}"));
}
unsafe extern "C" fn idle(_id: u64, vcpu: c_uint) {
    log(format!("idle v{vcpu}"));
}
unsafe extern "C" fn idle2(_id: u64, vcpu: c_uint) {
    log(format!("idle2 v{vcpu}"));
}
unsafe extern "C" fn discon(_id: u64, vcpu: c_uint, ty: c_int, from: u64, to: u64) {
    log(format!("discon v{vcpu} {ty} {from:#x}->{to:#x}"));
}
unsafe extern "C" fn atexit(_id: u64, u: *mut c_void) {
    log(format!("atexit {}", u as usize));
}

unsafe extern "C" fn install(
    id: u64,
    _info: *const qemu_info_t,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    LOG.lock().unwrap().clear();
    COND_HITS.store(0, SeqCst);
    SB.store(unsafe { qemu_plugin_scoreboard_new(8) }, SeqCst);
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(tb_trans));
        qemu_plugin_register_vcpu_syscall_cb(id, Some(syscall));
        qemu_plugin_register_vcpu_syscall_ret_cb(id, Some(syscall_ret));
        qemu_plugin_register_vcpu_idle_cb(id, Some(idle));
        qemu_plugin_register_vcpu_idle_cb(id, Some(idle2)); // replaces
        qemu_plugin_register_atexit_cb(id, Some(atexit), ptr::without_provenance_mut(42));
        crate::qemu_plugin_register_vcpu_discon_cb(id, 1 | 4, Some(discon));
    }
    0
}

fn block() -> Arc<Block> {
    Arc::new(Block::new(vec![
        Insn::new(0x1000, &[0x48, 0x89, 0x07], "mov [rdi], rax")
            .with_symbol("main")
            .with_mem(MemAccess::store(0xFE00_0010, 3, 0x1122_3344_5566_7788))
            .with_mem(MemAccess::load(0x2000, 2, 0xdead_beef)),
        Insn::new(0x1003, &[0xc3], "ret"),
    ]))
}

fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap())
}

#[test]
fn queries_mem_cond_regs_system() {
    let mut host = MockHost::system(1);
    assert_eq!(host.install(install, &[]), 0);
    host.boot();
    let b = block();
    let s = host.translate(&b);
    assert_eq!(
        s.tb_ops, 4,
        "inline + GE cond + 2 callbacks; NEVER installs nothing"
    );
    assert_eq!(s.mem_ops, vec![1, 1]);
    let log = take_log();
    assert_eq!(
        log[0],
        "insn 0x1000 size=3 mov [rdi], rax sym=main data=[72, 137]"
    );
    assert_eq!(log[1], "insn 0x1003 size=1 ret sym=- data=[195]");
    let w = Workload::new().step(Block::synthetic(0, 1), 0); // empty run is fine
    host.run(&w);
    // Execute the translated block 10 times through a workload that reuses it.
    let w = workload_of(&b, 10);
    host.run(&w);
    let log = take_log();
    let regs: Vec<_> = log.iter().filter(|l| l.starts_with("regs")).collect();
    assert_eq!(regs.len(), 20);
    assert_eq!(regs[0], "regs flags=1 n=18 first=rax read=8");
    assert_eq!(regs[1], "regs flags=0 n=18 first=rax read=-1");
    let mems: Vec<_> = log.iter().filter(|l| l.starts_with("mem")).collect();
    assert_eq!(mems.len(), 10, "only stores pass the W filter");
    assert_eq!(
        mems[0],
        "mem v0 0xfe000010 shift=3 store=true val=0x1122334455667788 phys=Some(fe000010)"
    );
    assert_eq!(
        COND_HITS.load(SeqCst),
        3,
        "count >= 8 after 8, 9, 10 executions"
    );
    host.idle(0);
    host.syscall(0, 60, [7, 0, 0, 0, 0, 0, 0, 8], -1);
    host.discon(0, DisconKind::Interrupt, 0x10, 0x20);
    host.discon(0, DisconKind::Exception, 0x10, 0x20);
    assert_eq!(
        take_log(),
        [
            "idle2 v0",
            "syscall v0 60 7 8",
            "sysret v0 60 -1",
            "discon v0 1 0x10->0x20"
        ]
    );
    host.atexit();
    assert_eq!(take_log(), ["atexit 42"]);
}

fn workload_of(b: &Arc<Block>, reps: u64) -> Workload {
    let mut w = Workload::new();
    w.push_shared(b.clone(), reps);
    w
}

#[test]
fn user_mode_details_and_glib() {
    let mut host = MockHost::new(Config::user());
    assert_eq!(host.install(install, &[]), 0);
    host.spawn_vcpus(1);
    let b = block();
    host.run(&workload_of(&b, 1));
    let mems: Vec<_> = take_log()
        .into_iter()
        .filter(|l| l.starts_with("mem"))
        .collect();
    assert_eq!(
        mems,
        ["mem v0 0xfe000010 shift=3 store=true val=0x1122334455667788 phys=None"]
    );
    // glib semantics
    unsafe {
        let a = g_byte_array_new();
        g_byte_array_append(a, b"abc".as_ptr(), 3);
        g_byte_array_set_size(a, 100);
        assert_eq!((*a).len, 100);
        assert_eq!(std::slice::from_raw_parts((*a).data, 3), b"abc");
        let data = g_byte_array_free(a, 0);
        assert_eq!(*data, b'a');
        g_free(data.cast());
        // Off a vCPU thread linux-user would dereference a NULL task state: refused.
        assert!(qemu_plugin_path_to_binary().is_null());
        assert!(
            qemu_plugin_request_time_control().is_null(),
            "user mode has no time control"
        );
        let mut v = false;
        assert!(qemu_plugin_bool_parse(c"k".as_ptr(), c"yes".as_ptr(), &mut v) && v);
        assert!(qemu_plugin_bool_parse(c"k".as_ptr(), c"off".as_ptr(), &mut v) && !v);
        assert!(!qemu_plugin_bool_parse(
            c"k".as_ptr(),
            c"maybe".as_ptr(),
            &mut v
        ));
    }
    // user-mode exit: everything but atexit is unregistered first
    host.atexit();
    assert_eq!(take_log(), ["atexit 42"]);
    assert_eq!(
        host.violations(),
        [
            "qemu_plugin_path_to_binary outside vCPU context in user mode: QEMU dereferences a \
          NULL task state"
        ]
    );
}
