//! Multi-threaded guests under linux-user QEMU 10.2 (API v5; x86_64, aarch64 and riscv64
//! guests for the thread tests), where every guest thread
//! is its own vCPU running in parallel. Runs are not repeatable here, so each check uses
//! a witness from the same run: QEMU's bb.c (a different output format, loaded alongside)
//! or the totals the guest program prints for itself.

#[macro_use]
mod common;

use common::*;

/// Iterations of each compute thread's loop (a few instructions each).
const THREAD_ITERS: &str = "1000000";

fn threads_with_icount_check(q: UserQemu, n: usize) {
    let n_arg = n.to_string();
    let r = run_user_on(
        q,
        &format!("threads-{n}"),
        &[
            Plugin::new(example(q.api(), "icount"), &["check=on"]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
        ],
        "threads",
        &[&n_arg, THREAD_ITERS],
    );
    r.assert_success();
    assert!(
        r.stdout.contains(&format!("threads: {n} done")),
        "{}",
        r.describe()
    );
    let (ours, bb) = assert_icount_matches_bb(&r);
    eprintln!(
        "threads {n}: icount total {} per cpu {:?}; bb.c total {} ({:.2?})",
        ours.total, ours.per_cpu, bb.total_insns, r.elapsed
    );
    assert_eq!(ours.total, ours.per_cpu.values().sum::<u64>());
    // The main thread plus n workers, all alive at once, so n + 1 vCPUs ran code, and
    // each worker's vCPU executed at least one instruction per loop iteration.
    let iters: u64 = THREAD_ITERS.parse().unwrap();
    let busy = ours.per_cpu.values().filter(|&&c| c >= iters).count();
    assert!(
        ours.per_cpu.values().filter(|&&c| c > 0).count() > n,
        "fewer than {} vCPUs counted work: {:?}",
        n + 1,
        ours.per_cpu
    );
    assert!(busy >= n, "fewer than {n} busy vCPUs: {:?}", ours.per_cpu);
}

fn two_threads_icount_check(q: UserQemu) {
    threads_with_icount_check(q, 2);
}

fn four_threads_icount_check(q: UserQemu) {
    threads_with_icount_check(q, 4);
}

/// 3,000 short-lived threads in batches: vCPU indexes come and go (and may outgrow the
/// scoreboards, which moves them); counts must survive all of it.
fn thread_churn_icount_check(q: UserQemu) {
    let total = 3000;
    let r = run_user_on(
        q,
        "churn",
        &[
            Plugin::new(example(q.api(), "icount"), &["check=on"]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
        ],
        "churn",
        &[&total.to_string(), "16"],
    );
    r.assert_success();
    assert!(
        r.stdout
            .contains(&format!("churn: {total} threads created and joined")),
        "{}",
        r.describe()
    );
    let (ours, bb) = assert_icount_matches_bb(&r);
    eprintln!(
        "churn: icount total {} over {} vCPU indexes; bb.c total {} ({:.2?})",
        ours.total,
        ours.per_cpu.len(),
        bb.total_insns,
        r.elapsed
    );
    // Up to 16 workers live at once next to the main thread.
    assert!(ours.per_cpu.len() >= 2, "{:?}", ours.per_cpu);
}

/// Several threads making syscalls concurrently: our totals equal the guest's own.
#[test]
fn sysheavy_syscall_totals() {
    let r = run_user(
        "sysheavy",
        &[Plugin::new(example(Api::V5, "syscalls"), &[])],
        "sysheavy",
        &["4", "5000"],
    );
    r.assert_success();
    let own = parse_sysheavy(&r.stdout);
    let seen = parse_syscalls(&r.log);
    eprintln!("sysheavy: guest says {own:?}; syscalls plugin {seen:?}");
    for (nr, counts) in &own {
        assert_eq!(
            seen.get(nr),
            Some(counts),
            "syscall {nr} (calls, errors)\n{}",
            r.describe()
        );
    }
}

/// trace with several vCPUs: one file per vCPU, and block and syscall totals equal to
/// bb.c's and syscall.c's in the same run.
#[test]
fn trace_with_threads() {
    let n: u64 = 3;
    let dir = run_dir("trace-threads-out");
    let dir_arg = format!("dir={}", dir.display());
    let r = run_user(
        "trace-threads",
        &[
            Plugin::new(example(Api::V5, "trace"), &[&dir_arg]),
            Plugin::new(ref_plugin("bb"), &["inline=on"]),
            Plugin::new(ref_plugin("syscall"), &[]),
        ],
        "threads",
        &[&n.to_string(), "200000"],
    );
    r.assert_success();
    let (_, bb, files) = assert_trace_matches_references(Arch::X86_64, &r, &dir);
    // The main thread and n workers each ran blocks, each with its own file.
    assert!(
        files.files >= bb.per_cpu.len() as u64 && files.files > n,
        "{} files for {} vCPUs",
        files.files,
        bb.per_cpu.len()
    );
}

/// `discons` (QEMU 10.2's discontinuity callbacks through the runtime) on the `traps`
/// guest: 4 threads each take 100 `ud2` traps, which a SIGILL handler skips. Each trap is
/// an exception discontinuity on its thread's vCPU (and linux-user reports no other
/// exception: syscalls and page faults are not discontinuities there), so the exceptions
/// counted are exactly the traps the guest says it handled; the per-vCPU lines (fewer
/// than 4 when a finished thread's index is reused) add up to the total.
#[test]
fn discons_count_every_trap_the_guest_took() {
    let r = run_user(
        "discons-traps",
        &[Plugin::new(example(Api::V5, "discons"), &[])],
        "traps",
        &["4", "100"],
    );
    r.assert_success();
    let handled: u64 = r
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("traps: 4 threads, ")?
                .strip_suffix(" traps handled")
        })
        .unwrap_or_else(|| panic!("no traps line\n{}", r.describe()))
        .parse()
        .unwrap();
    let total = r
        .log
        .lines()
        .find_map(|l| l.strip_prefix("discons: total "))
        .unwrap_or_else(|| panic!("no discons total\n{}", r.describe()));
    let field = |name: &str| -> u64 {
        let mut words = total.split_whitespace();
        while let Some(w) = words.next() {
            if w == name {
                return words.next().unwrap().parse().unwrap();
            }
        }
        panic!("no {name} in `{total}`")
    };
    eprintln!("discons: guest handled {handled} traps; plugin: {total}");
    assert_eq!(handled, 400, "{}", r.describe());
    assert_eq!(field("exceptions"), handled, "{}", r.describe());
    let per_cpu: u64 = r
        .log
        .lines()
        .filter_map(|l| l.strip_prefix("discons: cpu "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w[3], "exceptions", "{l}");
            w[4].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(per_cpu, handled, "{}", r.describe());
}

// 2 and 4 guest threads and 3,000 short-lived ones, on each guest architecture (QEMU 10.2).
tests_on!(
    x86_64,
    UserQemu::V10_2,
    [
        two_threads_icount_check,
        four_threads_icount_check,
        thread_churn_icount_check
    ]
);
tests_on!(
    aarch64,
    UserQemu::Aarch64,
    [
        two_threads_icount_check,
        four_threads_icount_check,
        thread_churn_icount_check
    ]
);
tests_on!(
    riscv64,
    UserQemu::Riscv64,
    [
        two_threads_icount_check,
        four_threads_icount_check,
        thread_churn_icount_check
    ]
);
