//! [`Hook`]: which callback a failure happened in, as its report names it.

/// Which callback a failure happened in; named in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Install,
    VcpuInit,
    VcpuExit,
    VcpuIdle,
    VcpuResume,
    Translate,
    Exec,
    Memory,
    Syscall,
    #[cfg_attr(not(since_api_6), allow(dead_code))]
    SyscallFilter,
    SyscallReturn,
    Discontinuity,
    Flush,
    AtExit,
    Uninstall,
    Reset,
    ForEach,
    Execve,
}

impl Hook {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hook::Install => "install",
            Hook::VcpuInit => "vcpu_init",
            Hook::VcpuExit => "vcpu_exit",
            Hook::VcpuIdle => "vcpu_idle",
            Hook::VcpuResume => "vcpu_resume",
            Hook::Translate => "translate",
            Hook::Exec => "exec",
            Hook::Memory => "memory",
            Hook::Syscall => "syscall",
            Hook::SyscallFilter => "syscall_filter",
            Hook::SyscallReturn => "syscall_return",
            Hook::Discontinuity => "discontinuity",
            Hook::Flush => "flush",
            Hook::AtExit => "on_exit",
            Hook::Uninstall => "uninstall",
            Hook::Reset => "reset",
            Hook::ForEach => "vcpu_for_each",
            Hook::Execve => "execve (report before it)",
        }
    }
}
