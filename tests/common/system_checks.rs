//! Checks shared by the system-mode tests of every QEMU: the guest booted and did its
//! work, `icount check=on` counted every vCPU with no mismatch, `tiny` disassembled, a
//! panicking hook was contained.

use super::*;

/// Iterations of the shell loop the guest's init runs on every CPU (see
/// scripts/provision-qemu.sh); every iteration is many instructions.
pub const GUEST_LOOP_ITERS: u64 = 30_000;

/// The guest booted on 4 vCPUs, did its work and powered off.
pub fn assert_booted(r: &Run) {
    r.assert_success();
    assert!(r.stdout.contains("guest: 4 cpus"), "{}", r.describe());
    assert!(r.stdout.contains(GUEST_DONE), "{}", r.describe());
}

/// `icount check=on events=on` on the 4-vCPU guest: every vCPU initialised and counted,
/// idle and resume seen, the callback and inline counts (two counts in the same run)
/// equal on every vCPU, the total the sum, and at least 10^9 instructions.
pub fn assert_system_icount(r: &Run) {
    assert_booted(r);
    // vcpu_init created a shard for each of the 4 vCPUs, and the idle loop of a booting
    // Linux sends idle and resume events (QEMU's idle hook fires when a vCPU halts).
    let events = r
        .log
        .lines()
        .find_map(|l| l.strip_prefix("icount: vcpus "))
        .unwrap_or_else(|| panic!("no `icount: vcpus` line\n{}", r.describe()));
    let field = |name: &str| -> u64 {
        events
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in `{events}`"))
    };
    assert_eq!(field("init"), 4, "{events}");
    assert!(field("idle") > 0 && field("resume") > 0, "{events}");
    let mismatches = icount_mismatches(&r.log);
    assert!(mismatches.is_empty(), "{mismatches:?}\n{}", r.describe());
    let counts = parse_insn(&r.log);
    eprintln!(
        "system icount: total {} per cpu {:?} ({:.2?})",
        counts.total, counts.per_cpu, r.elapsed
    );
    assert_eq!(
        counts.per_cpu.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{}",
        r.describe()
    );
    assert_eq!(counts.total, counts.per_cpu.values().sum::<u64>());
    // The long run of docs/reliability.md: a boot and the guest's loops execute billions
    // of instructions, every one through the exec callback path (and counted inline too,
    // with no mismatch above).
    assert!(
        counts.total >= 1_000_000_000,
        "only {} instructions: the long run needs at least 10^9\n{}",
        counts.total,
        r.describe()
    );
    for (cpu, n) in &counts.per_cpu {
        assert!(
            *n > GUEST_LOOP_ITERS,
            "vCPU {cpu} counted only {n} instructions but ran a {GUEST_LOOP_ITERS}-iteration loop"
        );
    }
}

/// Lines of the form `<hex vaddr> <disassembly>`, as `tiny` prints them.
fn disassembly_lines(log: &str) -> Vec<(u64, &str)> {
    log.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (addr, rest) = l.split_once(|c: char| c.is_whitespace() || c == ':')?;
            let addr = addr.strip_prefix("0x").unwrap_or(addr);
            let vaddr = u64::from_str_radix(addr, 16).ok()?;
            let rest = rest.trim_start_matches(':').trim();
            (!rest.is_empty()).then_some((vaddr, rest))
        })
        .collect()
}

/// `tiny` (the 10.1.0-v2 `HasCallbacks` surface) disassembled the boot: kernel and
/// user (or real-mode) addresses, `mov`s among them.
pub fn assert_system_tiny(r: &Run) {
    assert_booted(r);
    let lines = disassembly_lines(&r.log);
    eprintln!(
        "system tiny: {} disassembly lines, first {:?} ({:.2?})",
        lines.len(),
        lines.first(),
        r.elapsed
    );
    // Booting Linux translates far more than 10,000 instructions, kernel and user.
    assert!(lines.len() > 10_000, "{}", r.describe());
    assert!(
        lines.iter().any(|(_, d)| d.starts_with("mov")),
        "no `mov` in the disassembly:\n{}",
        r.describe()
    );
    assert!(
        lines.iter().any(|(a, _)| *a >= 0xffff_8000_0000_0000),
        "no kernel-space vaddr"
    );
    assert!(
        lines.iter().any(|(a, _)| *a < 0x0000_8000_0000_0000),
        "no user-space (or real-mode) vaddr"
    );
}

/// `panicky hook=idle`: the panic is reported once, as a panic in the idle hook, and the
/// plugin uninstalled; the guest boots on and powers off. Returns the report line.
pub fn assert_idle_panic_contained(r: &Run) -> String {
    assert_booted(r);
    let ours: Vec<&str> = r
        .log
        .lines()
        .filter(|l| l.starts_with("panicky:"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}\n{}", r.describe());
    let line = ours[0];
    assert!(
        line.starts_with("panicky: panic: panicky: deliberate panic in idle ")
            && line.contains(" at examples/panicky.rs:")
            && line.ends_with(
                "(in the vcpu_idle callback); uninstalling the plugin, the guest continues"
            ),
        "{line:?}"
    );
    line.to_string()
}
