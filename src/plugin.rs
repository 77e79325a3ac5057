//! The `qemu-plugin` 10.1.0-v2 plugin surface, kept for its users: `HasCallbacks`,
//! `Register`, `Plugin`, `register!` and `PLUGIN`, with the same names, signatures and
//! callback set.
//!
//! # What it costs
//! This is the compatibility path. The plugin object sits behind one global `Mutex`, and
//! every callback of the trait (translation, vCPU events, syscalls) takes that lock, so
//! vCPU threads serialise on it. Exec closures registered from it run without the lock,
//! but any shared state they reach needs its own synchronisation. For multi-core
//! tracers, implement [`PerVcpu`](crate::PerVcpu) instead: per-vCPU shards, no lock on
//! the hot path.
//!
//! What changed from 10.1.0-v2, keeping the names: exec closures must be `Fn + Sync`
//! (QEMU calls them from several vCPU threads at once); their memory is freed at each
//! translation-cache flush; an `Err` or a panic in a callback is reported once and
//! uninstalls the plugin instead of aborting QEMU.

use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::callbacks::lifecycle::{
    qemu_plugin_register_flush_cb, qemu_plugin_register_vcpu_exit_cb,
    qemu_plugin_register_vcpu_idle_cb, qemu_plugin_register_vcpu_init_cb,
    qemu_plugin_register_vcpu_resume_cb, qemu_plugin_register_vcpu_tb_trans_cb,
};
use crate::callbacks::syscall::{
    qemu_plugin_register_vcpu_syscall_cb, qemu_plugin_register_vcpu_syscall_ret_cb,
};
use crate::callbacks::trampoline::{Hook, guard};
use crate::error::Failure;
use crate::{Args, Error, Info, PluginId, Result, TranslationBlock, VCPUIndex, sys};

/// Callbacks a 10.1-style plugin may implement; each defaults to doing nothing.
/// Needs: any QEMU with plugins.
#[allow(unused_variables)]
pub trait HasCallbacks: Send + Sync + 'static {
    /// A vCPU was initialised (on its thread).
    fn on_vcpu_init(&mut self, id: PluginId, vcpu_id: VCPUIndex) -> Result<()> {
        Ok(())
    }

    /// A vCPU exits (on its thread).
    fn on_vcpu_exit(&mut self, id: PluginId, vcpu_id: VCPUIndex) -> Result<()> {
        Ok(())
    }

    /// A vCPU went idle (system mode).
    fn on_vcpu_idle(&mut self, id: PluginId, vcpu_id: VCPUIndex) -> Result<()> {
        Ok(())
    }

    /// A vCPU resumed (system mode).
    fn on_vcpu_resume(&mut self, id: PluginId, vcpu_id: VCPUIndex) -> Result<()> {
        Ok(())
    }

    /// A block is being translated: inspect it and register exec callbacks on it.
    fn on_translation_block_translate(
        &mut self,
        id: PluginId,
        tb: TranslationBlock<'_>,
    ) -> Result<()> {
        Ok(())
    }

    /// QEMU flushed its translation cache.
    fn on_flush(&mut self, id: PluginId) -> Result<()> {
        Ok(())
    }

    /// A syscall is about to run (user mode).
    #[allow(clippy::too_many_arguments)]
    fn on_syscall(
        &mut self,
        id: PluginId,
        vcpu_index: VCPUIndex,
        num: i64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        a6: u64,
        a7: u64,
        a8: u64,
    ) -> Result<()> {
        Ok(())
    }

    /// A syscall returned `ret` (user mode).
    fn on_syscall_return(
        &mut self,
        id: PluginId,
        vcpu_index: VCPUIndex,
        num: i64,
        ret: i64,
    ) -> Result<()> {
        Ok(())
    }
}

/// Registration of a 10.1-style plugin with QEMU. `impl Register for X {}` registers
/// every [`HasCallbacks`] method; override [`Register::register`] to do more at install.
/// Needs: any QEMU with plugins.
pub trait Register: HasCallbacks + Send + Sync + 'static {
    /// Registers the trait's callbacks, then calls [`Register::register`]. Override only to
    /// replace the default set.
    fn register_default(&mut self, id: PluginId, args: &Args, info: &Info) -> Result<()> {
        qemu_plugin_register_vcpu_init_cb(id, Some(vcpu_init))?;
        qemu_plugin_register_vcpu_exit_cb(id, Some(vcpu_exit))?;
        qemu_plugin_register_vcpu_idle_cb(id, Some(vcpu_idle))?;
        qemu_plugin_register_vcpu_resume_cb(id, Some(vcpu_resume))?;
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(tb_trans))?;
        qemu_plugin_register_flush_cb(id, Some(flush));
        qemu_plugin_register_vcpu_syscall_cb(id, Some(syscall));
        qemu_plugin_register_vcpu_syscall_ret_cb(id, Some(syscall_ret));
        self.register(id, args, info)
    }

    /// Plugin-specific install work (parse arguments, register an atexit callback...).
    #[allow(unused_variables)]
    fn register(&mut self, id: PluginId, args: &Args, info: &Info) -> Result<()> {
        Ok(())
    }
}

/// A complete 10.1-style plugin.
pub trait Plugin: Register + HasCallbacks {}

impl<T> Plugin for T where T: Register + HasCallbacks {}

/// The plugin instance `register!` installs, behind the global lock.
#[doc(hidden)]
pub static PLUGIN: OnceLock<Mutex<Box<dyn Plugin>>> = OnceLock::new();

/// Stores `plugin` as the instance QEMU will install (replacing an earlier one).
#[doc(hidden)]
#[inline(never)]
pub fn register_plugin(plugin: impl Plugin) {
    let mut slot = Some(Box::new(plugin) as Box<dyn Plugin>);
    let lock = PLUGIN.get_or_init(|| Mutex::new(slot.take().expect("set once")));
    if let Some(p) = slot {
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

/// The installer `register!` registers: runs the plugin's `register_default`.
#[doc(hidden)]
pub fn install(id: PluginId, args: &Args, info: &Info) -> Result<()> {
    locked()?.register_default(id, args, info)
}

fn locked() -> Result<MutexGuard<'static, Box<dyn Plugin>>> {
    let plugin = PLUGIN
        .get()
        .ok_or_else(|| Error::from(Failure::NoPluginRegistered))?;
    Ok(plugin.lock().unwrap_or_else(|e| e.into_inner()))
}

fn with_plugin(hook: Hook, f: impl FnOnce(&mut dyn Plugin) -> Result<()>) {
    guard(hook, (), || f(&mut **locked()?))
}

extern "C" fn vcpu_init(id: PluginId, vcpu: VCPUIndex) {
    with_plugin(Hook::VcpuInit, |p| p.on_vcpu_init(id, vcpu))
}

extern "C" fn vcpu_exit(id: PluginId, vcpu: VCPUIndex) {
    with_plugin(Hook::VcpuExit, |p| p.on_vcpu_exit(id, vcpu))
}

extern "C" fn vcpu_idle(id: PluginId, vcpu: VCPUIndex) {
    with_plugin(Hook::VcpuIdle, |p| p.on_vcpu_idle(id, vcpu))
}

extern "C" fn vcpu_resume(id: PluginId, vcpu: VCPUIndex) {
    with_plugin(Hook::VcpuResume, |p| p.on_vcpu_resume(id, vcpu))
}

extern "C" fn tb_trans(id: PluginId, tb: *mut sys::qemu_plugin_tb) {
    with_plugin(Hook::Translate, |p| {
        // SAFETY: QEMU passes the block being translated; the handle is only lent to the
        // callback below.
        match unsafe { TranslationBlock::from_raw(tb) } {
            Some(tb) => p.on_translation_block_translate(id, tb),
            None => Ok(()),
        }
    })
}

extern "C" fn flush(id: PluginId) {
    with_plugin(Hook::Flush, |p| p.on_flush(id))
}

#[allow(clippy::too_many_arguments)]
extern "C" fn syscall(
    id: PluginId,
    vcpu: VCPUIndex,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
) {
    with_plugin(Hook::Syscall, |p| {
        p.on_syscall(id, vcpu, num, a1, a2, a3, a4, a5, a6, a7, a8)
    })
}

extern "C" fn syscall_ret(id: PluginId, vcpu: VCPUIndex, num: i64, ret: i64) {
    with_plugin(Hook::SyscallReturn, |p| {
        p.on_syscall_return(id, vcpu, num, ret)
    })
}

/// Registers a 10.1-style plugin: `register!(MyPlugin)` or `register!(MyPlugin::new())`.
/// The expression is evaluated when QEMU loads the shared object.
#[macro_export]
macro_rules! register {
    ($plugin:expr) => {
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".text.startup"))]
        extern "C" fn __qemu_plugin_ctor() {
            let _ = ::std::panic::catch_unwind(|| {
                $crate::plugin::register_plugin($plugin);
                $crate::install::set_installer(env!("CARGO_CRATE_NAME"), $crate::plugin::install);
            });
        }

        #[used]
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".init_array"))]
        static __QEMU_PLUGIN_CTOR: extern "C" fn() = __qemu_plugin_ctor;
    };
}

#[cfg(test)]
mod tests {
    //! A plugin written against the 10.1.0-v2 crate, unchanged, driven by the mock host.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use crate::{
        Error, HasCallbacks, Info, PluginId, Register, Result, TranslationBlock, VCPUIndex, Value,
        install::Args, qemu_plugin_outs, qemu_plugin_register_atexit_cb,
    };
    use qemu_plugin_mock::{Block, MockHost, Workload};

    #[derive(Default)]
    struct OldStyle {
        label: String,
        executed: Arc<AtomicU64>,
        inits: u64,
        fail_syscalls: bool,
    }

    impl Register for OldStyle {
        fn register(&mut self, id: PluginId, args: &Args, _info: &Info) -> Result<()> {
            if let Some(Value::String(s)) = args.parsed.get("label") {
                self.label = s.clone();
            }
            self.fail_syscalls = matches!(args.parsed.get("fail"), Some(Value::Bool(true)));
            let label = self.label.clone();
            let executed = self.executed.clone();
            qemu_plugin_register_atexit_cb(id, move |_| {
                let _ = qemu_plugin_outs(format!("{label}: {} executed\n", executed.load(Relaxed)));
            })
        }
    }

    impl HasCallbacks for OldStyle {
        fn on_vcpu_init(&mut self, _id: PluginId, _vcpu_id: VCPUIndex) -> Result<()> {
            self.inits += 1;
            qemu_plugin_outs(format!("init #{}\n", self.inits))
        }

        fn on_translation_block_translate(
            &mut self,
            _id: PluginId,
            tb: TranslationBlock,
        ) -> Result<()> {
            for insn in tb.instructions() {
                let vaddr = insn.vaddr();
                let disas = insn.disas()?;
                qemu_plugin_outs(format!("{vaddr:08x}: {disas}\n"))?;
                let executed = self.executed.clone();
                insn.register_execute_callback(move |_vcpu| {
                    executed.fetch_add(1, Relaxed);
                });
            }
            Ok(())
        }

        fn on_syscall(
            &mut self,
            _id: PluginId,
            _vcpu_index: VCPUIndex,
            num: i64,
            _a1: u64,
            _a2: u64,
            _a3: u64,
            _a4: u64,
            _a5: u64,
            _a6: u64,
            _a7: u64,
            _a8: u64,
        ) -> Result<()> {
            if self.fail_syscalls {
                return Err(Error::msg(format!("refusing syscall {num}")));
            }
            Ok(())
        }
    }

    fn install(host: &mut MockHost, args: &[&str]) -> i32 {
        super::register_plugin(OldStyle::default());
        crate::install::set_installer("oldstyle", super::install);
        host.install(crate::install::qemu_plugin_install, args)
    }

    /// 10.1.0-v2's users could store their plugin with `register_plugin` (or
    /// `PLUGIN.set`) from a constructor of their own instead of `register!`; such a
    /// plugin installs and runs too.
    #[test]
    fn a_plugin_stored_without_register_installs() {
        let mut host = MockHost::system(2);
        crate::register_plugin(OldStyle::default());
        crate::install::clear_installer();
        assert_eq!(
            host.install(crate::install::qemu_plugin_install, &["label=direct"]),
            0,
            "{}",
            host.output()
        );
        host.boot();
        let w = Workload::new().step(Block::synthetic(0x4000, 3), 10);
        assert_eq!(host.run(&w).insns, 60);
        host.atexit();
        assert!(host.output().contains("direct"), "{}", host.output());
    }

    #[test]
    fn a_10_1_style_plugin_behaves_the_same() {
        let mut host = MockHost::system(2);
        assert_eq!(install(&mut host, &["label=old"]), 0, "{}", host.output());
        host.boot();
        let w = Workload::new().step(Block::synthetic(0x4000, 3), 1000);
        assert_eq!(host.run(&w).insns, 6000);
        host.atexit();
        let out = host.output();
        assert!(
            out.contains("init #1\n") && out.contains("init #2\n"),
            "{out}"
        );
        assert!(out.lines().any(|l| l.starts_with("00004000: ")), "{out}");
        assert!(out.ends_with("old: 6000 executed\n"), "{out}");
    }

    #[test]
    fn an_err_from_a_10_1_style_callback_is_reported_not_a_panic() {
        let mut host = MockHost::user();
        assert_eq!(install(&mut host, &["fail=on"]), 0);
        let id = host.plugin_ids()[0];
        host.spawn_vcpus(1);
        host.syscall(0, 60, [0; 8], 0);
        host.syscall(0, 61, [0; 8], 0);
        let out = host.output();
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("refusing syscall"))
            .collect();
        assert_eq!(
            lines,
            [
                "oldstyle: error: refusing syscall 60 (in the syscall callback); uninstalling the plugin, the guest continues"
            ]
        );
        assert!(host.is_uninstalled(id));
    }
}
