//! Plugin API 1 (QEMU 7.2, what Debian bookworm ships): the examples built with
//! `plugin-api-v1` in qemu-system-x86_64 7.2 (bookworm's binary, unpacked into a private
//! directory) on the 4-vCPU Linux guest under MTTCG, and the refusals of what API 1
//! lacks. The linux-user agreement with QEMU 7.2's own reference plugins is in
//! `qemu_agreement` (module `qemu_7_2`).

mod common;

use common::*;

fn run_7_2(label: &str, plugins: &[Plugin]) -> Run {
    let env = qemu_env();
    run_system_with(
        label,
        plugins,
        &SystemExtras {
            qemu: Some(&env.qemu_system_7_2),
            ..SystemExtras::default()
        },
    )
}

/// The README's plugin and `icount` (each a callback per instruction, each with its own
/// runtime) count the same boot identically, on every vCPU, and QEMU 7.2's own bb.c (a
/// callback per block) counts at most 0.1% more on each vCPU.
#[test]
fn api1_system_counts_agree_with_bb_c() {
    let r = run_7_2(
        "api1-system-readme-bb",
        &[
            Plugin::new(example(Api::V1, "readme"), &[]),
            Plugin::new(example(Api::V1, "icount"), &[]),
            Plugin::new(UserQemu::V7_2.ref_plugin("bb"), &[]),
        ],
    );
    assert_booted(&r);
    let bb = parse_bb(&r.log);
    // Both plugins end with `total insns: N`: icount's follows its `cpu N insns:` lines,
    // the README plugin's stands alone.
    let lines: Vec<&str> = r.log.lines().collect();
    let lone = |i: usize| i == 0 || !lines[i - 1].starts_with("cpu ");
    let readme_line = (0..lines.len())
        .find(|&i| lines[i].starts_with("total insns: ") && lone(i))
        .unwrap_or_else(|| panic!("no lone `total insns:` line\n{}", r.describe()));
    let readme: u64 = lines[readme_line]["total insns: ".len()..]
        .trim()
        .parse()
        .expect("a number");
    let icount_log: String = lines
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != readme_line)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let icount = parse_insn(&icount_log);
    eprintln!(
        "QEMU 7.2 boot: readme {readme}, bb.c {} per cpu {:?}; icount {} per cpu {:?}",
        bb.total_insns, bb.per_cpu, icount.total, icount.per_cpu
    );
    assert_eq!(bb.per_cpu.len(), 4, "bb.c saw 4 vCPUs\n{}", r.describe());
    assert_eq!(
        readme,
        icount.total,
        "the two plugins' counts\n{}",
        r.describe()
    );
    assert_eq!(
        icount.per_cpu.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(icount.total, icount.per_cpu.values().sum::<u64>());
    for (cpu, n) in &icount.per_cpu {
        // bb.c adds a block's size when the block starts; ours count the instructions
        // reached, and in a booting kernel faults and interrupts end blocks early: a few
        // in 10,000 (0.017% in the run this was written from), never the other way.
        let b = bb.per_cpu[cpu].1;
        assert!(
            *n <= b && b - n <= b / 1000,
            "vCPU {cpu}: ours {n}, bb.c {b}"
        );
        assert!(*n > GUEST_LOOP_ITERS, "vCPU {cpu}: {n}");
    }
}

/// `tiny`, the 10.1.0-v2 surface, built for API 1, disassembles the boot.
#[test]
fn api1_system_tiny_runs() {
    let r = run_7_2("api1-tiny", &[Plugin::new(example(Api::V1, "tiny"), &[])]);
    assert_system_tiny(&r);
}

/// A panic in the idle hook is reported once and the plugin uninstalled; the guest
/// boots on and powers off (QEMU 7.2's uninstall path).
#[test]
fn api1_panic_in_idle_hook_leaves_the_guest_running() {
    let r = run_7_2(
        "api1-panicky-idle",
        &[Plugin::new(example(Api::V1, "panicky"), &["hook=idle"])],
    );
    assert_idle_panic_contained(&r);
}

/// API 1 has no scoreboards: `icount inline=on` (an inline counter) is refused at
/// install, and QEMU 7.2 says so and exits, naming the QEMU the counter needs.
#[test]
fn api1_inline_counters_are_refused_at_install() {
    let r = run_user_on(
        UserQemu::V7_2,
        "api1-inline-refused",
        &[Plugin::new(example(Api::V1, "icount"), &["inline=on"])],
        "compute",
        &["1"],
    );
    assert!(!r.status.success(), "{}", r.describe());
    let text = format!("{}{}{}", r.stdout, r.stderr, r.log);
    assert!(
        text.contains("qemu_plugin_scoreboard_new (InlineCounter) needs QEMU >= 9.0"),
        "{}",
        r.describe()
    );
}
