//! Our example plugins agree exactly with QEMU's reference plugins on deterministic,
//! single-threaded guests under qemu-x86_64 10.2 (plugin API 5) and 7.2 (plugin API 1),
//! each against the reference plugins built from that QEMU's own source. Every test
//! runs in both (modules `qemu_10_2` and `qemu_7_2`) except inline counting, which API 1
//! does not have.
//!
//! Where our output has the same format as the reference plugin's, the two run in
//! separate QEMU processes (they cannot share one log); `qemu_reference` checks that
//! these guests repeat exactly. Where the formats differ, both load into the same run.
//! No expected total is written down here: every number comes from QEMU's own plugins.

#[macro_use]
mod common;

use common::*;
use std::collections::BTreeMap;

const COMPUTE: (&str, &[&str]) = ("compute", &["40"]);
const BLOCKS: (&str, &[&str]) = ("blocks", &[]);
const SYSCALLS: (&str, &[&str]) = ("syscalls", &[]);

/// `ours` (a count per executed instruction) against bb.c's total in the same run (a
/// block's size added when the block starts). QEMU 10.2: equal. QEMU 7.2: its bb.c counts
/// 4 instructions more than its own insn.c (and ours, which equal insn.c exactly) on
/// these guests; the reason was not established, so only that small, non-negative
/// difference is accepted there, not any other.
fn assert_bb_agrees(q: UserQemu, ours: u64, bb: u64, run: &Run) {
    match q {
        UserQemu::V10_2 | UserQemu::Aarch64 | UserQemu::Riscv64 => {
            assert_eq!(ours, bb, "bb.c in the same run\n{}", run.describe())
        }
        UserQemu::V7_2 => assert!(
            bb >= ours && bb - ours <= 4,
            "bb.c {bb} vs ours {ours} in the same run\n{}",
            run.describe()
        ),
    }
}

fn icount_against_insn_c(q: UserQemu, label: &str, args: &[&str]) {
    for (guest, gargs) in [COMPUTE, BLOCKS] {
        let reference = run_user_on(
            q,
            &format!("{label}-{guest}-insn.c"),
            &[Plugin::new(q.ref_plugin("insn"), &[])],
            guest,
            gargs,
        );
        reference.assert_success();
        let expected = parse_insn(&reference.log);

        // bb.c prints in another format, so it can share the run as a second witness.
        let ours = run_user_on(
            q,
            &format!("{label}-{guest}"),
            &[
                Plugin::new(example(q.api(), "icount"), args),
                Plugin::new(q.ref_plugin("bb"), &[]),
            ],
            guest,
            gargs,
        );
        ours.assert_success();
        assert_eq!(
            ours.stdout, reference.stdout,
            "the guest's own output changed"
        );
        let got = parse_insn(&ours.log);
        let bb = parse_bb(&ours.log);
        eprintln!(
            "icount {args:?} on {guest}: ours {} insn.c {} bb.c {} ({:.2?} vs {:.2?})",
            got.total, expected.total, bb.total_insns, ours.elapsed, reference.elapsed
        );
        assert!(
            icount_mismatches(&ours.log).is_empty(),
            "{}",
            ours.describe()
        );
        assert_eq!(
            got,
            expected,
            "icount {args:?} disagrees with insn.c on {guest}\n{}",
            ours.describe()
        );
        assert_bb_agrees(q, got.total, bb.total_insns, &ours);
        assert_eq!(
            got.total,
            got.per_cpu.values().sum::<u64>(),
            "cpu lines sum to total"
        );
    }
}

fn icount_callback_matches_insn_c(q: UserQemu) {
    icount_against_insn_c(q, "icount-cb", &[]);
    icount_against_insn_c(q, "icount-cb-explicit", &["inline=off"]);
}

fn icount_inline_matches_insn_c(q: UserQemu) {
    icount_against_insn_c(q, "icount-inline", &["inline=on"]);
}

fn icount_check_matches_insn_c(q: UserQemu) {
    icount_against_insn_c(q, "icount-check", &["check=on"]);
}

fn mem_matches_mem_c(q: UserQemu) {
    let (guest, gargs) = COMPUTE;
    for track in ["rw", "r", "w"] {
        let reference = run_user_on(
            q,
            &format!("mem-{track}-mem.c"),
            &[Plugin::new(
                q.ref_plugin("mem"),
                &["callback=true", &format!("track={track}")],
            )],
            guest,
            gargs,
        );
        reference.assert_success();
        let expected = parse_mem(&reference.log);
        assert!(expected > 0, "{}", reference.describe());
        // Inline counters need API 2 (QEMU 9.0).
        let modes: &[&str] = if q == UserQemu::V7_2 {
            &["off"]
        } else {
            &["off", "on"]
        };
        for &inline in modes {
            let mut args = vec![format!("inline={inline}")];
            // Check the default (rw) both implicitly and explicitly.
            if track != "rw" || inline == "on" {
                args.push(format!("track={track}"));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ours = run_user_on(
                q,
                &format!("mem-{track}-{inline}"),
                &[Plugin::new(example(q.api(), "mem"), &args)],
                guest,
                gargs,
            );
            ours.assert_success();
            let got = parse_mem(&ours.log);
            eprintln!("mem {args:?}: ours {got} mem.c {expected}");
            assert_eq!(
                got,
                expected,
                "mem {args:?} disagrees with mem.c callback=true,track={track}\n{}",
                ours.describe()
            );
        }
    }
}

fn mem_read_and_write_add_up(q: UserQemu) {
    // Independent of mem.c: r + w == rw for our own plugin.
    let (guest, gargs) = COMPUTE;
    let count = |track: &str| {
        let r = run_user_on(
            q,
            &format!("mem-sum-{track}"),
            &[Plugin::new(
                example(q.api(), "mem"),
                &[&format!("track={track}")],
            )],
            guest,
            gargs,
        );
        r.assert_success();
        parse_mem(&r.log)
    };
    let (r, w, rw) = (count("r"), count("w"), count("rw"));
    assert!(r > 0 && w > 0);
    assert_eq!(r + w, rw);
}

fn syscalls_match_syscall_c(q: UserQemu) {
    let (guest, gargs) = SYSCALLS;
    let reference = run_user_on(
        q,
        "syscalls-syscall.c",
        &[Plugin::new(q.ref_plugin("syscall"), &[])],
        guest,
        gargs,
    );
    reference.assert_success();
    let expected = parse_syscalls(&reference.log);

    let ours = run_user_on(
        q,
        "syscalls",
        &[Plugin::new(example(q.api(), "syscalls"), &[])],
        guest,
        gargs,
    );
    ours.assert_success();
    let got = parse_syscalls(&ours.log);
    eprintln!("syscalls: ours {got:?}\n          syscall.c {expected:?}");
    assert_eq!(
        got,
        expected,
        "syscalls disagrees with syscall.c\n{}",
        ours.describe()
    );

    // The guest reports how many of its deliberate calls failed (close(-1), open and stat
    // of a missing file) and those calls' numbers on its architecture. Nothing else in a
    // static binary makes those calls fail.
    let field = |key: &str| -> &str {
        ours.stdout
            .split(key)
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("guest did not report {key}: {}", ours.stdout))
    };
    let failed: u64 = field("failed=").parse().expect("a count");
    let nrs: Vec<i64> = field("nrs=")
        .split(',')
        .map(|n| n.parse().expect("a syscall number"))
        .collect();
    let errors: u64 = nrs.iter().map(|n| got.get(n).map_or(0, |c| c.1)).sum();
    assert_eq!(
        errors, failed,
        "errors of close/open/stat vs the guest's own count"
    );
}

fn hotblocks_matches_contrib_hotblocks(q: UserQemu) {
    let (guest, gargs) = BLOCKS;
    let reference = run_user_on(
        q,
        "hotblocks-contrib",
        &[Plugin::new(q.contrib_plugin("hotblocks"), &[])],
        guest,
        gargs,
    );
    reference.assert_success();
    let expected = parse_hotblocks(&reference.log);

    let ours = run_user_on(
        q,
        "hotblocks",
        &[Plugin::new(example(q.api(), "hotblocks"), &[])],
        guest,
        gargs,
    );
    ours.assert_success();
    let got = parse_hotblocks(&ours.log);
    eprintln!(
        "hotblocks: ours {} entries, top {:?}; contrib {} entries, top {:?}",
        got.entries,
        got.rows.first(),
        expected.entries,
        expected.rows.first()
    );
    assert_eq!(got.entries, expected.entries, "{}", ours.describe());
    assert_eq!(got.rows.len(), expected.rows.len(), "{}", ours.describe());

    // Both plugins sort by ecount and cut at 20, and break ties arbitrarily. The ecount
    // column is therefore identical, and every row above the cut-off value appears in
    // both tables with the same numbers; rows tied at the cut-off may differ.
    let ecounts = |h: &HotBlocks| h.rows.iter().map(|r| r.ecount).collect::<Vec<_>>();
    assert_eq!(ecounts(&got), ecounts(&expected), "{}", ours.describe());
    let cut = expected.rows.last().map_or(0, |r| r.ecount);
    let above = |h: &HotBlocks| -> BTreeMap<(u64, u64), HotBlock> {
        h.rows
            .iter()
            .filter(|r| r.ecount > cut)
            .map(|r| ((r.pc, r.icount), *r))
            .collect()
    };
    assert_eq!(above(&got), above(&expected), "{}", ours.describe());
}

/// trace's summary and the files it wrote agree with bb.c and syscall.c in the same run.
/// trace records syscall *returns*, so exit/exit_group (which syscall.c counts as calls
/// but which never return) are left out of the comparison.
fn trace_counts_match_bb_c_and_syscall_c(q: UserQemu) {
    for (guest, gargs) in [COMPUTE, SYSCALLS] {
        let dir = run_dir(&format!("trace-out-{guest}-{q:?}"));
        let dir_arg = format!("dir={}", dir.display());
        // Output formats differ, so all three plugins see the very same execution.
        let r = run_user_on(
            q,
            &format!("trace-{guest}"),
            &[
                Plugin::new(example(q.api(), "trace"), &[&dir_arg]),
                Plugin::new(q.ref_plugin("bb"), &[]),
                Plugin::new(q.ref_plugin("syscall"), &[]),
            ],
            guest,
            gargs,
        );
        r.assert_success();
        let (summary, _, _) = assert_trace_matches_references(q.arch(), &r, &dir);
        assert_eq!(summary.files, 1, "one vCPU, one file\n{}", r.describe());
    }
}

/// The README's plugin (`examples/readme.rs`) counts what bb.c counts in the same run.
fn readme_plugin_matches_bb_c(q: UserQemu) {
    let (guest, gargs) = COMPUTE;
    let run = run_user_on(
        q,
        "readme-compute",
        &[
            Plugin::new(example(q.api(), "readme"), &[]),
            Plugin::new(q.ref_plugin("bb"), &[]),
        ],
        guest,
        gargs,
    );
    run.assert_success();
    let bb = parse_bb(&run.log);
    let ours: u64 = run
        .log
        .lines()
        .find_map(|l| l.strip_prefix("total insns: "))
        .unwrap_or_else(|| panic!("no `total insns:` line\n{}", run.describe()))
        .trim()
        .parse()
        .expect("a number");
    eprintln!("readme on {guest}: {ours}, bb.c {}", bb.total_insns);
    assert_bb_agrees(q, ours, bb.total_insns, &run);
}

/// Every agreement test, in a QEMU 10.2 linux-user of any guest architecture.
macro_rules! all_agreement_tests {
    ($module:ident, $q:expr) => {
        tests_on!(
            $module,
            $q,
            [
                icount_callback_matches_insn_c,
                icount_inline_matches_insn_c,
                icount_check_matches_insn_c,
                mem_matches_mem_c,
                mem_read_and_write_add_up,
                syscalls_match_syscall_c,
                hotblocks_matches_contrib_hotblocks,
                trace_counts_match_bb_c_and_syscall_c,
                readme_plugin_matches_bb_c,
            ]
        );
    };
}

all_agreement_tests!(qemu_10_2, UserQemu::V10_2);

// Left out on QEMU 7.2, each for a reason of QEMU 7.2's, not the crate's:
// - `icount inline=on` and `check=on`: plugin API 1 has no inline counters; they are
//   refused at install (tests/qemu_api1.rs checks the refusal).
// - `mem_read_and_write_add_up`: QEMU 7.2 itself counts r + w != rw (668,588 against
//   499,065 on `compute 40`), and its mem.c agrees with ours for each of r, w and rw
//   (`mem_matches_mem_c`).
// - `hotblocks_matches_contrib_hotblocks`: 7.2's hotblocks.c keys its table by
//   `pc ^ insns`, so distinct blocks whose keys collide share an entry (987 entries
//   against 995 distinct blocks on `blocks`); 10.2's keys by both.
tests_on!(
    qemu_7_2,
    UserQemu::V7_2,
    [
        icount_callback_matches_insn_c,
        mem_matches_mem_c,
        syscalls_match_syscall_c,
        trace_counts_match_bb_c_and_syscall_c,
        readme_plugin_matches_bb_c,
    ]
);

// The same agreement on the other guest architectures, in qemu-aarch64 and qemu-riscv64
// 10.2.2 (one build from the same source as qemu-x86_64, with its own reference plugins),
// on the same guest programs cross-compiled with Debian's compilers.
all_agreement_tests!(qemu_10_2_aarch64, UserQemu::Aarch64);

all_agreement_tests!(qemu_10_2_riscv64, UserQemu::Riscv64);
