//! One plugin file for every QEMU (`qemu-plugin-any`): the `icount` example built for
//! plugin APIs 1, 4, 5 and 7, bundled by `qemu-plugin-bundle` into one `.so`, and that
//! one file loaded into every QEMU of the matrix: 7.2 and 10.2 linux-user (against each
//! QEMU's own insn.c), and 7.2, 10.0 and 11.1 system mode under MTTCG. The loader says
//! which build it chose and the window QEMU reported (`QEMU_PLUGIN_ANY_VERBOSE`, set by
//! the harness); the build must be the one for QEMU's own current API.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The loader and the bundler, built once per test binary in a target dir of their own.
fn loader_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let t = target_dir().join("any-loader");
        let out = Command::new(cargo)
            .current_dir(MANIFEST_DIR)
            .args([
                "build",
                "--release",
                "-p",
                "qemu-plugin-any",
                "--target-dir",
            ])
            .arg(&t)
            .output()
            .expect("cannot run cargo to build qemu-plugin-any");
        assert!(
            out.status.success(),
            "building qemu-plugin-any failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.join("release")
    })
}

/// Runs `qemu-plugin-bundle` on `builds` into `out`.
fn run_bundler(out: &Path, builds: &[PathBuf]) -> std::process::Output {
    Command::new(loader_dir().join("qemu-plugin-bundle"))
        .arg("-o")
        .arg(out)
        .args(builds)
        .output()
        .expect("cannot run qemu-plugin-bundle")
}

/// The example `name` built for each of `apis`, bundled into one file.
fn bundle(name: &str, apis: &[Api]) -> PathBuf {
    let builds: Vec<PathBuf> = apis.iter().map(|&a| example(a, name)).collect();
    let tag: Vec<String> = apis
        .iter()
        .map(|a| format!("{a:?}").to_lowercase())
        .collect();
    let out = run_dir("any-bundle").join(format!("lib{name}-{}.so", tag.join("-")));
    let r = run_bundler(&out, &builds);
    assert!(
        r.status.success(),
        "qemu-plugin-bundle failed:\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

/// The bundle of every API that a QEMU here speaks.
fn icount_any() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| bundle("icount", &[Api::V1, Api::V4, Api::V5, Api::V7]))
}

/// The loader's report: QEMU's window `(min, cur)` as QEMU gave it to the plugin, and the
/// API of the build it loaded.
fn loaded(r: &Run) -> ((u32, u32), u32) {
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("qemu-plugin-any: QEMU accepts plugin APIs "))
        .unwrap_or_else(|| panic!("the loader did not report\n{}", r.describe()));
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = |w: &str| -> u32 {
        w.trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or_else(|_| panic!("no number in {w:?} of {line:?}"))
    };
    let api_word = words
        .iter()
        .find(|w| w.starts_with("API-"))
        .unwrap_or_else(|| panic!("no API-N in {line:?}"));
    ((n(words[5]), n(words[7])), n(api_word))
}

/// The loaded build is the one for the API that QEMU reports as its current one.
fn assert_loaded_current_api(r: &Run) -> u32 {
    let ((min, cur), api) = loaded(r);
    eprintln!("qemu-plugin-any: QEMU window {min}..={cur}, loaded the API-{api} build");
    assert_eq!(api, cur, "{}", r.describe());
    api
}

fn agrees_with_insn_c(q: UserQemu) {
    let reference = run_user_on(
        q,
        "any-insn.c",
        &[Plugin::new(q.ref_plugin("insn"), &[])],
        "compute",
        &["40"],
    );
    reference.assert_success();
    let ours = run_user_on(
        q,
        "any-icount",
        &[Plugin::new(icount_any().to_path_buf(), &[])],
        "compute",
        &["40"],
    );
    ours.assert_success();
    assert_eq!(ours.stdout, reference.stdout, "the guest's own output");
    let api = assert_loaded_current_api(&ours);
    assert_eq!(api, q.api().number(), "{}", ours.describe());
    let (got, expected) = (parse_insn(&ours.log), parse_insn(&reference.log));
    eprintln!("{q:?}: bundle {} insn.c {}", got.total, expected.total);
    assert_eq!(got, expected, "{}", ours.describe());
}

#[test]
fn one_file_agrees_with_insn_c_in_qemu_7_2_linux_user() {
    agrees_with_insn_c(UserQemu::V7_2);
}

#[test]
fn one_file_agrees_with_insn_c_in_qemu_10_2_linux_user() {
    agrees_with_insn_c(UserQemu::V10_2);
}

/// `check=on` counts every instruction twice (callback and inline) in the same run.
fn system_check(qemu: &Path, label: &str) -> Run {
    let r = run_system_with(
        label,
        &[Plugin::new(
            icount_any().to_path_buf(),
            &["check=on", "events=on"],
        )],
        &SystemExtras {
            qemu: Some(qemu),
            ..SystemExtras::default()
        },
    );
    assert_system_icount(&r);
    r
}

#[test]
fn one_file_counts_every_vcpu_in_qemu_10_0_system() {
    let r = system_check(&qemu_env().qemu_system, "any-system-10.0");
    assert_loaded_current_api(&r);
}

#[test]
fn one_file_counts_every_vcpu_in_qemu_11_1_system() {
    let r = system_check(&qemu_env().qemu_system_11, "any-system-11.1");
    assert_eq!(assert_loaded_current_api(&r), 7, "{}", r.describe());
}

/// QEMU 7.2 has no inline counters, so `check=on` is refused there; the bundle's count
/// is compared with QEMU 7.2's own bb.c in the same boot instead, vCPU by vCPU.
#[test]
fn one_file_agrees_with_bb_c_in_qemu_7_2_system() {
    let r = run_system_with(
        "any-system-7.2",
        &[
            Plugin::new(icount_any().to_path_buf(), &[]),
            Plugin::new(UserQemu::V7_2.ref_plugin("bb"), &[]),
        ],
        &SystemExtras {
            qemu: Some(&qemu_env().qemu_system_7_2),
            ..SystemExtras::default()
        },
    );
    assert_booted(&r);
    assert_eq!(assert_loaded_current_api(&r), 1, "{}", r.describe());
    let (ours, bb) = (parse_insn(&r.log), parse_bb(&r.log));
    eprintln!(
        "QEMU 7.2 boot: bundle {:?}, bb.c {:?}",
        ours.per_cpu, bb.per_cpu
    );
    assert_eq!(
        ours.per_cpu.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    for (cpu, n) in &ours.per_cpu {
        // As in qemu_api1: bb.c adds a block's size when it starts, so it counts a few
        // in 10,000 more where faults and interrupts cut blocks short; never fewer.
        let b = bb.per_cpu[cpu].1;
        assert!(
            *n <= b && b - n <= b / 1000,
            "vCPU {cpu}: ours {n}, bb.c {b}"
        );
    }
}

/// A bundle with no build that QEMU 7.2 can run (APIs 5 and 7 only) is refused at
/// install with a message naming the feature to add; the guest never runs.
#[test]
fn a_bundle_without_a_build_for_the_qemu_is_refused_with_the_fix() {
    let newer_only = bundle("icount", &[Api::V5, Api::V7]);
    let r = run_user_on(
        UserQemu::V7_2,
        "any-refused",
        &[Plugin::new(newer_only, &[])],
        "compute",
        &["1"],
    );
    let text = r.assert_refused_at_install("compute:");
    assert!(
        text.contains("qemu-plugin-any: this QEMU speaks plugin API 1"),
        "{text}"
    );
    assert!(text.contains("builds for v5, v7 only"), "{text}");
    assert!(text.contains("plugin-api-v1"), "{text}");
}

/// The bundler takes a build's API from the build itself, so it refuses two builds of
/// one API and a file that is not a plugin, and writes nothing.
#[test]
fn the_bundler_refuses_twins_and_non_plugins() {
    let dir = run_dir("any-bundler");
    let out = dir.join("libx.so");
    let v5 = example(Api::V5, "icount");
    let r = run_bundler(&out, &[v5.clone(), example(Api::V5, "tiny")]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("both built for plugin API 5"),
        "{err}"
    );
    let r = run_bundler(&out, &[v5, guest("compute")]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("not a QEMU plugin"),
        "{err}"
    );
    assert!(!out.exists(), "a refused bundle was written");
}
