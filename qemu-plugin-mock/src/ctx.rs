//! Per-thread context: which vCPU this thread is, the register-access flags of the
//! callback in flight, and the value/hwaddr of the memory access being reported.

use std::cell::Cell;

/// `QEMU_PLUGIN_CB_NO_REGS` as a raw value.
pub(crate) const NO_REGS: u32 = 0;
/// `QEMU_PLUGIN_CB_RW_REGS` as a raw value.
pub(crate) const RW_REGS: u32 = 2;
/// `QEMU_PLUGIN_CB_RW_REGS_PC` (API 6) as a raw value.
#[cfg_attr(not(since_api_6), allow(dead_code))]
pub(crate) const RW_REGS_PC: u32 = 3;

/// The mock's stand-in for `struct qemu_plugin_hwaddr`, one per thread like QEMU's
/// `static __thread struct qemu_plugin_hwaddr hwaddr` in `qemu_plugin_get_hwaddr`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hwaddr {
    /// Physical address of the access.
    pub(crate) phys: u64,
    /// Whether the access hit the mock MMIO window.
    pub(crate) is_io: bool,
}

thread_local! {
    static VCPU: Cell<Option<u32>> = const { Cell::new(None) };
    static FLAGS: Cell<u32> = const { Cell::new(NO_REGS) };
    static MEM_VALUE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    static HWADDR: Cell<Hwaddr> = const { Cell::new(Hwaddr { phys: 0, is_io: false }) };
    static EXCLUSIVE_DEPTH: Cell<u32> = const { Cell::new(0) };
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    static INSTALLING: Cell<bool> = const { Cell::new(false) };
    static OUTSIDE_EXEC: Cell<u32> = const { Cell::new(0) };
    static PLUGIN_LOCK_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` as a callback QEMU calls outside `cpu_exec` (vCPU init, exit, idle, resume,
/// syscalls, atexit), even where the mock brackets it with a running section.
pub(crate) fn outside_exec<R>(f: impl FnOnce() -> R) -> R {
    OUTSIDE_EXEC.with(|d| d.set(d.get() + 1));
    let r = f();
    OUTSIDE_EXEC.with(|d| d.set(d.get() - 1));
    r
}

/// Whether this thread runs inside `cpu_exec` in QEMU's terms: in its running section
/// and not in a callback QEMU runs outside it.
pub(crate) fn in_cpu_exec() -> bool {
    running() && OUTSIDE_EXEC.with(Cell::get) == 0
}

/// Nesting depth of the plugin lock on this thread (see `plugin_lock`).
pub(crate) fn plugin_lock_depth() -> u32 {
    PLUGIN_LOCK_DEPTH.with(Cell::get)
}

/// Sets the nesting depth of the plugin lock on this thread.
pub(crate) fn set_plugin_lock_depth(d: u32) {
    PLUGIN_LOCK_DEPTH.with(|c| c.set(d));
}

/// Marks this thread as the thread of vCPU `index` (or of no vCPU).
pub(crate) fn set_vcpu(index: Option<u32>) {
    VCPU.with(|v| v.set(index));
}

/// The vCPU this thread runs, like QEMU's `current_cpu`.
pub(crate) fn vcpu() -> Option<u32> {
    VCPU.with(Cell::get)
}

/// Register-access flags of the callback in flight (`qemu_plugin_get_cb_flags`).
pub(crate) fn flags() -> u32 {
    FLAGS.with(Cell::get)
}

/// Runs `f` with the callback flags set to `flags`, then resets them to `NO_REGS`,
/// like QEMU's `qemu_plugin_set_cb_flags` pairs around every callback.
#[inline]
pub(crate) fn with_flags<R>(flags: u32, f: impl FnOnce() -> R) -> R {
    FLAGS.with(|c| c.set(flags));
    let r = f();
    FLAGS.with(|c| c.set(NO_REGS));
    r
}

/// Records the value of the memory access being reported (`plugin_mem_value_low/high`).
#[inline]
pub(crate) fn set_mem_value(low: u64, high: u64) {
    MEM_VALUE.with(|c| c.set((low, high)));
}

/// The value of the memory access being reported on this thread.
pub(crate) fn mem_value() -> (u64, u64) {
    MEM_VALUE.with(Cell::get)
}

/// Stores this thread's hwaddr record and returns a pointer to it that stays valid
/// for the life of the thread.
pub(crate) fn set_hwaddr(h: Hwaddr) -> *mut Hwaddr {
    HWADDR.with(|c| {
        c.set(h);
        c.as_ptr()
    })
}

/// Nesting depth of the exclusive section this thread holds (0: none).
pub(crate) fn exclusive_depth() -> u32 {
    EXCLUSIVE_DEPTH.with(Cell::get)
}

/// Sets the nesting depth of the exclusive section this thread holds.
pub(crate) fn set_exclusive_depth(d: u32) {
    EXCLUSIVE_DEPTH.with(|c| c.set(d));
}

/// Whether this thread is a vCPU inside its running section (`cpu_exec_start`).
pub(crate) fn running() -> bool {
    RUNNING.with(Cell::get)
}

/// Records whether this thread is inside its running section.
pub(crate) fn set_running(r: bool) {
    RUNNING.with(|c| c.set(r));
}

/// Whether this thread is inside a plugin's install function.
pub(crate) fn installing() -> bool {
    INSTALLING.with(Cell::get)
}

/// Records whether this thread is inside a plugin's install function.
pub(crate) fn set_installing(i: bool) {
    INSTALLING.with(|c| c.set(i));
}
