//! QEMU's contrib plugins and their rewrites on this crate's runtime (examples of the same
//! names): each pair runs on the same guest in qemu-x86_64 10.2 (the C plugins are built
//! from the same QEMU source by `scripts/provision-qemu.sh`), and their outputs are
//! compared byte for byte, or field by field where the C output has no defined order.
//! Where a guest's counts depend on scheduling (vCPU indexes of threads in linux-user),
//! both plugins are loaded into the same run, so they see the same events.

#[macro_use]
mod common;
// The examples' C-printf helpers, whose unit tests run here (examples have no test
// harness of their own).
#[path = "../examples/support/c_format.rs"]
mod c_format;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The part of `log` from the `n`-th occurrence (0-based) of `header` to the next one or
/// the end.
fn section<'a>(log: &'a str, header: &str, n: usize) -> &'a str {
    let starts: Vec<usize> = log.match_indices(header).map(|(i, _)| i).collect();
    let start = *starts
        .get(n)
        .unwrap_or_else(|| panic!("{header:?} occurs {} times in:\n{log}", starts.len()));
    let end = starts.get(n + 1).copied().unwrap_or(log.len());
    &log[start..end]
}

/// The reports that the C plugin and the rewrite, loaded in that order, print at exit, each
/// from `header` on: QEMU runs atexit callbacks last-registered first (plugins/core.c
/// inserts each at the head of its list), so the rewrite's report comes first.
fn at_exit<'a>(log: &'a str, header: &str) -> (&'a str, &'a str) {
    (section(log, header, 1), section(log, header, 0))
}

/// Rows that two reports rank by a count, descending, where the C plugin leaves equal
/// counts in its hash table's order: the counts must come in the same order, and the rows
/// whose count is above the last one shown must be the same (as sets: among equal counts,
/// which rows make the cut is the hash table's choice).
fn assert_same_ranking<R: std::fmt::Debug>(ours: &[(u64, R)], c: &[(u64, R)], context: &str) {
    let counts = |v: &[(u64, R)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(counts(ours), counts(c), "counts in order\n{context}");
    let last = ours.last().map_or(0, |r| r.0);
    let above = |v: &[(u64, R)]| {
        let mut a: Vec<String> = v
            .iter()
            .filter(|r| r.0 > last)
            .map(|r| format!("{:?}", r.1))
            .collect();
        a.sort();
        a
    };
    assert_eq!(above(ours), above(c), "rows above the cutoff\n{context}");
}

/// `traps`: 4 guest threads each take 100 exceptions (`ud2`, skipped by a signal
/// handler). Both plugins in one run print the same note and the same table.
#[test]
fn traps_prints_what_traps_c_prints() {
    let r = run_user(
        "contrib-traps",
        &[
            Plugin::new(contrib_plugin("traps"), &[]),
            Plugin::new(example(Api::V5, "traps"), &[]),
        ],
        "traps",
        &["4", "100"],
    );
    r.assert_success();
    const NOTE: &str = "Note: interrupts are only reported in system emulation mode.";
    assert!(
        r.log.starts_with(&NOTE.repeat(2)),
        "both print the note at install\n{}",
        r.describe()
    );
    const HEADER: &str = "VCPU, interrupts, exceptions, hostcalls\n";
    let (c, ours) = at_exit(&r.log, HEADER);
    eprintln!("traps.c:\n{c}ours:\n{ours}");
    assert_eq!(ours, c, "{}", r.describe());
    // The table itself is right: 400 exceptions in all, as the guest took.
    let exceptions: u64 = ours
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(exceptions, 400, "{ours}");
}

/// A drcov file, read independently of either plugin: the header lines, the one module
/// (base, end, path) and the basic-block table that follows `BB Table: N bbs`.
#[derive(Debug, PartialEq)]
struct Drcov {
    base: u64,
    end: u64,
    path: String,
    /// (start, size, module id) of each covered block, in file order.
    blocks: Vec<(u32, u16, u16)>,
}

fn read_drcov(bytes: &[u8]) -> Drcov {
    let mut rest = bytes;
    let mut line = || -> String {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("a header line");
        let l = String::from_utf8(rest[..nl].to_vec()).expect("a text header line");
        rest = &rest[nl + 1..];
        l
    };
    assert_eq!(line(), "DRCOV VERSION: 2");
    assert_eq!(line(), "DRCOV FLAVOR: drcov-64");
    assert_eq!(line(), "Module Table: version 2, count 1");
    assert_eq!(line(), "Columns: id, base, end, entry, path");
    let module = line();
    let fields: Vec<&str> = module.splitn(5, ", ").collect();
    assert_eq!(fields[0], "0", "{module}");
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    let (base, end, path) = (hex(fields[1]), hex(fields[2]), fields[4].to_string());
    let table = line();
    let n: usize = table
        .strip_prefix("BB Table: ")
        .and_then(|t| t.strip_suffix(" bbs"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad BB Table line {table:?}"));
    assert_eq!(rest.len(), n * 8, "{n} entries of 8 bytes after the header");
    let blocks = rest
        .chunks_exact(8)
        .map(|e| {
            (
                u32::from_le_bytes(e[0..4].try_into().unwrap()),
                u16::from_le_bytes(e[4..6].try_into().unwrap()),
                u16::from_le_bytes(e[6..8].try_into().unwrap()),
            )
        })
        .collect();
    Drcov {
        base,
        end,
        path,
        blocks,
    }
}

/// `drcov`: both plugins in one run write their files; the files are identical, and an
/// independent reader finds a well-formed table of covered blocks inside the guest's
/// text. Single-threaded and 4-threaded guests.
#[test]
fn drcov_writes_what_drcov_c_writes() {
    for (guest, args) in [("compute", &["40"][..]), ("threads", &["4", "100000"][..])] {
        let dir = run_dir(&format!("contrib-drcov-{guest}"));
        let (c_file, our_file) = (dir.join("c.drcov"), dir.join("ours.drcov"));
        let r = run_user(
            &format!("contrib-drcov-{guest}"),
            &[
                Plugin::new(
                    contrib_plugin("drcov"),
                    &[&format!("filename={}", c_file.display())],
                ),
                Plugin::new(
                    example(Api::V5, "drcov"),
                    &[&format!("filename={}", our_file.display())],
                ),
            ],
            guest,
            args,
        );
        r.assert_success();
        let (c, ours) = (
            std::fs::read(&c_file).expect("drcov.c's file"),
            std::fs::read(&our_file).expect("our file"),
        );
        let parsed = read_drcov(&ours);
        eprintln!(
            "drcov on {guest}: {} covered blocks in {} bytes; module 0x{:x}-0x{:x} {}",
            parsed.blocks.len(),
            ours.len(),
            parsed.base,
            parsed.end,
            parsed.path
        );
        assert!(c == ours, "the two drcov files differ:\n{}", r.describe());
        assert_eq!(parsed, read_drcov(&c));
        assert!(
            parsed.path.ends_with(&format!("/{guest}")),
            "{}",
            parsed.path
        );
        assert!(parsed.blocks.len() > 100, "{parsed:?}");
        // A static guest's code all lies in its own text.
        for &(start, size, module) in &parsed.blocks {
            assert_eq!(module, 0);
            assert!(size > 0);
            let start = u64::from(start);
            assert!(
                start >= parsed.base && start < parsed.end,
                "block 0x{start:x} outside 0x{:x}-0x{:x}",
                parsed.base,
                parsed.end
            );
        }
    }
}

/// The rows of a hotpages report: (address, reads + writes, the whole row).
fn hotpages_rows(report: &str) -> Vec<(u64, u64, &str)> {
    report
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            assert_eq!(f.len(), 5, "{l}");
            let addr = u64::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap();
            let sum = f[2].parse::<u64>().unwrap() + f[4].parse::<u64>().unwrap();
            (addr, sum, l)
        })
        .collect()
}

/// `hotpages`: both plugins in one run. Sorted by address the order is total, so the
/// reports are equal byte for byte. Sorted by accesses (the default), hotpages.c leaves
/// pages with equal counts in its hash table's order, so the reports must have the same
/// counts in the same order and the same rows wherever a count is not tied with the last
/// one shown. Single- and 4-threaded guests.
#[test]
fn hotpages_prints_what_hotpages_c_prints() {
    const HEADER: &str = "Addr, RCPUs, Reads, WCPUs, Writes\n";
    for (guest, args) in [("compute", &["40"][..]), ("threads", &["4", "100000"][..])] {
        for sort in [&["sortby=address"][..], &[][..]] {
            let r = run_user(
                &format!("contrib-hotpages-{guest}"),
                &[
                    Plugin::new(contrib_plugin("hotpages"), sort),
                    Plugin::new(example(Api::V5, "hotpages"), sort),
                ],
                guest,
                args,
            );
            r.assert_success();
            let (c, ours) = at_exit(&r.log, HEADER);
            let (rc, ro) = (hotpages_rows(c), hotpages_rows(ours));
            eprintln!(
                "hotpages {sort:?} on {guest}: {} rows, first {:?}",
                ro.len(),
                ro.first()
            );
            assert!(ro.len() >= 10, "{ours}");
            if sort.is_empty() {
                let ranked = |rows: &[(u64, u64, &str)]| -> Vec<(u64, String)> {
                    rows.iter().map(|r| (r.1, r.2.to_string())).collect()
                };
                assert_same_ranking(&ranked(&ro), &ranked(&rc), &format!("{c}\n{ours}"));
            } else {
                assert_eq!(ours, c, "{}", r.describe());
            }
        }
    }
}

/// Splits a howvec report into its class lines and its per-opcode rows as (hits, row).
fn howvec_parts(report: &str) -> (&str, Vec<(u64, &str)>) {
    let (classes, rows) = report
        .split_once("Individual Instructions:\n")
        .unwrap_or((report, ""));
    let rows = rows
        .lines()
        .map(|l| {
            let hits = l
                .split("\t(")
                .nth(1)
                .and_then(|h| h.strip_suffix(" hits)"))
                .and_then(|h| h.parse().ok())
                .unwrap_or_else(|| panic!("bad howvec row {l:?}"));
            (hits, l)
        })
        .collect();
    (classes, rows)
}

/// `howvec`: both plugins in one run, default arguments and a `count=` / `verbose=`
/// variant (and `inline=on` on aarch64). The class lines are equal byte for byte. The per-opcode rows are sorted by
/// hits; howvec.c leaves equal counts in its hash table's order, so the rows must have the
/// same counts in the same order, and the same text wherever a count is above the last
/// one shown. On x86_64 and riscv64 every opcode is counted on its own; aarch64 has
/// howvec.c's class table.
fn howvec_prints_what_howvec_c_prints(q: UserQemu) {
    const HEADER: &str = "Instruction Classes:\n";
    let variants: &[&[&str]] = match q.arch() {
        Arch::Aarch64 => &[
            &[],
            &["count=ldsti", "count=!dprr", "verbose=on"],
            &["inline=on"],
        ],
        _ => &[&[], &["count=!unclas", "verbose=on"]],
    };
    for &args in variants {
        let r = run_user_on(
            q,
            "contrib-howvec",
            &[
                Plugin::new(q.contrib_plugin("howvec"), args),
                Plugin::new(example(q.api(), "howvec"), args),
            ],
            "compute",
            &["40"],
        );
        r.assert_success();
        let (c, ours) = at_exit(&r.log, HEADER);
        let ((c_classes, c_rows), (classes, rows)) = (howvec_parts(c), howvec_parts(ours));
        eprintln!(
            "howvec {args:?} on {:?}: {} class lines, {} opcode rows, first {:?}",
            q.arch(),
            classes.lines().count() - 1,
            rows.len(),
            rows.first()
        );
        assert_eq!(classes, c_classes, "{}", r.describe());
        let hits = |rows: &[(u64, &str)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
        assert_same_ranking(&rows, &c_rows, &format!("{c}\n{ours}"));
        // Something was counted (with the defaults): opcode rows where the table has no
        // classes, hits in classes where it has.
        if !args.iter().any(|a| a.starts_with("count=")) {
            let class_hits: u64 = classes
                .lines()
                .filter_map(|l| {
                    l.split("\t(")
                        .nth(1)?
                        .strip_suffix(" hits)")?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            assert!(
                class_hits + hits(&rows).iter().sum::<u64>() > 1000,
                "{ours}"
            );
        } else {
            assert!(classes.contains("\tnot counted\n"), "{ours}");
        }
    }
}

tests_on!(
    x86_64,
    UserQemu::V10_2,
    [howvec_prints_what_howvec_c_prints]
);
tests_on!(
    aarch64,
    UserQemu::Aarch64,
    [howvec_prints_what_howvec_c_prints]
);
tests_on!(
    riscv64,
    UserQemu::Riscv64,
    [howvec_prints_what_howvec_c_prints]
);

/// The execlog records of a log (lines starting `N, 0x`), in order.
fn execlog_records(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.split_once(", 0x")
                .is_some_and(|(cpu, _)| cpu.parse::<u32>().is_ok())
        })
        .collect()
}

/// `execlog`: both plugins in one run of a single-threaded guest, so each instruction's
/// line comes from execlog.c and then from the rewrite: the records must come in equal
/// pairs, byte for byte (including the last line each prints at exit, the rewrite's
/// first there). Without filters,
/// QEMU's `insn` plugin in the same run counts the instructions, and each plugin logs
/// exactly that many; with `afilter=` at the guest's `main` (address from the ELF
/// symbol table), one record each. Filters and register watching (`ifilter`, `reg`,
/// `rdisas`) take each target's own mnemonics and register names.
fn execlog_prints_what_execlog_c_prints(q: UserQemu) {
    let program = guest_for(q.arch(), "compute");
    let main = format!("afilter=0x{:x}", symbol_address(q.arch(), &program, "main"));
    let (ifilter, reg) = match q.arch() {
        Arch::X86_64 => ("ifilter=add", "reg=r?x"),
        Arch::Aarch64 => ("ifilter=add", "reg=x1?"),
        Arch::Riscv64 => ("ifilter=add", "reg=a?"),
    };
    let variants: [&[&str]; 4] = [&[], &[ifilter, reg], &[reg, "rdisas=on"], &[&main]];
    for args in variants {
        let mut plugins = vec![
            Plugin::new(q.contrib_plugin("execlog"), args),
            Plugin::new(example(q.api(), "execlog"), args),
        ];
        if args.is_empty() {
            plugins.push(Plugin::new(q.ref_plugin("insn"), &[]));
        }
        let r = run_user_on(q, "contrib-execlog", &plugins, "compute", &["0"]);
        r.assert_success();
        let records = execlog_records(&r.log);
        assert!(
            records.len().is_multiple_of(2),
            "{} records, not pairs\n{}",
            records.len(),
            r.describe()
        );
        for (i, pair) in records.chunks(2).enumerate() {
            assert_eq!(
                pair[0],
                pair[1],
                "record {i} differs (execlog.c first)\n{}",
                r.describe()
            );
        }
        let logged = records.len() / 2;
        let with_regs = records.iter().filter(|l| l.contains(" -> 0x")).count() / 2;
        eprintln!(
            "execlog {args:?} on {:?}: {logged} records each, {with_regs} with register changes; first {:?}",
            q.arch(),
            records.first()
        );
        if args.is_empty() {
            let insns = parse_insn(&r.log).total;
            assert_eq!(
                logged as u64,
                insns,
                "every instruction once\n{}",
                r.describe()
            );
        } else if args == [main.as_str()] {
            assert_eq!(logged, 1, "{records:?}");
        } else {
            assert!(logged > 100 && with_regs > 10, "{}", r.describe());
        }
    }
}

tests_on!(
    x86_64_execlog,
    UserQemu::V10_2,
    [execlog_prints_what_execlog_c_prints]
);
tests_on!(
    aarch64_execlog,
    UserQemu::Aarch64,
    [execlog_prints_what_execlog_c_prints]
);
tests_on!(
    riscv64_execlog,
    UserQemu::Riscv64,
    [execlog_prints_what_execlog_c_prints]
);

/// One node of a cflow report: its `addr:` line, early exits, branches and destination
/// lines (sorted when `sorted`).
#[derive(Debug, PartialEq)]
struct CflowNode {
    header: String,
    early: u64,
    branches: u64,
    dests: Vec<String>,
}

/// The node count line and the nodes of a cflow report.
fn cflow_nodes(report: &str, sorted: bool) -> (&str, Vec<CflowNode>) {
    let mut lines = report.lines();
    let count = lines.next().expect("a count line");
    let mut nodes: Vec<CflowNode> = Vec::new();
    let number =
        |l: &str, prefix: &str| -> u64 { l.trim().strip_prefix(prefix).unwrap().parse().unwrap() };
    for l in lines {
        if l.starts_with("  addr: ") {
            nodes.push(CflowNode {
                header: l.to_string(),
                early: 0,
                branches: 0,
                dests: Vec::new(),
            });
            continue;
        }
        let node = nodes
            .last_mut()
            .unwrap_or_else(|| panic!("{l:?} before a node"));
        if l.starts_with("    early exits ") {
            node.early = number(l, "early exits ");
        } else if l.starts_with("    branches ") {
            node.branches = number(l, "branches ");
        } else if l.starts_with("      to 0x") {
            node.dests.push(l.to_string());
        } else {
            panic!("unexpected cflow line {l:?}");
        }
    }
    if sorted {
        for n in &mut nodes {
            n.dests.sort();
        }
    }
    (count, nodes)
}

/// `cflow`: both plugins in one run, for each `sort=`. The node count is equal; the nodes
/// are in the same order of their sort key, and equal wherever the key is above the last
/// one shown (cflow.c leaves equal keys in its hash table's order). Single-threaded, the
/// destinations are in the same order too; with 4 guest threads, in any order (cflow.c
/// lists them as any vCPU first saw them, the rewrite vCPU by vCPU). The early-exit lines
/// on stderr come in equal pairs when single-threaded. (These linux-user guests take no
/// fault in the middle of a block, so both plugins report no early exits: a trap ends its
/// block, and what follows counts as a branch.)
fn cflow_prints_what_cflow_c_prints(q: UserQemu) {
    const HEADER: &str = "collected ";
    let runs: [(&str, &[&str], &[&str]); 5] = [
        ("compute", &["4"], &[]),
        ("compute", &["4"], &["sort=early"]),
        ("compute", &["4"], &["sort=exceptions"]),
        ("threads", &["4", "20000"], &[]),
        ("threads", &["4", "20000"], &["sort=exceptions"]),
    ];
    for (guest, args, sort) in runs {
        let threaded = guest == "threads";
        {
            let r = run_user_on(
                q,
                "contrib-cflow",
                &[
                    Plugin::new(q.contrib_plugin("cflow"), sort),
                    Plugin::new(example(q.api(), "cflow"), sort),
                ],
                guest,
                args,
            );
            r.assert_success();
            let (c, ours) = at_exit(&r.log, HEADER);
            let ((c_count, c_nodes), (count, nodes)) =
                (cflow_nodes(c, threaded), cflow_nodes(ours, threaded));
            let key = |n: &CflowNode| match sort.first().copied() {
                None => n.branches,
                Some("sort=early") => n.early,
                _ => n.dests.len() as u64,
            };
            eprintln!(
                "cflow {sort:?} on {:?} {guest}: {count:?}, {} nodes shown, first {:?}",
                q.arch(),
                nodes.len(),
                nodes.first()
            );
            assert_eq!(count, c_count, "{}", r.describe());
            assert_eq!(nodes.len(), 10, "{ours}");
            let (ours_ranked, c_ranked): (Vec<_>, Vec<_>) = (
                nodes.iter().map(|n| (key(n), n)).collect(),
                c_nodes.iter().map(|n| (key(n), n)).collect(),
            );
            assert_same_ranking(&ours_ranked, &c_ranked, &format!("{c}\n{ours}"));
            if sort.is_empty() {
                assert!(nodes[0].branches > 1000, "{ours}");
            }
            if !threaded {
                let early: Vec<&str> = r
                    .stderr
                    .lines()
                    .filter(|l| l.starts_with("vcpu_tb_branched_exec: "))
                    .collect();
                assert!(early.len().is_multiple_of(2), "{early:?}");
                for pair in early.chunks(2) {
                    assert_eq!(pair[0], pair[1], "{early:?}");
                }
            }
        }
    }
}

tests_on!(
    x86_64_cflow,
    UserQemu::V10_2,
    [cflow_prints_what_cflow_c_prints]
);
tests_on!(
    aarch64_cflow,
    UserQemu::Aarch64,
    [cflow_prints_what_cflow_c_prints]
);
tests_on!(
    riscv64_cflow,
    UserQemu::Riscv64,
    [cflow_prints_what_cflow_c_prints]
);

/// `stoptrigger`: each plugin ends the guest (one per run, since the first to trigger
/// ends QEMU), with QEMU's `insn` plugin in the same run. Both runs end with the exit
/// status asked for and the same log byte for byte: the trigger's line, then insn.c's
/// counts, printed by QEMU's atexit after the `exit()`. With `icount=N`, insn.c counts
/// N + 1 instructions (the one that triggers included); with `addr=` at the guest's
/// `main` (from the ELF symbol table), the line names that address.
fn stoptrigger_stops_where_stoptrigger_c_stops(q: UserQemu) {
    let program = guest_for(q.arch(), "compute");
    let main = symbol_address(q.arch(), &program, "main");
    let at_main = format!("addr=0x{main:x}:3");
    let both = format!("addr=0x{main:x}:5");
    let cases: [(&[&str], i32); 4] = [
        (&["icount=100000:7"], 7),
        (&[&at_main], 3),
        (&["icount=0x186a0"], 0),
        // `main` comes long before the 100,000th instruction.
        (&["icount=100000:7", &both], 5),
    ];
    for (args, code) in cases {
        let runs: Vec<Run> = [
            q.contrib_plugin("stoptrigger"),
            example(q.api(), "stoptrigger"),
        ]
        .into_iter()
        .map(|p| {
            run_user_on(
                q,
                "contrib-stoptrigger",
                &[Plugin::new(p, args), Plugin::new(q.ref_plugin("insn"), &[])],
                "compute",
                &["4"],
            )
        })
        .collect();
        let (c, ours) = (&runs[0], &runs[1]);
        eprintln!("stoptrigger {args:?} on {:?}: {:?}", q.arch(), ours.log);
        assert_eq!(c.status.code(), Some(code), "{}", c.describe());
        assert_eq!(ours.status.code(), Some(code), "{}", ours.describe());
        assert_eq!(ours.log, c.log, "{}", ours.describe());
        let total = parse_insn(&ours.log).total;
        if code == 5 || code == 3 {
            assert!(
                ours.log
                    .starts_with(&format!("0x{main:x} reached, exiting\n")),
                "{}",
                ours.log
            );
        } else {
            assert!(ours.log.starts_with("icount reached at 0x"), "{}", ours.log);
            assert_eq!(total, 100_001, "{}", ours.log);
        }
    }
}

tests_on!(
    x86_64_stoptrigger,
    UserQemu::V10_2,
    [stoptrigger_stops_where_stoptrigger_c_stops]
);
tests_on!(
    aarch64_stoptrigger,
    UserQemu::Aarch64,
    [stoptrigger_stops_where_stoptrigger_c_stops]
);
tests_on!(
    riscv64_stoptrigger,
    UserQemu::Riscv64,
    [stoptrigger_stops_where_stoptrigger_c_stops]
);

/// A cache report split into its stats table and its lists of (misses, row).
fn cache_parts(report: &str) -> (&str, Vec<Vec<(u64, &str)>>) {
    let (stats, lists) = report
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("no stats table in {report:?}"));
    let lists = lists
        .split("\n\n")
        .map(|list| {
            list.lines()
                .skip(1)
                .map(|l| {
                    let misses = l
                        .split(", ")
                        .nth(1)
                        .and_then(|m| m.parse().ok())
                        .unwrap_or_else(|| panic!("bad cache row {l:?}"));
                    (misses, l)
                })
                .collect()
        })
        .collect();
    (stats, lists)
}

/// `cache`: both plugins in one run. The per-core table (accesses, misses, rates) is
/// equal byte for byte. Each list of instructions by misses has the same counts in the
/// same order, and the same rows wherever the count is above the last one shown
/// (cache.c leaves ties in its hash table's order). Variants: the defaults, FIFO with an
/// L2, a small 4-way L1 with a small L2, and 4 guest threads with a core per vCPU
/// (`cores=8`). With threads sharing a core the order in which they reach it is the
/// scheduler's (and the rewrite feeds it runs of 64 accesses per thread): see
/// `cache_with_threads_on_one_core_counts_what_cache_c_counts`.
fn cache_prints_what_cache_c_prints(q: UserQemu) {
    const HEADER: &str = "core #, data accesses";
    let runs: [(&str, &[&str], &[&str]); 4] = [
        ("compute", &["4"], &["limit=12"]),
        ("compute", &["4"], &["evict=fifo", "l2=on"]),
        (
            "compute",
            &["4"],
            &[
                "dcachesize=4096",
                "dassoc=4",
                "icachesize=2048",
                "l2cachesize=65536",
                "l2assoc=4",
            ],
        ),
        ("threads", &["4", "20000"], &["cores=8"]),
    ];
    for (guest, guest_args, args) in runs {
        let r = run_user_on(
            q,
            "contrib-cache",
            &[
                Plugin::new(q.contrib_plugin("cache"), args),
                Plugin::new(example(q.api(), "cache"), args),
            ],
            guest,
            guest_args,
        );
        r.assert_success();
        let (c, ours) = at_exit(&r.log, HEADER);
        let ((c_stats, c_lists), (stats, lists)) = (cache_parts(c), cache_parts(ours));
        eprintln!("cache {args:?} on {:?} {guest}:\n{stats}", q.arch());
        assert_eq!(stats, c_stats, "{}", r.describe());
        assert_eq!(lists.len(), c_lists.len());
        for (list, c_list) in lists.iter().zip(&c_lists) {
            assert_same_ranking(list, c_list, &format!("{c}\n{ours}"));
        }
        // The table counts something: some core's accesses, and some misses.
        let busiest: Vec<u64> = stats
            .lines()
            .skip(1)
            .map(|row| {
                row.split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect::<Vec<u64>>()
            })
            .max_by_key(|f| f[0])
            .unwrap();
        assert!(busiest[0] > 10_000 && busiest[1] > 0, "{stats}");
        if guest == "threads" {
            assert!(stats.contains("\nsum "), "{stats}");
        }
    }
}

/// `cache` with 4 guest threads on user mode's one simulated core, both plugins in one
/// run, so that they see the same accesses: the core's access counts (data and fetch,
/// with and without L2) are cache.c's, so no queued access is lost at a thread's exit or
/// QEMU's; the misses come from another interleaving of the threads, so they are only
/// checked to be there. With `batch=1` as well (one access at a time, as cache.c).
fn cache_with_threads_on_one_core_counts_what_cache_c_counts(q: UserQemu) {
    const HEADER: &str = "core #, data accesses";
    let runs: [&[&str]; 3] = [&[], &["l2=on"], &["batch=1"]];
    for args in runs {
        let c_args: Vec<&str> = args.iter().copied().filter(|a| *a != "batch=1").collect();
        let r = run_user_on(
            q,
            "contrib-cache-shared",
            &[
                Plugin::new(q.contrib_plugin("cache"), &c_args),
                Plugin::new(example(q.api(), "cache"), args),
            ],
            "threads",
            &["4", "20000"],
        );
        r.assert_success();
        let (c, ours) = at_exit(&r.log, HEADER);
        let row = |report: &str| -> Vec<u64> {
            let (stats, _) = cache_parts(report);
            let lines: Vec<&str> = stats.lines().collect();
            assert_eq!(lines.len(), 2, "one core: {stats}");
            lines[1]
                .split_whitespace()
                .filter(|f| !f.ends_with('%'))
                .map(|f| {
                    f.parse()
                        .unwrap_or_else(|_| panic!("bad field {f:?} in {stats}"))
                })
                .collect()
        };
        let (c_row, row) = (row(c), row(ours));
        eprintln!("cache {args:?}, 4 threads on one core: C {c_row:?}, Rust {row:?}");
        // core, data accesses, data misses, insn accesses, insn misses[, l2 ...]
        assert_eq!(row.len(), c_row.len(), "{c}\n{ours}");
        assert_eq!((row[1], row[3]), (c_row[1], c_row[3]), "{}", r.describe());
        assert!(row[1] > 100_000 && row[2] > 0 && row[4] > 0, "{ours}");
        if args.contains(&"l2=on") {
            assert_eq!(row[5], row[2] + row[4], "L2 sees every L1 miss: {ours}");
        }
    }
}

tests_on!(
    x86_64_cache,
    UserQemu::V10_2,
    [
        cache_prints_what_cache_c_prints,
        cache_with_threads_on_one_core_counts_what_cache_c_counts
    ]
);
tests_on!(
    aarch64_cache,
    UserQemu::Aarch64,
    [cache_prints_what_cache_c_prints]
);
tests_on!(
    riscv64_cache,
    UserQemu::Riscv64,
    [cache_prints_what_cache_c_prints]
);

/// A bbv file: per line, its `:block:count` entries as a sorted list (bbv.c writes them
/// in its hash table's order, which SimPoint does not care about).
fn read_bbv(path: &std::path::Path) -> Vec<Vec<(u64, u64)>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let body = line
                .strip_prefix('T')
                .unwrap_or_else(|| panic!("{line:?} does not start with T"));
            let mut v: Vec<(u64, u64)> = body
                .split_whitespace()
                .map(|e| {
                    let mut f = e
                        .strip_prefix(':')
                        .unwrap_or_else(|| panic!("entry {e:?} of {line:?}"))
                        .split(':');
                    let block = f.next().unwrap().parse().unwrap();
                    let n = f.next().unwrap().parse().unwrap();
                    assert!(f.next().is_none(), "entry {e:?}");
                    (block, n)
                })
                .collect();
            v.sort();
            v
        })
        .collect()
}

/// `bbv`: both plugins in one run, each writing its per-vCPU files (SimPoint's format:
/// `T` then `:block:count ` per block). The same files, the same intervals, and in each
/// interval the same blocks with the same counts (bbv.c writes them in its hash table's
/// order, so each line is compared as a set). The k-th line comes after at least k
/// intervals of instructions. Single-threaded, and 4 threads held at a barrier until all
/// have started, so no vCPU index is reused (on reuse, bbv.c's file is rewritten over
/// itself; see examples/bbv.rs); the threaded run again with the rewrite counting
/// nearly every block by callback rather than inline (`inline_blocks=4`).
fn bbv_writes_what_bbv_c_writes(q: UserQemu) {
    const INTERVAL: u64 = 100_000;
    // The rewrite counts its first 32,767 blocks inline and any later ones by callback;
    // `inline_blocks=4` sends nearly every block down the second way.
    let runs: [(&str, &[&str], &[&str]); 3] = [
        ("compute", &["40"], &[]),
        ("threads", &["4", "300000", "together"], &[]),
        (
            "threads",
            &["4", "300000", "together"],
            &["inline_blocks=4"],
        ),
    ];
    for (guest, args, extra) in runs {
        let dir = run_dir(&format!("contrib-bbv-{guest}"));
        let prefix = |who: &str| dir.join(who).display().to_string();
        let interval = format!("interval={INTERVAL}");
        let ours_out = format!("outfile={}", prefix("ours"));
        let mut ours_args = vec![ours_out.as_str(), interval.as_str()];
        ours_args.extend(extra);
        let r = run_user_on(
            q,
            &format!("contrib-bbv-{guest}"),
            &[
                Plugin::new(
                    q.contrib_plugin("bbv"),
                    &[&format!("outfile={}", prefix("c")), &interval],
                ),
                Plugin::new(example(q.api(), "bbv"), &ours_args),
            ],
            guest,
            args,
        );
        r.assert_success();
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let c_files: Vec<&String> = files.iter().filter(|f| f.starts_with("c.")).collect();
        let our_files: Vec<&String> = files.iter().filter(|f| f.starts_with("ours.")).collect();
        assert_eq!(
            c_files.iter().map(|f| &f[2..]).collect::<Vec<_>>(),
            our_files.iter().map(|f| &f[5..]).collect::<Vec<_>>(),
            "one file per vCPU"
        );
        let threads = if guest == "threads" { 5 } else { 1 };
        assert_eq!(
            our_files.len(),
            threads,
            "one file per guest thread: a vCPU index was reused, which this test avoids"
        );
        let mut lines = 0;
        for (c, ours) in c_files.iter().zip(&our_files) {
            let (c, ours) = (read_bbv(&dir.join(c)), read_bbv(&dir.join(ours)));
            lines += ours.len();
            assert_eq!(ours, c, "{}", r.describe());
            // The k-th line comes once the vCPU has run k intervals (a line's own sum
            // can be less: the overshoot past an interval counts towards the next).
            let mut cumulative = 0;
            for (k, line) in ours.iter().enumerate() {
                cumulative += line.iter().map(|e| e.1).sum::<u64>();
                assert!(
                    cumulative >= (k as u64 + 1) * INTERVAL,
                    "line {k}: {line:?}"
                );
            }
        }
        eprintln!(
            "bbv {extra:?} on {:?} {guest}: {} files, {lines} intervals",
            q.arch(),
            our_files.len()
        );
        assert!(lines >= 10, "a 100,000-instruction interval gives lines");
    }
}

tests_on!(x86_64_bbv, UserQemu::V10_2, [bbv_writes_what_bbv_c_writes]);
tests_on!(
    aarch64_bbv,
    UserQemu::Aarch64,
    [bbv_writes_what_bbv_c_writes]
);
tests_on!(
    riscv64_bbv,
    UserQemu::Riscv64,
    [bbv_writes_what_bbv_c_writes]
);

/// The blocks of a hwprofile report in `source=`/`pattern=` form (`NAME @ 0xBASE`, then
/// its sorted `  pc:`/`  off:` lines), in report order.
fn hwprofile_blocks(report: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in report.lines() {
        if line.starts_with("  ") {
            let block = blocks
                .last_mut()
                .unwrap_or_else(|| panic!("{line:?} before a device"));
            block.push_str(line);
            block.push('\n');
        } else {
            blocks.push(format!("{line}\n"));
        }
    }
    blocks
}

/// `hwprofile` in system mode: qemu-system-x86_64 10.0 (plugin API 4, MTTCG) boots the
/// Linux guest with QEMU's C plugin (built again for API 4) and the rewrite (built for
/// API 4) in the same run, so both see the same accesses.
/// - hwprofile, default: the same devices with the same masks and counts, in the same
///   order of counts (hwprofile.c leaves ties in its hash table's order), and equal rows
///   wherever a count is above the last one; `source=on`: the same device blocks, each
///   with the same per-PC lines. The address column is the first access's (virtual
///   address minus offset into the device).
/// - One vCPU. With more, QEMU 10.0 aborts early in most of these boots inside
///   `qemu_plugin_get_hwaddr` (`tlb_plugin_lookup` -> `iotlb_to_section: Assertion
///   'section_index < d->map.sections_nb'`; a core dump shows it called from the second
///   plugin's memory callback): 5 of 6 boots at `-smp 4` and 2 of 4 at `-smp 2` here, 3 of
///   3 in CI; 0 of 4 at `-smp 1`. Round-robin TCG (`thread=single`) is no way out: QEMU 10.0
///   crashed there in generated code after the memory callbacks (SIGSEGV), 1 of 5 boots.
///   So the rewrite's masks of several vCPUs, and its choice of base when vCPUs reach a
///   device through different mappings, are not compared with hwprofile.c here.
#[test]
fn hwprofile_agrees_with_hwprofile_c_in_system_mode() {
    for args in [&[][..], &["source=on"]] {
        let r = run_system_with(
            "contrib-hwprofile",
            &[
                Plugin::new(contrib_plugin_v4("hwprofile"), args),
                Plugin::new(example(Api::V4, "hwprofile"), args),
            ],
            &SystemExtras {
                smp: Some(1),
                ..SystemExtras::default()
            },
        );
        r.assert_success();
        if args.is_empty() {
            const HEADER: &str = "Device, Address, RCPUs, Reads,  WCPUs, Writes\n";
            let (c, ours) = at_exit(&r.log, HEADER);
            let rows = |report: &str| -> Vec<(u64, String)> {
                report
                    .lines()
                    .skip(1)
                    .map(|l| {
                        let f: Vec<&str> = l.split(", ").collect();
                        assert_eq!(f.len(), 6, "{l}");
                        let n = f[3].parse::<u64>().unwrap() + f[5].parse::<u64>().unwrap();
                        (n, l.to_string())
                    })
                    .collect()
            };
            let (rc, ro) = (rows(c), rows(ours));
            eprintln!("hwprofile in system mode:\n{ours}");
            assert!(ro.len() >= 2, "at least two devices\n{}", r.describe());
            assert_same_ranking(&ro, &rc, &format!("{c}\n{ours}"));
            assert!(ro[0].0 > 100, "{ours}");
        } else {
            let blocks = hwprofile_blocks(&r.log);
            assert!(
                blocks.len() >= 4 && blocks.len().is_multiple_of(2),
                "{}",
                r.describe()
            );
            let (ours, c) = blocks.split_at(blocks.len() / 2);
            let sorted = |b: &[String]| {
                let mut v = b.to_vec();
                v.sort();
                v
            };
            eprintln!("hwprofile source=on in system mode: {} devices", ours.len());
            assert_eq!(sorted(ours), sorted(c), "{}", r.describe());
            assert!(ours.iter().all(|b| b.contains("\n  pc:")), "{ours:?}");
        }
    }
}

/// The guest's `ipsprobe` line: its clock (`/proc/uptime`) before and after a shell loop
/// on CPU 0.
fn ipsprobe(r: &Run) -> (f64, f64) {
    let line = r
        .stdout
        .lines()
        .find_map(|l| l.split("guest: ipsprobe uptime ").nth(1))
        .unwrap_or_else(|| panic!("no ipsprobe line\n{}", r.describe()));
    let t: Vec<f64> = line
        .split_whitespace()
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{line:?}")))
        .collect();
    assert_eq!(t.len(), 2, "{line:?}");
    (t[0], t[1])
}

/// `ips` in system mode: qemu-system-x86_64 10.0 (plugin API 4) boots the Linux guest on
/// one vCPU three times: with no plugin, with QEMU's C plugin (built for API 4), and with
/// the rewrite, both at `ips=100m,ipq=1000000`. ips.c prints nothing; what it changes is
/// how fast the guest runs by its own clock, so the guest times a shell loop by
/// `/proc/uptime` and prints the readings before and after (`ipsprobe` on the kernel
/// command line). Compared: the clock at the loop's start (the boot, about 1.2e9
/// instructions), and the loop's length, each within 15% of the C plugin's. The free boot
/// shows that the check can fail: its loop must be at least twice as fast as under ips.c.
/// Also: the rewrite refuses to install beside ips.c (QEMU gives time control to one
/// plugin only; ips.c aborts QEMU there), and in linux-user (no time control at all).
#[test]
fn ips_slows_the_guest_as_ips_c_does() {
    const ARGS: &[&str] = &["ips=100m", "ipq=1000000"];
    let boot = |label: &str, plugins: &[Plugin]| {
        let r = run_system_with(
            label,
            plugins,
            &SystemExtras {
                append: &["ipsprobe"],
                smp: Some(1),
                ..SystemExtras::default()
            },
        );
        r.assert_success();
        let t = ipsprobe(&r);
        eprintln!("{label}: uptime {t:?} ({:.1?})", r.elapsed);
        t
    };
    let free = boot("contrib-ips-free", &[]);
    let c = boot(
        "contrib-ips-c",
        &[Plugin::new(contrib_plugin_v4("ips"), ARGS)],
    );
    let ours = boot("contrib-ips", &[Plugin::new(example(Api::V4, "ips"), ARGS)]);
    let (lf, lc, lo) = (free.1 - free.0, c.1 - c.0, ours.1 - ours.0);
    assert!(
        lc >= 2.0 * lf,
        "under ips.c the loop should take at least twice as long as with no plugin, to tell \
         them apart: {lc:.2} s against {lf:.2} s"
    );
    let near = |a: f64, b: f64| (a / b - 1.0).abs() <= 0.15;
    assert!(
        near(ours.0, c.0),
        "boot: guest clock {:.2} s (rewrite) against {:.2} s (ips.c)",
        ours.0,
        c.0
    );
    assert!(
        near(lo, lc),
        "loop: {lo:.2} s (rewrite) against {lc:.2} s (ips.c)"
    );

    let r = run_system_with(
        "contrib-ips-twice",
        &[
            Plugin::new(contrib_plugin_v4("ips"), ARGS),
            Plugin::new(example(Api::V4, "ips"), ARGS),
        ],
        &SystemExtras {
            smp: Some(1),
            ..SystemExtras::default()
        },
    );
    let text = r.assert_refused_at_install("guest: 1 cpus");
    assert!(text.contains("no control of time"), "{}", r.describe());

    let r = run_user(
        "contrib-ips-user",
        &[Plugin::new(example(Api::V5, "ips"), ARGS)],
        "compute",
        &["1"],
    );
    let text = r.assert_refused_at_install("compute:");
    assert!(text.contains("no control of time"), "{}", r.describe());
}

/// Runs two qemu-x86_64 10.2 instances in lockstep: `first` (which creates the socket and
/// waits for the other at install) and, once its socket listens (`/proc/net/unix`),
/// `second`, each on the `compute` guest with its own argument. Returns both runs.
fn lockstep_pair(label: &str, first: (&Path, &str), second: (&Path, &str)) -> (Run, Run) {
    static PAIRS: AtomicUsize = AtomicUsize::new(0);
    let sock = std::env::temp_dir().join(format!(
        "qemu-plugin-lockstep-{}-{}.sock",
        std::process::id(),
        PAIRS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&sock);
    let arg = format!("sockpath={}", sock.display());
    let start = |(plugin, guest_arg): (&Path, &str), side: &str| {
        let (label, plugin, arg) = (
            format!("{label}-{side}"),
            Plugin::new(plugin.to_path_buf(), &[&arg]),
            guest_arg.to_string(),
        );
        std::thread::spawn(move || run_user(&label, &[plugin], "compute", &[&arg]))
    };
    let a = start(first, "a");
    let listening = |path: &Path| {
        let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        let path = path.to_string_lossy();
        // Flags 00010000: __SO_ACCEPTCON, a socket that listen() was called on.
        table
            .lines()
            .any(|l| l.ends_with(&*path) && l.split_whitespace().nth(3) == Some("00010000"))
    };
    let t0 = Instant::now();
    while !listening(&sock) {
        assert!(
            !a.is_finished(),
            "the first instance ended before listening on {}",
            sock.display()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no socket listening at {} after 120 s",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = start(second, "b").join().expect("second instance");
    let a = a.join().expect("first instance");
    assert!(
        !sock.exists(),
        "the socket file is left behind: {}",
        sock.display()
    );
    (a, b)
}

/// `lockstep`: two qemu-x86_64 10.2 instances run the deterministic `compute` guest in
/// lockstep, with QEMU's C plugin on both sides, with the rewrite on both, and with one
/// of each (the wire format is the C plugin's).
/// - Same guest (`compute 3` twice): every side's output (socket line, `No divergence`,
///   executed blocks and instructions) is byte for byte the C pair's, side by side; the
///   instruction count is also checked against a third count of the same program, the
///   reference `insn` plugin's, to within the blocks' assumed-complete rounding (`~`).
/// - Different guests (`compute 3` against `compute 4`): the divergence report (the
///   `@ ...` lines, the last blocks, `giving up`) is byte for byte the C pair's, and both
///   guests still finish.
#[test]
fn lockstep_agrees_with_lockstep_c() {
    let (c, rs) = (contrib_plugin("lockstep"), example(Api::V5, "lockstep"));
    let logs = |(a, b): (Run, Run)| {
        a.assert_success();
        b.assert_success();
        (a.log, b.log)
    };
    let same_c = logs(lockstep_pair("contrib-lockstep-c", (&c, "3"), (&c, "3")));
    let same_rs = logs(lockstep_pair("contrib-lockstep", (&rs, "3"), (&rs, "3")));
    let mixed = logs(lockstep_pair(
        "contrib-lockstep-mixed",
        (&c, "3"),
        (&rs, "3"),
    ));
    eprintln!("lockstep, same guest:\n{}{}", same_rs.0, same_rs.1);
    assert!(
        same_c
            .0
            .starts_with("setup_socket::ready\nNo divergence :-)\n"),
        "{same_c:?}"
    );
    assert!(
        same_c
            .1
            .starts_with("connect_socket::ready\nNo divergence :-)\n"),
        "{same_c:?}"
    );
    assert_eq!(same_rs, same_c);
    assert_eq!(mixed, same_c);

    // A third count: the reference insn plugin on the same guest and argument.
    let r = run_user(
        "contrib-lockstep-insn",
        &[Plugin::new(ref_plugin("insn"), &[])],
        "compute",
        &["3"],
    );
    r.assert_success();
    let counted = parse_insn(&r.log).total;
    let approx: u64 = same_rs
        .0
        .lines()
        .find_map(|l| {
            l.strip_prefix("Executed ~")?
                .strip_suffix(" instructions")?
                .parse()
                .ok()
        })
        .expect("an instruction line");
    assert!(
        approx.abs_diff(counted) < counted / 100,
        "lockstep counted ~{approx} instructions, insn {counted}"
    );

    let apart_c = logs(lockstep_pair(
        "contrib-lockstep-apart-c",
        (&c, "3"),
        (&c, "4"),
    ));
    let apart_rs = logs(lockstep_pair(
        "contrib-lockstep-apart",
        (&rs, "3"),
        (&rs, "4"),
    ));
    eprintln!("lockstep, different guests:\n{}", apart_rs.0);
    assert!(apart_c.0.contains("giving up\n"), "{apart_c:?}");
    assert!(!apart_c.0.contains("No divergence"), "{apart_c:?}");
    assert_eq!(apart_rs, apart_c);
}

/// One record of a uftrace `.dat` file: time, type (0 entry, 1 exit), depth, address.
type UftraceRecord = (u64, u64, u64, u64);

/// The records of a uftrace `.dat` file (16 bytes each: the time, then the type, magic,
/// depth and address packed into a word, little-endian), checking each one's magic.
fn uftrace_records(path: &Path) -> Vec<UftraceRecord> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len().is_multiple_of(16), "{}", path.display());
    bytes
        .chunks(16)
        .map(|c| {
            let time = u64::from_le_bytes(c[..8].try_into().unwrap());
            let data = u64::from_le_bytes(c[8..].try_into().unwrap());
            assert_eq!((data >> 3) & 0b111, 5, "record magic in {}", path.display());
            (time, data & 0b111, (data >> 6) & 0x3ff, data >> 16)
        })
        .collect()
}

/// The address ranges of the lines of a `sid-0.map` (a copy of `/proc/self/maps`) that map
/// `program`.
fn mapped_ranges(map: &str, program: &Path) -> Vec<std::ops::Range<u64>> {
    let name = program.to_string_lossy();
    map.lines()
        .filter(|l| l.ends_with(&*name))
        .map(|l| {
            let (lo, hi) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            u64::from_str_radix(lo, 16).unwrap()..u64::from_str_radix(hi, 16).unwrap()
        })
        .collect()
}

/// `uftrace replay` of a trace directory, without durations or thread ids, with the
/// names of addresses that are no symbol (`<7ffe12345678>`, read from stack data where
/// the unwind walks through code without frame pointers) blanked.
fn uftrace_replay(dir: &Path) -> String {
    let out = std::process::Command::new("uftrace")
        .args(["replay", "-f", "none", "-d"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run uftrace ({e}): install Debian's uftrace package \
                 (`scripts/provision-qemu.sh uftrace`)"
            )
        });
    assert!(
        out.status.success(),
        "uftrace replay -d {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blanked = String::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find('<') {
            blanked.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            let hex = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_ascii_hexdigit())
                    .len();
            if hex > 0 && rest[hex..].starts_with('>') {
                blanked.push('?');
                rest = &rest[hex..];
            }
        }
        blanked.push_str(rest);
        blanked.push('\n');
    }
    blanked
}

/// `uftrace`: QEMU's C plugin and the rewrite trace the `calls` guest (nested calls with
/// frame pointers, `calls 3`) in separate runs, each in its own working directory, with
/// and without `trace-privilege-level=on`. Compared:
/// - the file list of `uftrace.data/`, and `info` and `task.txt`, byte for byte;
/// - each trace file record by record: the type, the depth and the address are equal,
///   except where uftrace.c's address lies outside the guest program's mappings (an
///   unwind through code without frame pointers reads stack data as return addresses,
///   which differ between runs): there the rewrite's must lie outside too; each time lies
///   within the run (the wall clock in ns);
/// - `sid-0.map`: the guest program's lines are the same (the rest is QEMU's own
///   layout);
/// - the guest's own count of its calls to `main`, `run`, `fib`, `sum` and `leaf` against
///   the rewrite's entries into each (by the ELF symbol holding each entry's address);
/// - x86_64: Debian's `uftrace replay` (0.13) reads both and shows the same calls (unknown
///   addresses blanked);
/// - aarch64 with privilege levels: uftrace.c's S-EL0 trace against the rewrite's NS-EL0
///   one (uftrace.c reads a register QEMU does not have there; see the code).
///
/// On riscv64, which uftrace.c does not know either, the rewrite refuses to install.
fn uftrace_writes_what_uftrace_c_writes(q: UserQemu) {
    if q.arch() == Arch::Riscv64 {
        let r = run_user_on(
            q,
            "contrib-uftrace-refused",
            &[Plugin::new(example(q.api(), "uftrace"), &[])],
            "calls",
            &["3"],
        );
        let text = r.assert_refused_at_install("calls:");
        assert!(text.contains("not supported"), "{}", r.describe());
        return;
    }
    let program = guest_for(q.arch(), "calls");
    for args in [&[][..], &["trace-privilege-level=on"]] {
        let run = |label: &str, plugin: PathBuf| {
            let cwd = run_dir(label);
            let start = std::time::SystemTime::now();
            let r = run_user_in(
                q,
                &cwd,
                label,
                &[Plugin::new(plugin, args)],
                "calls",
                &["3"],
            );
            r.assert_success();
            let end = std::time::SystemTime::now();
            let ns = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
            };
            (r, cwd.join("uftrace.data"), ns(start)..ns(end))
        };
        let (_, c_dir, _) = run("contrib-uftrace-c", q.contrib_plugin("uftrace"));
        let (r, dir, window) = run("contrib-uftrace", example(q.api(), "uftrace"));
        let files = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let names = files(&c_dir);
        assert_eq!(files(&dir), names, "{}", r.describe());
        let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
        assert_eq!(read(&dir, "info"), read(&c_dir, "info"));
        assert_eq!(read(&dir, "task.txt"), read(&c_dir, "task.txt"));
        let c_map = String::from_utf8(read(&c_dir, "sid-0.map")).unwrap();
        let map = String::from_utf8(read(&dir, "sid-0.map")).unwrap();
        let program_lines = |m: &str| -> Vec<String> {
            m.lines()
                .filter(|l| l.ends_with(&*program.to_string_lossy()))
                .map(String::from)
                .collect()
        };
        assert_eq!(program_lines(&map), program_lines(&c_map));
        let ranges = mapped_ranges(&c_map, &program);
        assert!(!ranges.is_empty(), "{c_map}");
        let in_program = |pc: u64| ranges.iter().any(|r| r.contains(&pc));
        let mut total = 0;
        // On aarch64 linux-user, which has no SCR_EL3, uftrace.c still reads it, through a
        // null register handle that QEMU turns into register -1: `env->xregs[-1]`, the 8
        // bytes before x0. It then files EL0 code as secure (S-EL0, trace 100); the rewrite
        // as non-secure (NS-EL0, trace 101), as uftrace.c means to where SCR_EL3 is absent.
        let swapped = q.arch() == Arch::Aarch64 && !args.is_empty();
        let ours_for = |f: &str| match (swapped, f) {
            (true, "100.dat") => "101.dat".to_string(),
            (true, "101.dat") => "100.dat".to_string(),
            _ => f.to_string(),
        };
        for f in names.iter().filter(|n| n.ends_with(".dat")) {
            let c = uftrace_records(&c_dir.join(f));
            let ours = uftrace_records(&dir.join(ours_for(f)));
            assert_eq!(ours.len(), c.len(), "{f}: records");
            for (i, (a, b)) in c.iter().zip(&ours).enumerate() {
                let same = a.1 == b.1
                    && a.2 == b.2
                    && (a.3 == b.3 || (!in_program(a.3) && !in_program(b.3)));
                assert!(same, "{f} record {i}: uftrace.c {a:x?}, rewrite {b:x?}");
                assert!(
                    window.contains(&b.0),
                    "{f} record {i}: time {} outside the run",
                    b.0
                );
            }
            total += ours.len();
        }
        eprintln!(
            "uftrace {args:?} on {:?}: {names:?}, {total} records",
            q.arch()
        );
        assert!(total > 100, "{total} records");
        // The guest's own call counts against the entries of each function, found by the
        // ELF symbol that holds the entry's address (an entry is recorded at the first
        // instruction after the new frame is set up, inside the function).
        let said = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("calls: main="))
            .unwrap_or_else(|| panic!("no call counts\n{}", r.describe()));
        let said = format!("main={said}");
        let functions = text_symbols(q.arch(), &program);
        let entries: Vec<u64> = names
            .iter()
            .filter(|n| n.ends_with(".dat"))
            .flat_map(|f| uftrace_records(&dir.join(f)))
            .filter(|r| r.1 == 0)
            .map(|r| r.3)
            .collect();
        for field in said.split_whitespace() {
            let (name, n) = field.split_once('=').unwrap();
            let entered = entries
                .iter()
                .filter(|&&pc| function_at(&functions, pc) == Some(name))
                .count();
            assert_eq!(
                entered.to_string(),
                n,
                "entries of {name} (the guest says {said})"
            );
        }
        if q.arch() == Arch::X86_64 {
            // Debian's uftrace reads both traces and shows the same calls.
            let replay = uftrace_replay(&dir);
            assert_eq!(replay, uftrace_replay(&c_dir));
            assert!(replay.contains("  fib() {\n"), "{replay}");
        }
    }
}

/// The function symbols (`t`/`T`) of an ELF file, by address.
fn text_symbols(arch: Arch, program: &Path) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = elf_symbols(arch, program)
        .into_iter()
        .filter(|(_, kind, _)| kind == "t" || kind == "T")
        .map(|(addr, _, name)| (addr, name))
        .collect();
    v.sort();
    v
}

/// The function whose code holds `pc`: the last symbol at or below it.
fn function_at(functions: &[(u64, String)], pc: u64) -> Option<&str> {
    let i = functions.partition_point(|(a, _)| *a <= pc);
    (i > 0).then(|| functions[i - 1].1.as_str())
}

tests_on!(
    x86_64_uftrace,
    UserQemu::V10_2,
    [uftrace_writes_what_uftrace_c_writes]
);
tests_on!(
    aarch64_uftrace,
    UserQemu::Aarch64,
    [uftrace_writes_what_uftrace_c_writes]
);
tests_on!(
    riscv64_uftrace,
    UserQemu::Riscv64,
    [uftrace_writes_what_uftrace_c_writes]
);
