//! Plugin API 7: the examples built with `plugin-api-v7`, loaded into qemu-system-x86_64
//! 11.1 (Debian sid's binary, run from a private sysroot; see
//! scripts/provision-qemu.sh), which accepts API 7 and nothing older. The Linux guest
//! boots on 4 vCPUs under MTTCG, as in `qemu_system`.
//!
//! QEMU 11.1's own C plugins cannot be had here (no source package downloads), so the
//! expected numbers come from a second count in the same run (`icount check=on`:
//! callbacks and inline counters), from the guest, and from QEMU's own messages.

mod common;

use common::*;

fn run_11(label: &str, plugins: &[Plugin]) -> Run {
    run_11_with(label, plugins, &[])
}

/// [`run_11`] with words for the guest's init on the kernel command line.
fn run_11_with(label: &str, plugins: &[Plugin], append: &[&str]) -> Run {
    let env = qemu_env();
    run_system_with(
        label,
        plugins,
        &SystemExtras {
            qemu: Some(&env.qemu_system_11),
            append,
            ..SystemExtras::default()
        },
    )
}

/// The API QEMU 11.x says it needs at the least, from its refusal of a plugin built for
/// API 5 ("... supports only a minimum version of N").
fn minimum_api_of_qemu_11() -> u32 {
    let r = run_11(
        "api7-v5-refused",
        &[Plugin::new(example(Api::V5, "icount"), &[])],
    );
    assert!(
        !r.status.success(),
        "QEMU 11 loaded a plugin built for API 5; it should refuse it\n{}",
        r.describe()
    );
    let text = format!("{}{}", r.stdout, r.stderr);
    let min = text
        .split("minimum version of ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no \"minimum version of N\" in QEMU's refusal\n{}",
                r.describe()
            )
        });
    assert!(
        min <= 7,
        "this QEMU needs plugin API {min} at the least; the crate's newest is API 7 \
         (feature plugin-api-v7): Debian sid has moved past QEMU 11.1, and the crate needs \
         that API's changes before it can load there"
    );
    min
}

/// QEMU 11.1 refuses an API-5 build, says it needs API 7, and loads the API-7 build:
/// the feature's version is the one this QEMU speaks.
#[test]
fn qemu_11_needs_api_7_and_loads_the_v7_build() {
    assert_eq!(minimum_api_of_qemu_11(), 7);
    let r = run_11(
        "api7-icount-plain",
        &[Plugin::new(example(Api::V7, "icount"), &[])],
    );
    assert_booted(&r);
    let counts = parse_insn(&r.log);
    assert_eq!(counts.per_cpu.len(), 4, "{}", r.describe());
}

/// `icount check=on events=on` (the per-vCPU runtime, whose hooks get the runtime as
/// userdata under API 7): every vCPU counted by callbacks and inline, equal, and init,
/// idle and resume seen.
#[test]
fn api7_icount_check_on_four_vcpus() {
    let r = run_11(
        "api7-icount",
        &[Plugin::new(
            example(Api::V7, "icount"),
            &["check=on", "events=on"],
        )],
    );
    assert_system_icount(&r);
}

/// `tiny`, the 10.1.0-v2 `HasCallbacks` / `register!` surface: its id-shaped raw
/// callbacks run through the crate's API-7 adapters.
#[test]
fn api7_tiny_runs() {
    let r = run_11("api7-tiny", &[Plugin::new(example(Api::V7, "tiny"), &[])]);
    assert_system_tiny(&r);
}

/// `discons` on API 7 (QEMU 11.1 has discontinuity callbacks): a booting Linux takes
/// timer interrupts on every vCPU, and the total is the sum of the vCPUs' lines.
#[test]
fn api7_discontinuities_on_every_vcpu() {
    let r = run_11(
        "api7-discons",
        &[Plugin::new(example(Api::V7, "discons"), &[])],
    );
    assert_booted(&r);
    let parse = |l: &str| -> [u64; 3] {
        let w: Vec<u64> = l
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        [w[w.len() - 3], w[w.len() - 2], w[w.len() - 1]]
    };
    let cpus: Vec<[u64; 3]> = r
        .log
        .lines()
        .filter(|l| l.starts_with("discons: cpu "))
        .map(parse)
        .collect();
    let total = r
        .log
        .lines()
        .find(|l| l.starts_with("discons: total "))
        .map(parse)
        .unwrap_or_else(|| panic!("no discons total\n{}", r.describe()));
    eprintln!("api7 discons: per cpu {cpus:?}, total {total:?}");
    assert_eq!(cpus.len(), 4, "{}", r.describe());
    assert!(
        cpus.iter().all(|c| c[0] > 0),
        "an idle vCPU took no interrupt: {cpus:?}"
    );
    for k in 0..3 {
        assert_eq!(total[k], cpus.iter().map(|c| c[k]).sum::<u64>());
    }
}

/// A panic in a hook (the idle hook, early in the boot) is reported once and the plugin
/// uninstalled; the guest boots on and powers off.
#[test]
fn api7_panic_in_idle_hook_leaves_the_guest_running() {
    let r = run_11(
        "api7-panicky-idle",
        &[Plugin::new(example(Api::V7, "panicky"), &["hook=idle"])],
    );
    assert_idle_panic_contained(&r);
}

/// `qemu_plugin_set_pc` (API 6 and later) through `on_exec_redirect`: `skip` moves the PC
/// past the `ud2` of the guest's `ud2probe`, which otherwise dies of SIGILL (the same
/// boot without the plugin shows it: exit status 128 + 4), so the program says it
/// survived, and `skip` counted exactly that one skip.
#[test]
fn api7_set_pc_skips_the_guests_ud2() {
    let without = run_11_with("api7-setpc-without", &[], &["setpc"]);
    without.assert_success();
    assert!(
        without.stdout.contains("guest: ud2probe exit 132")
            && !without.stdout.contains("guest: ud2 skipped"),
        "{}",
        without.describe()
    );
    let r = run_11_with(
        "api7-setpc",
        &[Plugin::new(example(Api::V7, "skip"), &[])],
        &["setpc"],
    );
    r.assert_success();
    assert!(
        r.stdout.contains("guest: ud2 skipped") && r.stdout.contains("guest: ud2probe exit 0"),
        "{}",
        r.describe()
    );
    assert!(
        r.log.lines().any(|l| l == "skip: total skipped 1"),
        "{}",
        r.describe()
    );
}
