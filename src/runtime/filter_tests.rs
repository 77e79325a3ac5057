//! The syscall filter (`PerVcpu::SYSCALL_FILTER`, plugin API 6 and later), driven
//! through the mock host, which runs filters where linux-user's `do_syscall` does:
//! after the syscall callbacks, the first answer replacing the host syscall's result,
//! which the return callbacks then see. (No plugin-capable QEMU 11 linux-user can be had
//! here: Debian's `qemu-user` is static, without plugins; so the filter is tested only
//! in the mock.)

use std::sync::Mutex;

use crate::runtime::{self, PerVcpu, Syscall, SyscallReturn, Vcpu};
use crate::{Args, Info, Result, VCPUIndex};
use qemu_plugin_mock::MockHost;

/// `getpid`, answered by the filter with [`ANSWER`].
const GETPID: i64 = 39;
const ANSWER: i64 = 4242;
/// A syscall whose filter call fails (`Err`).
const FAILING: i64 = 1000;

/// What one vCPU's return hook saw: (vCPU, [(num, ret)]).
type Returns = (VCPUIndex, Vec<(i64, i64)>);

/// What each vCPU's return hook saw, at on_exit.
static SEEN: Mutex<Vec<Returns>> = Mutex::new(Vec::new());

struct Filter;

impl PerVcpu for Filter {
    type Config = ();
    type Shard = Vec<(i64, i64)>;
    type Total = Vec<Returns>;

    const SYSCALL_FILTER: bool = true;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&[])?;
        Ok((Filter, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Self::Shard> {
        Ok(Vec::new())
    }

    fn syscall_filter(&self, _cpu: &mut Vcpu<Self>, call: &Syscall) -> Result<Option<i64>> {
        match call.num {
            GETPID => Ok(Some(ANSWER)),
            FAILING => Err(crate::Error::msg("deliberate filter failure")),
            _ => Ok(None),
        }
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        cpu.push((ret.num, ret.ret));
        Ok(())
    }

    fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
        total.push((cpu.index(), cpu.clone()));
        Ok(())
    }

    fn on_exit(&self, total: Self::Total) -> Result<()> {
        *SEEN.lock().unwrap() = total;
        Ok(())
    }
}

fn install(host: &mut MockHost) -> i32 {
    SEEN.lock().unwrap().clear();
    crate::install::set_installer("filter", runtime::install::<Filter>);
    host.install(crate::install::qemu_plugin_install, &[])
}

/// The filter answers `getpid` itself: the return hook sees its answer, not the host's;
/// other syscalls keep the host's result.
#[cfg(since_api_6)]
#[test]
fn a_filter_answers_a_syscall_in_place_of_the_kernel() {
    let mut host = MockHost::user();
    assert_eq!(install(&mut host), 0, "{}", host.output());
    host.spawn_vcpus(2);
    host.syscall(0, GETPID, [0; 8], 7);
    host.syscall(1, 2, [0; 8], 3);
    host.syscall(1, GETPID, [0; 8], 8);
    host.atexit();
    let mut seen = SEEN.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            (0, vec![(GETPID, ANSWER)]),
            (1, vec![(2, 3), (GETPID, ANSWER)]),
        ]
    );
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// A filter that fails is reported, naming the hook, and the plugin uninstalls itself
/// (the trampoline then answers nothing, so the host syscall runs).
#[cfg(since_api_6)]
#[test]
fn a_failing_filter_is_reported_and_leaves_the_syscall_to_the_kernel() {
    let mut host = MockHost::user();
    assert_eq!(install(&mut host), 0, "{}", host.output());
    let id = host.plugin_ids()[0];
    host.spawn_vcpus(1);
    host.syscall(0, FAILING, [0; 8], 5);
    let out = host.output();
    assert!(
        out.contains("deliberate filter failure") && out.contains("syscall_filter"),
        "{out}"
    );
    assert!(host.is_uninstalled(id));
}

/// Before API 6 QEMU has no filter: a plugin asking for one is refused at install,
/// naming the QEMU it needs.
#[cfg(not(since_api_6))]
#[test]
fn a_filter_is_refused_at_install_before_api_6() {
    let mut host = MockHost::user();
    assert_ne!(install(&mut host), 0);
    let out = host.output();
    assert!(
        out.contains("qemu_plugin_register_vcpu_syscall_filter_cb needs QEMU >= 11.0"),
        "{out}"
    );
}
