//! What the runtime knows of each guest architecture: the syscall numbers behind the
//! `execve` handling, by the target name QEMU reports.

use crate::Info;

/// The syscall numbers of `execve` and `execveat` on the guest architecture, from the
/// target name QEMU reports (`x86_64-linux-user`); `None` in system mode (no syscalls
/// reach plugins there) and for linux-user targets not listed here.
pub(crate) fn exec_syscalls(info: &Info) -> Option<[i64; 2]> {
    let arch = info.target_name.split('-').next().unwrap_or("");
    Some(match arch {
        "x86_64" => [59, 322],
        "i386" => [11, 358],
        "aarch64" | "aarch64_be" | "riscv32" | "riscv64" | "loongarch64" => [221, 281],
        "arm" | "armeb" => [11, 387],
        "ppc" | "ppc64" | "ppc64le" => [11, 362],
        "s390x" => [11, 354],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    fn user(target: &str) -> Info {
        Info {
            target_name: target.into(),
            version: Version {
                current: 5,
                mininum: 2,
            },
            system: None,
        }
    }

    #[test]
    fn unknown_targets_have_no_table() {
        assert_eq!(exec_syscalls(&user("x86_64-linux-user")), Some([59, 322]));
        assert_eq!(exec_syscalls(&user("riscv64-linux-user")), Some([221, 281]));
        assert_eq!(exec_syscalls(&user("mips-linux-user")), None);
    }
}
