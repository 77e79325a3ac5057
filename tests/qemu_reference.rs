//! Self-checks of the harness against QEMU's own reference plugins only (no example of
//! this crate is loaded): the guests are deterministic, the parsers read real output, and
//! the guests' own reports agree with QEMU. The comparison tests in the other files rely
//! on these properties.

mod common;

use common::*;

/// A deterministic guest, run twice in separate QEMU processes, executes exactly the same
/// number of instructions: this is what lets `qemu_agreement` compare our plugin with
/// QEMU's in separate runs (their outputs have the same format, so they cannot share a log).
#[test]
fn deterministic_guests_repeat_exactly() {
    for (guest, args) in [
        ("compute", &["40"][..]),
        ("blocks", &[][..]),
        ("syscalls", &[][..]),
    ] {
        let insn = || {
            let r = run_user(
                &format!("repeat-{guest}"),
                &[Plugin::new(ref_plugin("insn"), &[])],
                guest,
                args,
            );
            r.assert_success();
            parse_insn(&r.log).total
        };
        let (a, b) = (insn(), insn());
        assert!(a > 10_000, "{guest}: implausibly few instructions: {a}");
        assert_eq!(a, b, "{guest} is not deterministic under insn.c");
    }
}

/// insn.c (per-instruction callbacks) and bb.c (per-block inline counts) loaded together
/// agree on every vCPU, for a single- and a multi-threaded guest.
#[test]
fn insn_and_bb_agree_in_one_run() {
    for (guest, args) in [("compute", &["40"][..]), ("threads", &["3", "200000"][..])] {
        let r = run_user(
            &format!("insn-bb-{guest}"),
            &[
                Plugin::new(ref_plugin("insn"), &[]),
                Plugin::new(ref_plugin("bb"), &["inline=on"]),
            ],
            guest,
            args,
        );
        r.assert_success();
        let insn = parse_insn(&r.log);
        let bb = parse_bb(&r.log);
        assert_eq!(insn.total, bb.total_insns, "{}", r.describe());
        for (cpu, (_, insns)) in &bb.per_cpu {
            assert_eq!(
                insn.per_cpu.get(cpu),
                Some(insns),
                "vCPU {cpu}\n{}",
                r.describe()
            );
        }
        assert_eq!(insn.total, insn.per_cpu.values().sum::<u64>());
    }
}

/// syscall.c sees exactly the getppid/write/close totals sysheavy reports for itself.
#[test]
fn sysheavy_totals_match_syscall_c() {
    let r = run_user(
        "sysheavy-ref",
        &[Plugin::new(ref_plugin("syscall"), &[])],
        "sysheavy",
        &["3", "500"],
    );
    r.assert_success();
    let own = parse_sysheavy(&r.stdout);
    let seen = parse_syscalls(&r.log);
    for (nr, counts) in &own {
        assert_eq!(seen.get(nr), Some(counts), "syscall {nr}\n{}", r.describe());
    }
}

/// contrib hotblocks.c output parses, and its table is consistent with the header.
#[test]
fn hotblocks_c_output_parses() {
    let r = run_user(
        "hotblocks-ref",
        &[Plugin::new(contrib_plugin("hotblocks"), &[])],
        "blocks",
        &[],
    );
    r.assert_success();
    let hb = parse_hotblocks(&r.log);
    assert!(hb.entries >= 20, "{}", r.describe());
    assert_eq!(hb.rows.len(), 20, "{}", r.describe());
    assert!(hb.rows[0].ecount >= 200_000, "{}", r.describe());
}
