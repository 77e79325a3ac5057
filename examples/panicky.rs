//! `panicky` (for tests): fails on purpose in one hook of the per-vCPU runtime, to show
//! that the failure is contained. The crate catches it, reports it once through
//! `qemu_plugin_outs` (the message, the callback it happened in and, for a panic, its
//! location), uninstalls the plugin, and QEMU runs the guest to completion.
//!
//! Arguments:
//! - `hook=H` (default `exec`): where to fail, one of
//!   - `install`: in `PerVcpu::new` (QEMU then refuses the plugin and exits with 1
//!     without running the guest: there is nothing to uninstall);
//!   - `init`: in `new_shard`, when a vCPU starts;
//!   - `exit`: in `merge`, for a vCPU that exits while the guest runs (in user mode a
//!     guest thread, which ends with the `exit` syscall; x86_64 guests only);
//!   - `translate`: in `translate`;
//!   - `exec`: in the exec closure registered on every block;
//!   - `syscall`, `syscall_ret`: in the syscall and syscall-return hooks (user mode);
//!   - `idle`, `resume`: in the idle and resume hooks (system mode);
//!   - `discon`: in the discontinuity hook (exceptions and interrupts; needs QEMU 10.2,
//!     so a `plugin-api-v5` build of panicky asks for them whatever `hook` is, and
//!     cannot load into QEMU 10.1; a `plugin-api-v4` build never gets them);
//!   - `merge`: in `merge` at QEMU's exit (the shards of vCPUs still running then);
//!   - `on_exit`: in `on_exit`.
//!
//!   At QEMU's exit (`merge`, `on_exit`) the crate reports the failure but does not ask
//!   QEMU to uninstall the plugin: QEMU is ending the run anyway.
//! - `how=panic|err` (default `panic`): panic, or return an `Err`. An exec closure
//!   returns nothing, so `hook=exec` takes only `how=panic`.
//! - `at=N` (default 1000 for `exec`, 1 otherwise): fail at the `N`th call of that hook,
//!   counted per vCPU for `exec` (block executions), `syscall`, `syscall_ret`, `idle`,
//!   `resume` and `discon`, and over the whole run for the others. From then on the hook
//!   keeps failing on that vCPU (or everywhere), so a runtime that called it again would
//!   show it.
//!
//! The message always starts `panicky: deliberate panic in <hook>` or
//! `panicky: deliberate error in <hook>`. If the failure point is never reached,
//! `on_exit` prints `panicky: reached exit without failing`.

use std::sync::atomic::{AtomicU64, Ordering};

use qemu_plugin::{
    Args, DisconTypes, Discontinuity, Error, Info, PerVcpu, Result, Syscall, SyscallReturn,
    Translation, VCPUIndex, Vcpu, per_vcpu,
};

/// The hooks `hook=` names, in the order of the module doc.
const HOOKS: [&str; 12] = [
    "install",
    "init",
    "exit",
    "translate",
    "exec",
    "syscall",
    "syscall_ret",
    "idle",
    "resume",
    "discon",
    "merge",
    "on_exit",
];

/// x86_64's `exit` syscall: a guest thread's last, after which its vCPU exits.
const X86_64_EXIT: i64 = 60;

struct Panicky {
    hook: &'static str,
    panic: bool,
    at: u64,
    /// Calls of the hook so far, for hooks counted over the whole run.
    calls: AtomicU64,
}

#[derive(Default)]
struct Shard {
    /// Calls of the hook on this vCPU, for hooks counted per vCPU.
    calls: u64,
    /// This vCPU's last syscall, if it made one.
    last_syscall: Option<i64>,
}

impl Panicky {
    /// Fails, the way `how=` says.
    fn fail(&self, what: String) -> Result<()> {
        if self.panic {
            panic!("panicky: deliberate panic in {what}")
        }
        Err(Error::msg(format!("panicky: deliberate error in {what}")))
    }

    /// One call of a hook counted over the whole run: fails from the `at`th on.
    fn global(&self, hook: &str) -> Result<()> {
        if self.hook != hook {
            return Ok(());
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.at {
            return self.fail(format!("{hook} (call {n})"));
        }
        Ok(())
    }

    /// One call of a hook counted per vCPU: fails from that vCPU's `at`th call on.
    fn per_vcpu(&self, hook: &str, cpu: &mut Vcpu<Self>) -> Result<()> {
        if self.hook != hook {
            return Ok(());
        }
        cpu.calls += 1;
        if cpu.calls >= self.at {
            return self.fail(format!(
                "{hook} (call {} on vCPU {})",
                cpu.calls,
                cpu.index()
            ));
        }
        Ok(())
    }
}

impl PerVcpu for Panicky {
    type Config = ();
    type Shard = Shard;
    type Total = ();

    // Discontinuities exist from QEMU 10.2 (API 5) on; builds for older APIs ask for none.
    #[cfg(since_api_5)]
    const DISCONTINUITIES: DisconTypes = DisconTypes::EXCEPTION.union(DisconTypes::INTERRUPT);
    #[cfg(not(since_api_5))]
    const DISCONTINUITIES: DisconTypes = DisconTypes::NONE;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["hook", "how", "at"])?;
        let hook = args.choice("hook", "exec", &HOOKS)?;
        let panic = args.choice("how", "panic", &["panic", "err"])? == "panic";
        let at = args.u64("at", if hook == "exec" { 1000 } else { 1 }, 1..=u64::MAX)?;
        if hook == "exec" && !panic {
            return Err(Error::msg(
                "hook=exec takes only how=panic: an exec closure returns nothing",
            ));
        }
        if hook == "exit" && !info.target_name.starts_with("x86_64") {
            return Err(Error::msg(format!(
                "hook=exit knows only x86_64's exit syscall, not {}'s",
                info.target_name
            )));
        }
        let plugin = Panicky {
            hook,
            panic,
            at,
            calls: AtomicU64::new(0),
        };
        plugin.global("install")?;
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Shard> {
        self.global("init")?;
        Ok(Shard::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        self.global("translate")?;
        if self.hook == "exec" {
            let at = self.at;
            tb.on_exec(move |cpu: &mut Vcpu<Self>| {
                cpu.calls += 1;
                if cpu.calls >= at {
                    panic!(
                        "panicky: deliberate panic in exec (execution {} on vCPU {})",
                        cpu.calls,
                        cpu.index()
                    );
                }
            });
        }
        Ok(())
    }

    fn syscall(&self, cpu: &mut Vcpu<Self>, call: &Syscall) -> Result<()> {
        cpu.last_syscall = Some(call.num);
        self.per_vcpu("syscall", cpu)
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, _ret: &SyscallReturn) -> Result<()> {
        self.per_vcpu("syscall_ret", cpu)
    }

    fn idle(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        self.per_vcpu("idle", cpu)
    }

    fn resume(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        self.per_vcpu("resume", cpu)
    }

    fn discontinuity(&self, cpu: &mut Vcpu<Self>, _event: &Discontinuity) -> Result<()> {
        self.per_vcpu("discon", cpu)
    }

    fn merge(&self, _total: &mut (), cpu: Vcpu<Self>) -> Result<()> {
        // A vCPU merged after its thread's `exit` syscall is merged by its exit hook;
        // any other is merged at QEMU's exit.
        if cpu.last_syscall == Some(X86_64_EXIT) {
            self.global("exit")
        } else {
            self.global("merge")
        }
    }

    fn on_exit(&self, _total: ()) -> Result<()> {
        self.global("on_exit")?;
        qemu_plugin::qemu_plugin_outs("panicky: reached exit without failing\n")
    }
}

per_vcpu!(Panicky);
