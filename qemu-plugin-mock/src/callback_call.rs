//! How the mock stores and calls a plugin's callbacks for plugin-wide events under the
//! selected plugin API: the one place in the mock that knows each API's callback
//! parameters (the shapes themselves are the crate's `src/sys/shapes.rs`).
//!
//! A registration is kept as [`Registered`]: the function and the userdata given with it
//! (API 7 takes one for every event; before, only atexit has one). Each kind of event
//! has one calling method, which passes what the selected API passes: the plugin id
//! first up to API 6, the userdata last from API 7.

use std::ffi::{c_int, c_uint, c_void};

use crate::sys::{
    DisconCb, PlainCb, SyscallCb, SyscallRetCb, TbTransCb, UdataCb, VcpuCb, qemu_plugin_id_t,
    qemu_plugin_tb,
};

/// One registered callback and its userdata (an address, opaque to the mock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registered<F> {
    pub(crate) f: F,
    pub(crate) udata: usize,
}

impl<F> Registered<F> {
    /// A registration; `None` when the plugin passed a null function (unregisters).
    pub(crate) fn new(f: Option<F>, udata: *mut c_void) -> Option<Self> {
        f.map(|f| Self {
            f,
            udata: udata as usize,
        })
    }

    fn ud(&self) -> *mut c_void {
        self.udata as *mut c_void
    }
}

// The methods below are `unsafe`: the caller guarantees that the plugin registered the
// function for this event, and calls it where QEMU would (thread, flags).

impl Registered<PlainCb> {
    /// Flush, uninstall and reset completion.
    pub(crate) unsafe fn plain(&self, id: qemu_plugin_id_t) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            let _ = self.ud();
            (self.f)(id)
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; API 7 passes the userdata only.
        unsafe {
            let _ = id;
            (self.f)(self.ud())
        }
    }
}

/// atexit's calls; under API 7 its shape is `PlainCb`'s, so it is a free function.
pub(crate) unsafe fn call_atexit(r: &Registered<UdataCb>, id: qemu_plugin_id_t) {
    #[cfg(not(since_api_7))]
    // SAFETY: the caller's contract; the shape up to API 6.
    unsafe {
        (r.f)(id, r.ud())
    }
    #[cfg(since_api_7)]
    // SAFETY: the caller's contract; API 7 passes the userdata only.
    unsafe {
        let _ = id;
        (r.f)(r.ud())
    }
}

impl Registered<VcpuCb> {
    /// vCPU init, exit, idle, resume, `vcpu_for_each`.
    pub(crate) unsafe fn vcpu(&self, id: qemu_plugin_id_t, vcpu: c_uint) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            (self.f)(id, vcpu)
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7.
        unsafe {
            let _ = id;
            (self.f)(vcpu, self.ud())
        }
    }
}

impl Registered<TbTransCb> {
    /// Block translation.
    pub(crate) unsafe fn tb_trans(&self, id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            (self.f)(id, tb)
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7.
        unsafe {
            let _ = id;
            (self.f)(tb, self.ud())
        }
    }
}

impl Registered<SyscallCb> {
    /// Syscall entry.
    pub(crate) unsafe fn syscall(&self, id: qemu_plugin_id_t, vcpu: c_uint, num: i64, a: [u64; 8]) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            (self.f)(
                id, vcpu, num, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
            )
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7.
        unsafe {
            let _ = id;
            (self.f)(
                vcpu,
                num,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                a[6],
                a[7],
                self.ud(),
            )
        }
    }
}

impl Registered<SyscallRetCb> {
    /// Syscall return.
    pub(crate) unsafe fn syscall_ret(
        &self,
        id: qemu_plugin_id_t,
        vcpu: c_uint,
        num: i64,
        ret: i64,
    ) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            (self.f)(id, vcpu, num, ret)
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7.
        unsafe {
            let _ = id;
            (self.f)(vcpu, num, ret, self.ud())
        }
    }
}

impl Registered<DisconCb> {
    /// A discontinuity.
    pub(crate) unsafe fn discon(
        &self,
        id: qemu_plugin_id_t,
        vcpu: c_uint,
        kind: c_int,
        from: u64,
        to: u64,
    ) {
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape up to API 6.
        unsafe {
            (self.f)(id, vcpu, kind, from, to)
        }
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7.
        unsafe {
            let _ = id;
            (self.f)(vcpu, kind, from, to, self.ud())
        }
    }
}

#[cfg(since_api_6)]
impl Registered<crate::sys::SyscallFilterCb> {
    /// The syscall filter (API 6 and later): `Some(ret)` if the plugin answered.
    pub(crate) unsafe fn filter(
        &self,
        id: qemu_plugin_id_t,
        vcpu: c_uint,
        num: i64,
        a: [u64; 8],
    ) -> Option<i64> {
        let mut sysret: crate::sys::SysRet = 0;
        #[cfg(not(since_api_7))]
        // SAFETY: the caller's contract; the shape of API 6; `sysret` is writable.
        let answered = unsafe {
            (self.f)(
                id,
                vcpu,
                num,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                a[6],
                a[7],
                &mut sysret,
            )
        };
        #[cfg(since_api_7)]
        // SAFETY: the caller's contract; the shape of API 7; `sysret` is writable.
        let answered = unsafe {
            let _ = id;
            (self.f)(
                vcpu,
                num,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                a[6],
                a[7],
                &mut sysret,
                self.ud(),
            )
        };
        answered.then_some(sysret as i64)
    }
}
