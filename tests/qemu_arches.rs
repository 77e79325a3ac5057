//! What differs per guest architecture (x86_64, aarch64, riscv64) and is not covered by
//! the shared agreement, thread, fork and exec tests (`qemu_agreement`,
//! `qemu_user_threads`, `qemu_reliability`, each with a module per architecture):
//! - registers read by their QEMU names at a known point of a guest program, against the
//!   values the guest prints itself and the address its ELF symbol table gives;
//! - aarch64 and riscv64 Linux guests booting under MTTCG with 4 vCPUs, every vCPU
//!   counted with `icount check=on` clean: aarch64 on QEMU 10.0 (plugin API 4) and 11.1
//!   (API 7), riscv64 on 11.1 (the only riscv64 system QEMU here with plugins).

#[macro_use]
mod common;

use std::path::Path;

use common::*;

/// QEMU's names for the program counter, the stack pointer and the register the guest
/// `regs.c` loads with its mark (the third argument register).
fn register_names(arch: Arch) -> [&'static str; 3] {
    match arch {
        Arch::X86_64 => ["rip", "rsp", "rdx"],
        Arch::Aarch64 => ["pc", "sp", "x2"],
        Arch::Riscv64 => ["pc", "sp", "a2"],
    }
}

/// A hex field `key=0x...` of a line.
fn hex_field(line: &str, key: &str) -> u64 {
    let v = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"));
    u64::from_str_radix(v.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("{key}={v} in {line:?} is not a hex number"))
}

fn registers_by_name(q: UserQemu) {
    let arch = q.arch();
    let program = guest_for(arch, "regs");
    let site = symbol_address(arch, &program, "probe_site");
    let [pc, sp, reg] = register_names(arch);
    let at = format!("at=0x{site:x}");
    let names = format!("names={pc}:{sp}:{reg}");
    let r = run_user_on(
        q,
        "regs",
        &[Plugin::new(example(q.api(), "regs"), &[&at, &names])],
        "regs",
        &[],
    );
    r.assert_success();
    let guest_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("regs: sp="))
        .unwrap_or_else(|| panic!("the guest printed nothing\n{}", r.describe()));
    assert!(guest_line.ends_with("mark=ok"), "{guest_line}");
    let ours: Vec<&str> = r
        .log
        .lines()
        .filter(|l| l.starts_with("regs: cpu "))
        .collect();
    eprintln!("{arch:?}: probe_site 0x{site:x}; guest `{guest_line}`; plugin {ours:?}");
    assert_eq!(ours.len(), 1, "the probe site runs once\n{}", r.describe());
    let line = ours[0];
    assert_eq!(hex_field(line, pc), site, "{pc} against the ELF symbol");
    assert_eq!(
        hex_field(line, sp),
        hex_field(guest_line, "sp"),
        "{sp} against the guest's own"
    );
    assert_eq!(
        hex_field(line, reg),
        hex_field(guest_line, "reg"),
        "{reg} against the guest's own"
    );
}

tests_on!(x86_64, UserQemu::V10_2, [registers_by_name]);
tests_on!(aarch64, UserQemu::Aarch64, [registers_by_name]);
tests_on!(riscv64, UserQemu::Riscv64, [registers_by_name]);

/// A name the vCPU lacks is answered with the names it has (aarch64's here).
#[test]
fn an_unknown_register_name_lists_the_known_ones() {
    let q = UserQemu::Aarch64;
    let program = guest_for(q.arch(), "regs");
    let at = format!(
        "at=0x{:x}",
        symbol_address(q.arch(), &program, "probe_site")
    );
    let r = run_user_on(
        q,
        "regs-unknown",
        &[Plugin::new(example(q.api(), "regs"), &[&at, "names=rip"])],
        "regs",
        &[],
    );
    r.assert_success();
    assert!(
        r.log
            .contains("rip=<this vCPU has no register named `rip` (it has: x0, x1"),
        "{}",
        r.describe()
    );
}

fn boot(arch: Arch, qemu: &Path, api: Api, label: &str) {
    let r = run_system_with(
        label,
        &[Plugin::new(
            example(api, "icount"),
            &["check=on", "events=on"],
        )],
        &SystemExtras {
            qemu: Some(qemu),
            arch,
            ..SystemExtras::default()
        },
    );
    assert_system_icount(&r);
}

#[test]
fn aarch64_system_on_qemu_10_0_counts_every_vcpu() {
    boot(
        Arch::Aarch64,
        &qemu_env().qemu_system_aarch64,
        Api::V4,
        "aarch64-system-10.0",
    );
}

#[test]
fn aarch64_system_on_qemu_11_1_counts_every_vcpu() {
    boot(
        Arch::Aarch64,
        &qemu_env().qemu_system_aarch64_11,
        Api::V7,
        "aarch64-system-11.1",
    );
}

#[test]
fn riscv64_system_on_qemu_11_1_counts_every_vcpu() {
    boot(
        Arch::Riscv64,
        &qemu_env().qemu_system_riscv64_11,
        Api::V7,
        "riscv64-system-11.1",
    );
}
