//! The installed runtime: the one leaked `Runtime<P>` of this shared object, and the
//! registry through which hooks that QEMU gives no userdata find it.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;
use thread_local::ThreadLocal;

use super::inline;
use super::per_vcpu::PerVcpu;
use super::shards::{First, Shards};
use super::slot::Slot;
use super::translate::Scratch;
use super::vcpu::Vcpu;
use crate::error::Failure;
use crate::error::{Error, Result};
use crate::sys::callback_abi::Userdata;
use crate::{PluginId, VCPUIndex};

pub(crate) struct Runtime<P: PerVcpu> {
    pub(crate) plugin: P,
    pub(crate) id: PluginId,
    pub(crate) config: ArcSwap<P::Config>,
    pub(crate) shards: Shards<Slot<P>>,
    /// The running total, behind a pointer to a leaked, never-freed mutex, so that a
    /// forked child can start a fresh one even if the fork caught another thread holding
    /// the lock (see `process`). `None` once taken for `on_exit`, or spoiled by a failed
    /// merge.
    total: AtomicPtr<Mutex<Option<P::Total>>>,
    /// Shards created and not yet merged.
    pub(crate) live: AtomicUsize,
    /// This target's `execve` and `execveat` syscall numbers (`-1`: none).
    pub(crate) exec_syscalls: [i64; 2],
    pub(crate) scratch: ThreadLocal<RefCell<Scratch>>,
    /// The inline counters the plugin created while it installed.
    inline: Vec<inline::Board>,
}

/// A fresh, leaked total.
fn new_total<T: Default>() -> *mut Mutex<Option<T>> {
    Box::into_raw(Box::new(Mutex::new(Some(T::default()))))
}

/// The installed `Runtime<P>`, type-erased; null before install.
static RUNTIME: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

impl<P: PerVcpu> Runtime<P> {
    /// Builds the runtime, leaks it, and publishes it for the hooks.
    pub(crate) fn publish(
        plugin: P,
        config: P::Config,
        id: PluginId,
        exec_syscalls: [i64; 2],
    ) -> &'static Self {
        let rt: &'static Self = Box::leak(Box::new(Runtime {
            plugin,
            id,
            config: ArcSwap::from_pointee(config),
            shards: Shards::new(),
            total: AtomicPtr::new(new_total::<P::Total>()),
            live: AtomicUsize::new(0),
            exec_syscalls,
            scratch: ThreadLocal::new(),
            inline: inline::take_created(),
        }));
        rt.shards.set_owner((rt as *const Self).cast());
        RUNTIME.store((rt as *const Self).cast_mut().cast(), Ordering::Release);
        rt
    }

    /// The runtime that owns segment 0 `first` of its shard array.
    pub(crate) fn of_first(first: &'static First<Slot<P>>) -> Result<&'static Self> {
        let owner = first.owner();
        if owner.is_null() {
            return Err(Error::from(Failure::RuntimeNotInstalled {
                type_name: std::any::type_name::<P>(),
            }));
        }
        // SAFETY: only `publish` sets an owner, on the `Shards<Slot<P>>` of the
        // `Runtime<P>` it leaks (never freed), and that is the runtime it stores.
        Ok(unsafe { &*owner.cast::<Self>() })
    }

    /// The installed runtime, for a hook that only the install of `P` registered.
    #[inline(always)]
    pub(crate) fn get() -> Result<&'static Self> {
        let p = RUNTIME.load(Ordering::Acquire);
        if p.is_null() {
            return Err(Error::from(Failure::RuntimeNotInstalled {
                type_name: std::any::type_name::<P>(),
            }));
        }
        // SAFETY: `publish::<P>` stores a leaked, never-freed `Runtime<P>` here before
        // its install registers any hook, and every hook that calls `get::<P>` was
        // registered by that install (one plugin per shared object; the mock host
        // re-registers everything on each install). So `p` is a live `Runtime<P>`.
        Ok(unsafe { &*p.cast::<Self>() })
    }

    /// The runtime a hook was registered with: its userdata under API 7 (no lookup),
    /// the installed runtime before (QEMU passes no userdata there).
    #[inline(always)]
    pub(crate) fn from_userdata(ud: Userdata) -> Result<&'static Self> {
        let p = ud.ptr();
        if p.is_null() {
            return Self::get();
        }
        // SAFETY: a non-null userdata reaches a runtime hook only from `hooks::register`,
        // which passes the leaked, never-freed `Runtime<P>` of the same `P` as the hook.
        Ok(unsafe { &*p.cast::<Self>() })
    }

    /// A new shard for vCPU `index`.
    pub(crate) fn fresh(&'static self, index: VCPUIndex) -> Result<Vcpu<P>> {
        let shard = self.plugin.new_shard(index)?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Vcpu::new(shard, index, self, &self.config))
    }

    /// The running total's lock.
    pub(crate) fn total(&self) -> &Mutex<Option<P::Total>> {
        // SAFETY: `total` always holds a pointer from `new_total`, leaked and never freed
        // (a replaced one is abandoned, not dropped).
        unsafe { &*self.total.load(Ordering::Acquire) }
    }

    /// Merges `vcpu` into the total. If `merge` fails or panics, the total is spoiled
    /// (set to `None`) before its lock is released, so nothing ever hands a half-updated
    /// total to `on_exit`; the failure then goes on to the caller.
    pub(crate) fn merge(&self, vcpu: Vcpu<P>) -> Result<()> {
        self.live.fetch_sub(1, Ordering::Relaxed);
        let mut total = self.total().lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = total.as_mut() else {
            return Ok(());
        };
        match catch_unwind(AssertUnwindSafe(|| self.plugin.merge(t, vcpu))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *total = None;
                Err(e)
            }
            Err(panic) => {
                *total = None;
                drop(total);
                resume_unwind(panic)
            }
        }
    }

    /// Takes the total for a report; with `restart`, a fresh one takes its place.
    pub(crate) fn take_total(&self, restart: bool) -> Option<P::Total> {
        let mut lock = self.total().lock().unwrap_or_else(PoisonError::into_inner);
        let taken = lock.take();
        if restart && taken.is_some() {
            *lock = Some(P::Total::default());
        }
        taken
    }

    /// Starts this forked child's runtime from zero (see `process`).
    ///
    /// # Safety
    /// No other thread of this process uses the runtime while it runs.
    pub(crate) unsafe fn reset_in_child(&self) {
        for (_, slot) in self.shards.iter() {
            // SAFETY: the caller guarantees no other thread uses the slots.
            unsafe { slot.reset_in_child() };
        }
        self.total.store(new_total::<P::Total>(), Ordering::Release);
        self.live.store(0, Ordering::Relaxed);
        inline::reset(&self.inline);
    }
}
