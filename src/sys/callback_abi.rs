//! How the crate defines and registers its callbacks for plugin-wide events under each
//! plugin API, so that no other module spells an API's callback parameters.
//!
//! - [`qemu_callback!`] defines an `extern "C"` function with the parameters the selected
//!   API gives one kind of event (see `shapes`); its body, written once, sees the event's
//!   own arguments and the registration's [`Userdata`].
//! - The `register_*` functions take the callback and a userdata pointer under every API;
//!   QEMU hands the pointer back from API 7 on and has no place for it before (there the
//!   callback gets [`Userdata::NONE`] and finds what it needs another way).

use std::ffi::c_void;

use super::{PlainCb, SyscallCb, SyscallRetCb, TbTransCb, UdataCb, VcpuCb, qemu_plugin_id_t};

/// The userdata QEMU passes back to a callback of a plugin-wide event: the pointer given
/// at registration from API 7 on, null before.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Userdata(*mut c_void);

impl Userdata {
    /// No userdata: what callbacks get before API 7.
    #[cfg_attr(since_api_7, allow(dead_code))]
    pub(crate) const NONE: Self = Self(std::ptr::null_mut());

    /// Wraps the pointer QEMU passed.
    pub(crate) fn from_qemu(ptr: *mut c_void) -> Self {
        Self(ptr)
    }

    /// The pointer (null before API 7).
    pub(crate) fn ptr(self) -> *mut c_void {
        self.0
    }
}

/// Defines an `extern "C"` callback of one event kind with the selected API's
/// parameters. Kinds and what the body sees:
///
/// - `plain fn f[generics](ud)`: flush, uninstall and reset completion;
/// - `udata fn f[..](ud)`: atexit (its userdata reaches it under every API);
/// - `vcpu fn f[..](ud, vcpu)`: vCPU init, exit, idle, resume, `vcpu_for_each`;
/// - `tb_trans fn f[..](ud, tb)`;
/// - `syscall fn f[..](ud, vcpu, num, args)` with `args: [u64; 8]`;
/// - `syscall_ret fn f[..](ud, vcpu, num, ret)`;
/// - `discon fn f[..](ud, vcpu, kind, from_pc, to_pc)`;
/// - `syscall_filter fn f[..](ud, vcpu, num, args, sysret) -> bool` (API 6 and later).
///
/// Generic parameters go in the square brackets, bounds included; doc comments and
/// attributes before the kind apply to the function.
macro_rules! qemu_callback {
    ($(#[$m:meta])* plain $vis:vis fn $name:ident[$($g:tt)*]($ud:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(_id: $crate::sys::qemu_plugin_id_t) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(userdata: *mut ::std::ffi::c_void) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* udata $vis:vis fn $name:ident[$($g:tt)*]($ud:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            userdata: *mut ::std::ffi::c_void,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(userdata: *mut ::std::ffi::c_void) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* vcpu $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $vcpu:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(_id: $crate::sys::qemu_plugin_id_t, $vcpu: ::std::ffi::c_uint) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>($vcpu: ::std::ffi::c_uint, userdata: *mut ::std::ffi::c_void) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* tb_trans $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $tb:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            $tb: *mut $crate::sys::qemu_plugin_tb,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            $tb: *mut $crate::sys::qemu_plugin_tb,
            userdata: *mut ::std::ffi::c_void,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* syscall $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $vcpu:ident, $num:ident, $args:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        #[allow(clippy::too_many_arguments)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, a8: u64,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            let $args = [a1, a2, a3, a4, a5, a6, a7, a8];
            $body
        }
        #[cfg(since_api_7)]
        #[allow(clippy::too_many_arguments)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, a8: u64,
            userdata: *mut ::std::ffi::c_void,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            let $args = [a1, a2, a3, a4, a5, a6, a7, a8];
            $body
        }
    };
    ($(#[$m:meta])* syscall_ret $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $vcpu:ident, $num:ident, $ret:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            $ret: i64,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            $ret: i64,
            userdata: *mut ::std::ffi::c_void,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* discon $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $vcpu:ident, $kind:ident, $from:ident, $to:ident) $body:block) => {
        #[cfg(not(since_api_7))]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            $vcpu: ::std::ffi::c_uint,
            $kind: $crate::sys::qemu_plugin_discon_type,
            $from: u64,
            $to: u64,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            $body
        }
        #[cfg(since_api_7)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            $vcpu: ::std::ffi::c_uint,
            $kind: $crate::sys::qemu_plugin_discon_type,
            $from: u64,
            $to: u64,
            userdata: *mut ::std::ffi::c_void,
        ) {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            $body
        }
    };
    ($(#[$m:meta])* syscall_filter $vis:vis fn $name:ident[$($g:tt)*]($ud:ident, $vcpu:ident, $num:ident, $args:ident, $sysret:ident) -> bool $body:block) => {
        #[cfg(all(since_api_6, not(since_api_7)))]
        #[allow(clippy::too_many_arguments)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            _id: $crate::sys::qemu_plugin_id_t,
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, a8: u64,
            $sysret: *mut $crate::sys::SysRet,
        ) -> bool {
            let $ud = $crate::sys::callback_abi::Userdata::NONE;
            let $args = [a1, a2, a3, a4, a5, a6, a7, a8];
            $body
        }
        #[cfg(since_api_7)]
        #[allow(clippy::too_many_arguments)]
        $(#[$m])*
        $vis extern "C" fn $name<$($g)*>(
            $vcpu: ::std::ffi::c_uint,
            $num: i64,
            a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, a8: u64,
            $sysret: *mut $crate::sys::SysRet,
            userdata: *mut ::std::ffi::c_void,
        ) -> bool {
            let $ud = $crate::sys::callback_abi::Userdata::from_qemu(userdata);
            let $args = [a1, a2, a3, a4, a5, a6, a7, a8];
            $body
        }
    };
}
pub(crate) use qemu_callback;

/// One registration function per plugin-wide event, with the same parameters under
/// every API.
macro_rules! registrations {
    ($($(#[$m:meta])* $wrapper:ident => $c:ident($shape:ty);)*) => {$(
        $(#[$m])*
        /// Registers `cb` through QEMU's function of the same event. `userdata` reaches
        /// the callback from API 7 on; before, QEMU has no place for it.
        ///
        /// # Safety
        /// `cb` is a function of this shared object (which stays mapped, see
        /// `host::pin_module`) that does what its event requires, and `userdata`, when
        /// the callback uses it, stays valid for as long as QEMU may call it.
        pub(crate) unsafe fn $wrapper(id: qemu_plugin_id_t, cb: Option<$shape>, userdata: *mut c_void) {
            #[cfg(not(since_api_7))]
            {
                let _ = userdata;
                // SAFETY: the caller's contract; before API 7 the C function takes the
                // id and a callback of exactly this shape.
                unsafe { super::$c(id, cb) }
            }
            #[cfg(since_api_7)]
            // SAFETY: the caller's contract; since API 7 the C function takes the id,
            // a callback of exactly this shape, and the userdata.
            unsafe { super::$c(id, cb, userdata) }
        }
    )*};
}

registrations! {
    register_vcpu_init => qemu_plugin_register_vcpu_init_cb(VcpuCb);
    register_vcpu_exit => qemu_plugin_register_vcpu_exit_cb(VcpuCb);
    register_vcpu_idle => qemu_plugin_register_vcpu_idle_cb(VcpuCb);
    register_vcpu_resume => qemu_plugin_register_vcpu_resume_cb(VcpuCb);
    register_tb_trans => qemu_plugin_register_vcpu_tb_trans_cb(TbTransCb);
    register_syscall => qemu_plugin_register_vcpu_syscall_cb(SyscallCb);
    register_syscall_ret => qemu_plugin_register_vcpu_syscall_ret_cb(SyscallRetCb);
    register_flush => qemu_plugin_register_flush_cb(PlainCb);
    uninstall => qemu_plugin_uninstall(PlainCb);
    reset => qemu_plugin_reset(PlainCb);
    vcpu_for_each => qemu_plugin_vcpu_for_each(VcpuCb);
    #[cfg(since_api_6)]
    register_syscall_filter => qemu_plugin_register_vcpu_syscall_filter_cb(super::SyscallFilterCb);
}

/// Registers `cb` to run at QEMU's exit, with `userdata` (every API passes it).
///
/// # Safety
/// As for the other registrations.
pub(crate) unsafe fn register_atexit(
    id: qemu_plugin_id_t,
    cb: Option<UdataCb>,
    userdata: *mut c_void,
) {
    // SAFETY: the caller's contract; the C function has this shape under every API.
    unsafe { super::qemu_plugin_register_atexit_cb(id, cb, userdata) }
}

/// Registers `cb` for the discontinuities in `kind` through QEMU's
/// `qemu_plugin_register_vcpu_discon_cb` (looked up at run time), with `userdata` from
/// API 7 on.
///
/// # Safety
/// `register` is QEMU's function; otherwise as for the other registrations.
pub(crate) unsafe fn register_discon(
    register: super::qemu_plugin_register_vcpu_discon_cb_fn,
    id: qemu_plugin_id_t,
    kind: super::qemu_plugin_discon_type,
    cb: Option<super::DisconCb>,
    userdata: *mut c_void,
) {
    #[cfg(not(since_api_7))]
    {
        let _ = userdata;
        // SAFETY: the caller's contract; the shape before API 7.
        unsafe { register(id, kind, cb) }
    }
    #[cfg(since_api_7)]
    // SAFETY: the caller's contract; the shape since API 7.
    unsafe {
        register(id, kind, cb, userdata)
    }
}

/// Raw callbacks of the shape that gets the plugin id (`IdVcpuCb` ...), which the crate's
/// raw registration functions take under any API. Each function here turns one into the
/// callback and userdata to register: before API 7 the callback itself (the shapes are
/// the same); from API 7 an adapter of the API's shape, with the raw callback as its
/// userdata, which calls it with the plugin's id.
pub(crate) mod id_shaped {
    use std::ffi::c_void;

    use super::super::{
        DisconCb, IdDisconCb, IdSyscallCb, IdSyscallRetCb, IdTbTransCb, IdVcpuCb, SyscallCb,
        SyscallRetCb, TbTransCb, VcpuCb,
    };

    #[cfg(since_api_7)]
    mod adapters {
        use super::super::Userdata;
        use super::*;

        /// The plugin's raw callback stored as userdata by `id_shaped`.
        ///
        /// # Safety
        /// `ud` holds a non-null function pointer of type `F`.
        unsafe fn raw<F: Copy>(ud: Userdata) -> F {
            // SAFETY: the caller's contract (a fn pointer has the size of a data pointer
            // on every host QEMU runs on).
            unsafe { std::mem::transmute_copy::<*mut c_void, F>(&ud.ptr()) }
        }

        qemu_callback!(vcpu pub(super) fn vcpu[](ud, vcpu) {
            // SAFETY: registered by `id_shaped::vcpu` with an `IdVcpuCb` as userdata; the
            // plugin registered that function for exactly this call.
            unsafe { raw::<IdVcpuCb>(ud)(crate::identity::id(), vcpu) }
        });
        qemu_callback!(tb_trans pub(super) fn tb_trans[](ud, tb) {
            // SAFETY: as for `vcpu`, with an `IdTbTransCb`.
            unsafe { raw::<IdTbTransCb>(ud)(crate::identity::id(), tb) }
        });
        qemu_callback!(syscall pub(super) fn syscall[](ud, vcpu, num, a) {
            // SAFETY: as for `vcpu`, with an `IdSyscallCb`.
            unsafe {
                raw::<IdSyscallCb>(ud)(
                    crate::identity::id(), vcpu, num, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                    a[7],
                )
            }
        });
        qemu_callback!(syscall_ret pub(super) fn syscall_ret[](ud, vcpu, num, ret) {
            // SAFETY: as for `vcpu`, with an `IdSyscallRetCb`.
            unsafe { raw::<IdSyscallRetCb>(ud)(crate::identity::id(), vcpu, num, ret) }
        });
        qemu_callback!(discon pub(super) fn discon[](ud, vcpu, kind, from, to) {
            // SAFETY: as for `vcpu`, with an `IdDisconCb`.
            unsafe { raw::<IdDisconCb>(ud)(crate::identity::id(), vcpu, kind, from, to) }
        });
    }

    macro_rules! id_shaped {
        ($($name:ident($id_shape:ty => $api_shape:ty);)*) => {$(
            /// The callback and userdata that run the raw callback `cb`.
            pub(crate) fn $name(cb: Option<$id_shape>) -> (Option<$api_shape>, *mut c_void) {
                #[cfg(not(since_api_7))]
                {
                    (cb, std::ptr::null_mut())
                }
                #[cfg(since_api_7)]
                {
                    match cb {
                        Some(f) => (Some(adapters::$name as $api_shape), f as *mut c_void),
                        None => (None, std::ptr::null_mut()),
                    }
                }
            }
        )*};
    }

    id_shaped! {
        vcpu(IdVcpuCb => VcpuCb);
        tb_trans(IdTbTransCb => TbTransCb);
        syscall(IdSyscallCb => SyscallCb);
        syscall_ret(IdSyscallRetCb => SyscallRetCb);
        discon(IdDisconCb => DisconCb);
    }
}
