//! Safe, high-level bindings to QEMU's TCG plugin API, with a lock-free, per-vCPU
//! sharded callback runtime.
//!
//! Write a plugin by implementing [`PerVcpu`]: each vCPU gets its own shard of state,
//! reached from the exec, memory and syscall callbacks without any lock; shards are merged
//! into a total when a vCPU exits and when QEMU exits. A per-vCPU instruction counter:
//!
//! ```
//! # extern crate qemu_plugin_mock; // QEMU's symbols, for the doctest's executable
//! use qemu_plugin::{per_vcpu, Args, Info, PerVcpu, Result, Translation, Vcpu, VCPUIndex};
//!
//! #[derive(Default)]
//! struct Insns(u64);
//!
//! struct Icount;
//!
//! impl PerVcpu for Icount {
//!     type Config = ();
//!     type Shard = Insns;
//!     type Total = Vec<(VCPUIndex, u64)>;
//!
//!     fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
//!         args.expect_only(&[])?;
//!         Ok((Icount, ()))
//!     }
//!     fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Insns> {
//!         Ok(Insns::default())
//!     }
//!     fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
//!         let n = tb.size() as u64;
//!         tb.on_exec(move |cpu: &mut Vcpu<Self>| cpu.0 += n);
//!         Ok(())
//!     }
//!     fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
//!         total.push((cpu.index(), cpu.0));
//!         Ok(())
//!     }
//!     fn on_exit(&self, total: Self::Total) -> Result<()> {
//!         let sum: u64 = total.iter().map(|(_, n)| n).sum();
//!         qemu_plugin::qemu_plugin_outs(format!("total insns: {sum}\n"))
//!     }
//! }
//!
//! per_vcpu!(Icount);
//! ```
//!
//! Build it as a `cdylib` and load it with `qemu-x86_64 -plugin ./libicount.so ./prog`.
//!
//! The plugin surface of the `qemu-plugin` 10.1.0-v2 crate ([`HasCallbacks`],
//! [`Register`], [`register!`]) is kept as the compatibility path; see [`plugin`] for
//! what it costs.
//!
//! # QEMU versions
//! Choose one feature, for the oldest QEMU the plugin must load in: `plugin-api-v5`
//! (default) for QEMU 10.1 and 10.2, `plugin-api-v4` for 9.2 and 10.0, `-v3` for 9.1,
//! `-v2` for 9.0, `-v1` for 7.2 to 8.2, `-v0` for 4.2 to 7.1, `plugin-api-v6` for 11.0,
//! `plugin-api-v7` for 11.1 (which accepts nothing older). Items an API lacks are
//! compiled out; their docs say which QEMU they need;
//! [`qemu_plugin_register_vcpu_discon_cb`] needs QEMU 10.2 and is looked up at run time.

#![cfg_attr(docsrs, feature(doc_cfg))]
// The API cfgs (`since_api_N`, `qemu_api`) come from the one selected feature: build.rs.
#[cfg(qemu_api_conflict)]
compile_error!(
    "the features `plugin-api-v0` ... `plugin-api-v7` are mutually exclusive: a plugin speaks \
     exactly one QEMU plugin API. For anything but the default (`plugin-api-v5`, QEMU 10.1 and \
     10.2) use `default-features = false, features = [\"plugin-api-vN\"]`"
);
#[cfg(qemu_api_unselected)]
compile_error!(
    "choose a QEMU plugin API: feature `plugin-api-v5` (QEMU 10.1 and 10.2, the default), \
     `plugin-api-v4` (QEMU 9.2 and 10.0), `plugin-api-v6` (QEMU 11.0) or `plugin-api-v7` \
     (QEMU 11.1)"
);

use std::ffi::c_uint;

mod annotate;
pub mod api;
pub mod callbacks;
mod compat;
pub mod error;
pub mod glib;
pub mod handles;
mod host;
mod identity;
pub mod install;
pub mod plugin;
pub mod runtime;
#[cfg(since_api_2)]
pub mod scoreboard;
pub mod sys;

/// The 10.1.0-v2 module path of [`Instruction`].
pub mod instruction {
    pub use crate::handles::insn::Instruction;
}

/// The 10.1.0-v2 module path of [`TranslationBlock`] and its instruction iterator.
pub mod translation_block {
    pub use crate::handles::tb::{TranslationBlock, TranslationBlockIterator};
}

/// The 10.1.0-v2 module path of [`RegisterDescriptor`] (QEMU 9.0, plugin API v2).
#[cfg(since_api_2)]
pub mod register {
    pub use crate::handles::register::{
        RegisterDescriptor, find_register, qemu_plugin_get_registers,
    };
}

/// The 10.1.0-v2 module path of memory accesses, hardware addresses and guest-memory
/// access.
pub mod memory {
    #[cfg(since_api_4)]
    pub use crate::api::guest::qemu_plugin_read_memory_vaddr;
    #[cfg(since_api_5)]
    pub use crate::api::guest::{
        qemu_plugin_read_memory_hwaddr, qemu_plugin_translate_vaddr,
        qemu_plugin_write_memory_hwaddr, qemu_plugin_write_memory_vaddr,
    };
    pub use crate::error::HwaddrOperationResult;
    pub use crate::handles::mem::{HwAddr, MemValue, MemoryInfo};
}

#[cfg_attr(not(since_api_1), allow(unused_imports))]
pub use api::guest::*;
pub use api::misc::{qemu_plugin_bool_parse, qemu_plugin_outs};
#[cfg(since_api_4)]
pub use api::time::{TimeControl, qemu_plugin_request_time_control, qemu_plugin_update_ns};
pub use callbacks::discon::{
    DisconCallback, DisconKind, DisconTypes, qemu_plugin_register_vcpu_discon_cb,
};
pub use callbacks::lifecycle::*;
pub use callbacks::syscall::*;
pub use compat::*;
pub use error::{Error, Failure, HwaddrOperationResult, Result};
pub use handles::insn::Instruction;
pub use handles::mem::{HwAddr, MemValue, MemoryInfo};
#[cfg(since_api_2)]
pub use handles::register::{RegisterDescriptor, find_register, qemu_plugin_get_registers};
pub use handles::tb::{TranslationBlock, TranslationBlockIterator};
pub use install::{
    Args, Info, PLUGIN_INSTALL_SUCCESS, System, Value, Version, qemu_plugin_install,
    qemu_plugin_version,
};
#[doc(hidden)]
pub use plugin::register_plugin;
pub use plugin::{HasCallbacks, PLUGIN, Plugin, Register};
#[cfg(since_api_3)]
pub use runtime::Condition;
pub use runtime::{
    Discontinuity, Handle, InlineCounter, InsnTranslation, MemAccess, PerVcpu, Scratch, Syscall,
    SyscallReturn, Translation, Vcpu,
};
#[cfg(since_api_2)]
pub use scoreboard::{
    PluginU64, Scoreboard, ScoreboardEntry, qemu_plugin_scoreboard_sum, qemu_plugin_u64_add,
    qemu_plugin_u64_get, qemu_plugin_u64_set,
};

/// The index of a vCPU (`unsigned int vcpu_index`).
pub type VCPUIndex = c_uint;
/// The plugin's id, given at install (`qemu_plugin_id_t`).
pub type PluginId = sys::qemu_plugin_id_t;
/// Whether a callback may read or write registers (`enum qemu_plugin_cb_flags`).
pub type CallbackFlags = sys::qemu_plugin_cb_flags;
/// Which memory accesses a callback wants (`enum qemu_plugin_mem_rw`).
pub type MemRW = sys::qemu_plugin_mem_rw;
/// A conditional callback's comparison (`enum qemu_plugin_cond`). Needs: QEMU 9.1.
#[cfg(since_api_3)]
pub type PluginCondition = sys::qemu_plugin_cond;
/// An inline operation (`enum qemu_plugin_op`).
pub type PluginOp = sys::qemu_plugin_op;
// The raw callback types keep the shape of APIs 0-6 (the plugin id first) under every
// API: under API 7, where QEMU passes no id, the crate registers an adapter that does.
/// A raw vCPU init callback (`qemu_plugin_vcpu_simple_cb_t`).
pub type VCPUInitCallback = Option<sys::IdVcpuCb>;
/// A raw vCPU exit callback.
pub type VCPUExitCallback = Option<sys::IdVcpuCb>;
/// A raw vCPU idle callback.
pub type VCPUIdleCallback = Option<sys::IdVcpuCb>;
/// A raw vCPU resume callback.
pub type VCPUResumeCallback = Option<sys::IdVcpuCb>;
/// A raw translation callback (`qemu_plugin_vcpu_tb_trans_cb_t`).
pub type VCPUTranslationBlockTranslationCallback = Option<sys::IdTbTransCb>;
/// A raw flush callback (`qemu_plugin_simple_cb_t`).
pub type FlushCallback = Option<sys::IdPlainCb>;
/// A raw syscall callback (`qemu_plugin_vcpu_syscall_cb_t`).
pub type SyscallCallback = Option<sys::IdSyscallCb>;
/// A raw syscall-return callback (`qemu_plugin_vcpu_syscall_ret_cb_t`).
pub type SyscallReturnCallback = Option<sys::IdSyscallRetCb>;
