//! Our example plugins agree exactly with QEMU's reference plugins on deterministic,
//! single-threaded guests under qemu-x86_64 (plugin API v5).
//!
//! Where our output has the same format as the reference plugin's, the two run in
//! separate QEMU processes (they cannot share one log); `qemu_reference` checks that
//! these guests repeat exactly. Where the formats differ, both load into the same run.
//! No expected total is written down here: every number comes from QEMU's own plugins.

mod common;

use common::*;
use std::collections::BTreeMap;

const COMPUTE: (&str, &[&str]) = ("compute", &["40"]);
const BLOCKS: (&str, &[&str]) = ("blocks", &[]);
const SYSCALLS: (&str, &[&str]) = ("syscalls", &[]);

fn icount_against_insn_c(label: &str, args: &[&str]) {
    for (guest, gargs) in [COMPUTE, BLOCKS] {
        let reference = run_user(
            &format!("{label}-{guest}-insn.c"),
            &[Plugin::new(ref_plugin("insn"), &[])],
            guest,
            gargs,
        );
        reference.assert_success();
        let expected = parse_insn(&reference.log);

        // bb.c prints in another format, so it can share the run as a second witness.
        let ours = run_user(
            &format!("{label}-{guest}"),
            &[
                Plugin::new(example(Api::V5, "icount"), args),
                Plugin::new(ref_plugin("bb"), &[]),
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
        assert_eq!(got.total, bb.total_insns, "bb.c in the same run");
        assert_eq!(
            got.total,
            got.per_cpu.values().sum::<u64>(),
            "cpu lines sum to total"
        );
    }
}

#[test]
fn icount_callback_matches_insn_c() {
    icount_against_insn_c("icount-cb", &[]);
    icount_against_insn_c("icount-cb-explicit", &["inline=off"]);
}

#[test]
fn icount_inline_matches_insn_c() {
    icount_against_insn_c("icount-inline", &["inline=on"]);
}

#[test]
fn icount_check_matches_insn_c() {
    icount_against_insn_c("icount-check", &["check=on"]);
}

#[test]
fn mem_matches_mem_c() {
    let (guest, gargs) = COMPUTE;
    for track in ["rw", "r", "w"] {
        let reference = run_user(
            &format!("mem-{track}-mem.c"),
            &[Plugin::new(
                ref_plugin("mem"),
                &["callback=true", &format!("track={track}")],
            )],
            guest,
            gargs,
        );
        reference.assert_success();
        let expected = parse_mem(&reference.log);
        assert!(expected > 0, "{}", reference.describe());
        for inline in ["off", "on"] {
            let mut args = vec![format!("inline={inline}")];
            // Check the default (rw) both implicitly and explicitly.
            if track != "rw" || inline == "on" {
                args.push(format!("track={track}"));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ours = run_user(
                &format!("mem-{track}-{inline}"),
                &[Plugin::new(example(Api::V5, "mem"), &args)],
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

#[test]
fn mem_read_and_write_add_up() {
    // Independent of mem.c: r + w == rw for our own plugin.
    let (guest, gargs) = COMPUTE;
    let count = |track: &str| {
        let r = run_user(
            &format!("mem-sum-{track}"),
            &[Plugin::new(
                example(Api::V5, "mem"),
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

#[test]
fn syscalls_match_syscall_c() {
    let (guest, gargs) = SYSCALLS;
    let reference = run_user(
        "syscalls-syscall.c",
        &[Plugin::new(ref_plugin("syscall"), &[])],
        guest,
        gargs,
    );
    reference.assert_success();
    let expected = parse_syscalls(&reference.log);

    let ours = run_user(
        "syscalls",
        &[Plugin::new(example(Api::V5, "syscalls"), &[])],
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

    // The guest reports how many of its deliberate calls failed: close(-1), open and stat
    // of a missing file (x86-64 numbers 3, 2 and 4). Nothing else in a static binary
    // makes those calls fail.
    let failed: u64 = ours
        .stdout
        .split("failed=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("guest did not report failures: {}", ours.stdout));
    let errors: u64 = [2, 3, 4]
        .iter()
        .map(|n| got.get(n).map_or(0, |c| c.1))
        .sum();
    assert_eq!(
        errors, failed,
        "errors of close/open/stat vs the guest's own count"
    );
}

#[test]
fn hotblocks_matches_contrib_hotblocks() {
    let (guest, gargs) = BLOCKS;
    let reference = run_user(
        "hotblocks-contrib",
        &[Plugin::new(contrib_plugin("hotblocks"), &[])],
        guest,
        gargs,
    );
    reference.assert_success();
    let expected = parse_hotblocks(&reference.log);

    let ours = run_user(
        "hotblocks",
        &[Plugin::new(example(Api::V5, "hotblocks"), &[])],
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
#[test]
fn trace_counts_match_bb_c_and_syscall_c() {
    for (guest, gargs) in [COMPUTE, SYSCALLS] {
        let dir = run_dir(&format!("trace-out-{guest}"));
        let dir_arg = format!("dir={}", dir.display());
        // Output formats differ, so all three plugins see the very same execution.
        let r = run_user(
            &format!("trace-{guest}"),
            &[
                Plugin::new(example(Api::V5, "trace"), &[&dir_arg]),
                Plugin::new(ref_plugin("bb"), &[]),
                Plugin::new(ref_plugin("syscall"), &[]),
            ],
            guest,
            gargs,
        );
        r.assert_success();
        let (summary, _, _) = assert_trace_matches_references(&r, &dir);
        assert_eq!(summary.files, 1, "one vCPU, one file\n{}", r.describe());
    }
}

/// The README's plugin (`examples/readme.rs`) counts what bb.c counts in the same run.
#[test]
fn readme_plugin_matches_bb_c() {
    let (guest, gargs) = COMPUTE;
    let run = run_user(
        "readme-compute",
        &[
            Plugin::new(example(Api::V5, "readme"), &[]),
            Plugin::new(ref_plugin("bb"), &[]),
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
    assert_eq!(ours, bb.total_insns, "{}", run.describe());
}
