//! Reliability under qemu-x86_64 (linux-user, API v5): memory under constant
//! retranslation, guests that crash, fork or exec, and thread storms. Each check takes
//! its expected values from the guest's source or from a witness in the same run
//! (QEMU's bb.c, the callback/inline cross-check of `icount check=on`), never from a
//! number recorded earlier. The figures each test prints are the ones in
//! docs/reliability.md.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// A short Python run: `-S -I` skips site and the environment, so it is a large program
/// (the interpreter) doing a small, fixed amount of work.
const PY_ARGS: &[&str] = &["-S", "-I", "-c", "print(sum(i * i for i in range(20000)))"];
const PY_OUTPUT: &str = "2666466670000";

/// `trace: F translation-cache flushes, C block closures alive`.
fn parse_flushes(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.starts_with("trace: ") && l.contains(" translation-cache flushes, "))
        .unwrap_or_else(|| panic!("no `trace: F translation-cache flushes` line in:\n{log}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 2, "bad flush line {line:?}");
    (nums[0], nums[1])
}

/// Asserts that no Rust panic message reached any output of `r`.
fn assert_no_panic(r: &Run) {
    for text in [&r.stdout, &r.stderr, &r.log] {
        assert!(
            !text.contains("panicked") && !text.contains("panic:"),
            "a panic was reported\n{}",
            r.describe()
        );
    }
}

/// Memory stays bounded under retranslation: Python under `-tb-size 1` (a 1 MiB code
/// buffer, so QEMU flushes it hundreds of times) with `icount check=on` and `trace`
/// loaded, against the same program at the default tb-size, each with and without the
/// plugins. What the plugins add to QEMU's peak RSS must not grow with the flush count.
#[test]
fn retranslation_keeps_plugin_memory_bounded() {
    let py = Path::new(PYTHON3);
    assert!(
        py.exists(),
        "{PYTHON3} is the large guest program of this test: install python3 (apt-get install python3)"
    );
    let measure = |label: &str, tb1: bool, plugins: bool| {
        let dir = run_dir(&format!("{label}-trace"));
        let dir_arg = format!("dir={}", dir.display());
        let list = if plugins {
            vec![
                Plugin::new(example(Api::V5, "icount"), &["check=on"]),
                Plugin::new(example(Api::V5, "trace"), &[&dir_arg, "every=100"]),
            ]
        } else {
            vec![]
        };
        let opts: &[&str] = if tb1 { &["-tb-size", "1"] } else { &[] };
        let (r, kib) = run_user_rss(label, opts, &list, py, PY_ARGS);
        r.assert_success();
        assert!(r.stdout.contains(PY_OUTPUT), "{}", r.describe());
        assert_no_panic(&r);
        if plugins {
            assert!(icount_mismatches(&r.log).is_empty(), "{}", r.describe());
            let t = parse_trace(&r.log);
            let files = read_trace_dir(&dir);
            assert_eq!(
                (files.files, files.syscalls.values().map(|c| c.0).sum()),
                (t.files, t.syscalls)
            );
        }
        (r, kib)
    };
    let (_, bare_tb1) = measure("rss-bare-tb1", true, false);
    let (with_tb1, rss_tb1) = measure("rss-plugins-tb1", true, true);
    let (_, bare_default) = measure("rss-bare-default", false, false);
    let (with_default, rss_default) = measure("rss-plugins-default", false, true);

    let (flushes_tb1, alive_tb1) = parse_flushes(&with_tb1.log);
    let (flushes_default, alive_default) = parse_flushes(&with_default.log);
    let added_tb1 = rss_tb1 as i64 - bare_tb1 as i64;
    let added_default = rss_default as i64 - bare_default as i64;
    eprintln!(
        "retranslation: -tb-size 1: {flushes_tb1} flushes, peak RSS {rss_tb1} KiB with plugins, \
         {bare_tb1} KiB without (plugins add {added_tb1} KiB), {alive_tb1} block closures alive at exit; \
         default tb-size: {flushes_default} flushes, peak RSS {rss_default} KiB with plugins, \
         {bare_default} KiB without (plugins add {added_default} KiB), {alive_default} closures alive"
    );
    // The point of the setup: many flushes in one run, (nearly) none in the other (QEMU's
    // user-mode exit flushes once).
    assert!(
        flushes_tb1 >= 100,
        "only {flushes_tb1} flushes under -tb-size 1"
    );
    assert!(
        flushes_default <= 2,
        "{flushes_default} flushes at the default size"
    );
    // Every flush frees the closures of the blocks it discarded...
    assert!(
        alive_tb1 * 10 < alive_default,
        "{alive_tb1} closures alive after {flushes_tb1} flushes vs {alive_default} without"
    );
    // ...so what the plugins retain does not grow with the flush count: their share of the
    // peak RSS under hundreds of flushes is no larger than with one flush (4 MiB of slack
    // for allocator and page-granularity noise; growth of even 16 KiB per flush would
    // exceed it).
    assert!(
        added_tb1 <= added_default + 4096,
        "plugins add {added_tb1} KiB after {flushes_tb1} flushes but {added_default} KiB after {flushes_default}"
    );
}

/// Splits a plugin log holding several processes' reports into one chunk per process:
/// `icount` is loaded first, so its atexit runs last and `total insns:` ends each report.
fn reports(log: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in log.lines() {
        out.last_mut().unwrap().push_str(line);
        out.last_mut().unwrap().push('\n');
        if line.starts_with("total insns: ") {
            out.push(String::new());
        }
    }
    out.retain(|c| !c.trim().is_empty());
    out
}

/// x86-64's `getppid`, which the crash guest calls.
const GETPPID: i64 = 110;

/// The guest dies in its main thread (SIGSEGV or abort) while three threads make
/// syscalls: totals are still merged and printed, QEMU's death by the signal is kept, and
/// nothing panics.
#[test]
fn guest_crash_in_one_thread_still_reports_totals() {
    for (how, signal) in [("segv", 11), ("abort", 6)] {
        let r = run_user(
            &format!("crash-{how}"),
            &[
                Plugin::new(example(Api::V5, "icount"), &["check=on"]),
                Plugin::new(example(Api::V5, "syscalls"), &[]),
                Plugin::new(ref_plugin("bb"), &["inline=on"]),
            ],
            "crash",
            &[how],
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            r.status.signal().or(r.status.code().map(|c| c - 128)),
            Some(signal),
            "QEMU should die by the guest's signal\n{}",
            r.describe()
        );
        assert!(r.stdout.contains(&format!("crash: dying by {how}")));
        assert_no_panic(&r);
        assert!(icount_mismatches(&r.log).is_empty(), "{}", r.describe());
        let ours = parse_insn(&r.log);
        let bb = parse_bb(&r.log);
        let calls = parse_syscalls(&r.log);
        let getppid = calls.get(&GETPPID).map_or(0, |c| c.0);
        eprintln!(
            "crash {how}: exit by signal {signal}; icount total {} over {} vCPUs, bb.c {}; {getppid} getppid calls",
            ours.total,
            ours.per_cpu.len(),
            bb.total_insns
        );
        // The main thread ran a 3,000,000-iteration loop before dying; 4 threads were vCPUs.
        assert!(
            ours.total > 3_000_000 && ours.per_cpu.len() >= 4,
            "{}",
            r.describe()
        );
        // bb.c counts a block's instructions on entry, so it also counts the rest of the
        // block that faulted (at most one partial block per vCPU, 512 instructions each);
        // icount counts each instruction as it starts.
        assert!(
            ours.total <= bb.total_insns && bb.total_insns - ours.total <= 4 * 512,
            "icount {} vs bb.c {}\n{}",
            ours.total,
            bb.total_insns,
            r.describe()
        );
        assert!(getppid > 0, "the hammer threads' syscalls were not counted");
    }
}

/// A guest forks 3 children one at a time. Each process prints its own report: a child
/// counts only what it ran after the fork, with its syscall counts exactly as the guest
/// source makes them; the parent's counts equal bb.c's; the trace files of all four
/// processes are distinct and hold exactly what each process reported.
fn fork_each_process_reports_its_own_totals(q: UserQemu) {
    const CHILDREN: usize = 3;
    let dir = run_dir("fork-trace");
    let dir_arg = format!("dir={}", dir.display());
    let r = run_user_on(
        q,
        "fork",
        &[
            Plugin::new(example(q.api(), "icount"), &["check=on"]),
            Plugin::new(example(q.api(), "syscalls"), &[]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
            Plugin::new(example(q.api(), "trace"), &[&dir_arg]),
        ],
        "forker",
        &[&CHILDREN.to_string()],
    );
    r.assert_success();
    assert!(
        r.stdout
            .contains(&format!("forker: {CHILDREN} children ok"))
    );
    assert_no_panic(&r);
    let nrs = guest_syscall_numbers(&r.stdout, "forker");
    let (getppid, wait4) = (nrs["getppid"], nrs["wait4"]);
    let forks = [nrs["clone"], nrs["clone3"], nrs["fork"]];
    let chunks = reports(&r.log);
    assert_eq!(
        chunks.len(),
        CHILDREN + 1,
        "one report per process expected\n{}",
        r.describe()
    );
    let mut trace_blocks = 0;
    let mut trace_syscalls = 0;
    let mut trace_files = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert!(icount_mismatches(chunk).is_empty(), "{chunk}");
        let ours = parse_insn(chunk);
        let calls = parse_syscalls(chunk);
        let t = parse_trace(chunk);
        trace_blocks += t.blocks;
        trace_syscalls += t.syscalls;
        trace_files += t.files;
        let count = |nr: i64| calls.get(&nr).map_or(0, |c| c.0);
        if i < CHILDREN {
            // Child i: 10*(i+1) getppid calls of its own; none of the parent's 7, and
            // none of its clone/wait4 calls. A copy of the parent's counts would also show
            // the 5,000,000-iteration loop the parent ran before forking.
            assert_eq!(count(getppid), 10 * (i as u64 + 1), "child {i}\n{chunk}");
            assert_eq!(
                forks.iter().map(|&n| count(n)).sum::<u64>() + count(wait4),
                0,
                "child {i}\n{chunk}"
            );
            assert!(
                ours.total < 1_000_000,
                "child {i} counted {}\n{chunk}",
                ours.total
            );
            eprintln!(
                "fork: child {i}: {} insns, {} getppid",
                ours.total,
                count(getppid)
            );
        } else {
            let bb = parse_bb(chunk);
            assert_eq!(count(getppid), 10, "parent\n{chunk}");
            assert_eq!(
                forks.iter().map(|&n| count(n)).sum::<u64>(),
                CHILDREN as u64,
                "parent\n{chunk}"
            );
            assert_eq!(count(wait4), CHILDREN as u64, "parent\n{chunk}");
            assert!(ours.total > 5_000_000, "parent\n{chunk}");
            assert_eq!(ours.total, bb.total_insns, "parent icount vs bb.c\n{chunk}");
            eprintln!(
                "fork: parent: {} insns (bb.c {})",
                ours.total, bb.total_insns
            );
        }
    }
    // The files: one set per process (named by pid), nothing written twice.
    let files = read_trace_dir(&dir);
    let pids: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('-').nth(1).unwrap().to_string()
        })
        .collect();
    assert_eq!(
        pids.len(),
        CHILDREN + 1,
        "trace files of each process: {pids:?}"
    );
    assert_eq!(files.files, trace_files);
    assert_eq!(
        files.blocks, trace_blocks,
        "trace lines vs the processes' reports"
    );
    assert_eq!(
        files.syscalls.values().map(|c| c.0).sum::<u64>(),
        trace_syscalls
    );
}

/// A guest execs: first a program that does not exist (the execve fails and the guest
/// goes on, with no report), then QEMU itself running another guest with the same
/// plugins. The image before the execve reports its totals just before it; the new one
/// reports its own at exit; the trace files of both survive (same pid, distinct names).
fn exec_reports_before_the_new_image_and_after(q: UserQemu) {
    let dir = run_dir("exec-trace");
    let dir_arg = format!("dir={}", dir.display());
    let plugins = [
        Plugin::new(example(q.api(), "icount"), &["check=on"]),
        Plugin::new(example(q.api(), "syscalls"), &[]),
        Plugin::new(example(q.api(), "trace"), &[&dir_arg]),
    ];
    let inner_log = run_dir("exec-inner").join("plugin.log");
    // The guest's execve runs the host's QEMU for its architecture on a program of that
    // architecture, with the same plugins.
    let mut inner = user_command(
        &[],
        &plugins,
        &inner_log,
        &guest_for(q.arch(), "compute"),
        &["1"],
    );
    inner[0] = q.binary().into();
    let inner: Vec<String> = inner
        .iter()
        .map(|s| s.to_str().unwrap().to_string())
        .collect();
    let inner: Vec<&str> = inner.iter().map(String::as_str).collect();
    let r = run_user_on(q, "exec", &plugins, "execer", &inner);
    r.assert_success();
    assert_no_panic(&r);
    assert!(
        r.stdout
            .contains("execer: exec of a missing program failed as expected")
    );
    assert!(r.stdout.contains("compute: rounds=1"), "{}", r.describe());

    let nrs = guest_syscall_numbers(&r.stdout, "execer");
    let (getppid, execve) = (nrs["getppid"], nrs["execve"]);
    // Before the execve: one report (the failed execve made none). Each plugin reports
    // from its own syscall hook, in load order, so icount's comes first here.
    assert_eq!(
        r.log.matches("total insns: ").count(),
        1,
        "{}",
        r.describe()
    );
    assert!(icount_mismatches(&r.log).is_empty(), "{}", r.describe());
    let before = parse_syscalls(&r.log);
    let count = |t: &BTreeMap<i64, (u64, u64)>, nr: i64| t.get(&nr).copied().unwrap_or((0, 0));
    assert_eq!(count(&before, getppid), (5, 0), "{}", r.log);
    // Two execve calls: the failed one (an error) and the one being made.
    assert_eq!(count(&before, execve), (2, 1), "{}", r.log);
    let outer_insns = parse_insn(&r.log).total;
    let outer_trace = parse_trace(&r.log);

    // The new image: its own report.
    let log2 = std::fs::read_to_string(&inner_log).expect("the exec'd QEMU wrote no log");
    assert_eq!(log2.matches("total insns: ").count(), 1, "{log2}");
    assert!(icount_mismatches(&log2).is_empty(), "{log2}");
    let after = parse_syscalls(&log2);
    assert_eq!(count(&after, getppid), (0, 0), "{log2}");
    assert_eq!(count(&after, execve), (0, 0), "{log2}");
    let inner_insns = parse_insn(&log2).total;
    let inner_trace = parse_trace(&log2);
    assert!(outer_insns > 0 && inner_insns > 0);
    eprintln!(
        "exec: before the execve {outer_insns} insns, {} blocks traced; the new image {inner_insns} insns, {} blocks",
        outer_trace.blocks, inner_trace.blocks
    );

    let files = read_trace_dir(&dir);
    assert_eq!(files.files, outer_trace.files + inner_trace.files);
    assert_eq!(files.blocks, outer_trace.blocks + inner_trace.blocks);
}

/// 10,000 guest threads, created in batches of 64 that are all alive at once: no count
/// lost (`check=on`, and the total equals bb.c's), every vCPU initialised once, and the
/// runtime's slots bounded by the highest vCPU index, not by the 10,001 vCPUs created.
fn thread_storm_keeps_counts_and_bounded_slots(q: UserQemu) {
    const THREADS: u64 = 10_000;
    const ALIVE: u64 = 64;
    let r = run_user_on(
        q,
        "storm",
        &[
            Plugin::new(example(q.api(), "icount"), &["check=on", "events=on"]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
        ],
        "churn",
        &[&THREADS.to_string(), &ALIVE.to_string(), "hold"],
    );
    r.assert_success();
    assert!(
        r.stdout
            .contains(&format!("churn: {THREADS} threads created and joined"))
    );
    assert_no_panic(&r);
    let (ours, bb) = assert_icount_matches_bb(&r);
    let line = |prefix: &str| -> BTreeMap<String, u64> {
        let l = r
            .log
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line\n{}", r.describe()));
        l.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    };
    let vcpus = line("icount: vcpus ");
    let slots = line("icount: slots ");
    let highest = r
        .log
        .lines()
        .find_map(|l| l.strip_prefix("icount: slots ")?.split("index=").nth(1))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .unwrap();
    let allocated = slots["allocated"];
    eprintln!(
        "storm: {THREADS} threads, {} vCPU inits, highest index {highest}, {allocated} slots; \
         icount {} = bb.c {} ({:.2?})",
        vcpus["init"], ours.total, bb.total_insns, r.elapsed
    );
    // Every thread and the main thread got a shard once.
    assert_eq!(vcpus["init"], THREADS + 1);
    // All 64 of a batch were alive with the main thread: indexes 0..=64 were in use.
    assert_eq!(highest, ALIVE, "{}", r.describe());
    // Segments double: the slots allocated are below twice the highest index + 1 (or the
    // first segment, 64 slots (`runtime::shards::FIRST`), if that is more), whatever the
    // number of vCPUs ever created.
    assert!(
        allocated <= (2 * (highest + 1)).max(64),
        "{allocated} slots for a highest index of {highest}"
    );
}

// fork, execve (the runtime finds them by the guest architecture's syscall numbers) and
// the thread storm, on each guest architecture (QEMU 10.2 linux-user).
tests_on!(
    x86_64,
    UserQemu::V10_2,
    [
        fork_each_process_reports_its_own_totals,
        exec_reports_before_the_new_image_and_after,
        thread_storm_keeps_counts_and_bounded_slots,
    ]
);
tests_on!(
    aarch64,
    UserQemu::Aarch64,
    [
        fork_each_process_reports_its_own_totals,
        exec_reports_before_the_new_image_and_after,
        thread_storm_keeps_counts_and_bounded_slots,
    ]
);
tests_on!(
    riscv64,
    UserQemu::Riscv64,
    [
        fork_each_process_reports_its_own_totals,
        exec_reports_before_the_new_image_and_after,
        thread_storm_keeps_counts_and_bounded_slots,
    ]
);
