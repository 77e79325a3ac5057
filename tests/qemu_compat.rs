//! The drop-in promise, checked with real code: `tests/compat` is a plugin written for
//! the crates.io `qemu-plugin` 10.1.0-v2 in the style of its users. It is built twice
//! with no edit between the two, against crates.io's 10.1.0-v2 and against this crate
//! (a `[patch.crates-io]` given on cargo's command line), for every plugin API from 0 to
//! 5, and each pair is loaded into one qemu-x86_64 run (7.2 for APIs 0 and 1, 10.2 for 2
//! to 5), where the two builds must report the same counts, and QEMU's bb.c, alongside,
//! a third, independent count.
//!
//! The first run downloads 10.1.0-v2 from crates.io into cargo's cache.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use common::*;

/// Which `qemu-plugin` the compat plugin is built against.
#[derive(Clone, Copy, Debug)]
enum Against {
    /// crates.io's 10.1.0-v2.
    Seed,
    /// This repository's crate.
    Local,
}

/// Builds `tests/compat` against `against` for `api`; returns the plugin's path.
fn build_compat(against: Against, api: Api) -> PathBuf {
    // The builds share tests/compat/Cargo.lock (each rewrites it): one at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _held = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = env!("CARGO_MANIFEST_DIR");
    let target = target_dir().join(format!("compat-{against:?}-{api:?}").to_lowercase());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // A debug build: the guests here are short, and 12 builds must stay quick.
    cmd.args(["build", "--manifest-path"])
        .arg(format!("{root}/tests/compat/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    cmd.args(["--no-default-features", "--features", api.feature()]);
    if let Against::Local = against {
        cmd.arg("--config")
            .arg(format!("patch.crates-io.qemu-plugin.path=\"{root}\""));
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build tests/compat: {e}"));
    assert!(
        out.status.success(),
        "building tests/compat against {against:?} ({api:?}) failed (the first build needs \
         crates.io to fetch qemu-plugin 10.1.0-v2): {cmd:?}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let so = target.join("debug/libcompat_plugin.so");
    assert!(so.is_file(), "{} was not produced", so.display());
    so
}

/// The fields of the `compat[tag]: k v k v ...` line, by name.
fn compat_line(log: &str, tag: &str) -> BTreeMap<String, String> {
    let prefix = format!("compat[{tag}]: ");
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in the plugin log:\n{log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len().is_multiple_of(2), "odd line {line:?}");
    words
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect()
}

fn count(fields: &BTreeMap<String, String>, key: &str) -> u64 {
    fields[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?}", fields[key]))
}

/// Builds the pair for `api`, loads both builds and bb.c into one run of `guest`, and
/// checks that the two builds report the same numbers, and bb.c's instruction and block
/// counts. Returns this crate's build's fields.
fn pair_agrees(api: Api, guest: &str, args: &[&str]) -> BTreeMap<String, String> {
    let seed = build_compat(Against::Seed, api);
    let local = build_compat(Against::Local, api);
    let q = api.user_qemu();
    let r = run_user_on(
        q,
        &format!("compat-{api:?}").to_lowercase(),
        &[
            Plugin::new(seed, &["tag=seed"]),
            Plugin::new(local, &["tag=local"]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
        ],
        guest,
        args,
    );
    r.assert_success();
    let (s, l) = (compat_line(&r.log, "seed"), compat_line(&r.log, "local"));
    eprintln!("compat {api:?}: seed {s:?}");
    assert_eq!(s, l, "the two builds disagree\n{}", r.describe());
    let bb = parse_bb(&r.log);
    // QEMU 7.2's bb.c counts 4 more instructions than a count per instruction on these
    // guests (see qemu_agreement's `assert_bb_agrees`); 10.2's counts the same.
    let insns = count(&l, "insns");
    match q {
        UserQemu::V10_2 | UserQemu::Aarch64 | UserQemu::Riscv64 => {
            assert_eq!(insns, bb.total_insns, "{}", r.describe())
        }
        UserQemu::V7_2 => assert!(
            bb.total_insns >= insns && bb.total_insns - insns <= 4,
            "{}",
            r.describe()
        ),
    }
    assert_eq!(count(&l, "blocks"), bb.total_bbs, "{}", r.describe());
    assert_eq!(count(&l, "tb_first"), bb.total_bbs, "{}", r.describe());
    l
}

/// API v5 in qemu-x86_64 10.2, on a deterministic guest.
#[test]
fn compat_plugin_behaves_the_same_built_against_either_crate_user_mode() {
    let l = pair_agrees(Api::V5, "compute", &["40"]);
    assert!(count(&l, "reads") > 0 && count(&l, "writes") > 0, "{l:?}");
    assert!(count(&l, "syscalls") > 0 && count(&l, "regs") > 0, "{l:?}");
    assert_ne!(l["entry"], "0x0", "{l:?}");
}

/// API v4: the same pair built for plugin API v4, loaded into qemu-x86_64 10.2 (which
/// still accepts API v4 plugins). (A system-mode boot with two builds of this plugin,
/// which takes the 10.1.0-v2 surface's global lock at every translation and a closure
/// lock at every instruction and memory access, does not finish a boot of 4 vCPUs on
/// this 2-CPU machine within the harness's timeout.)
#[test]
fn compat_plugin_behaves_the_same_built_against_either_crate_api_v4() {
    let l = pair_agrees(Api::V4, "blocks", &[]);
    assert!(count(&l, "reads") > 0, "{l:?}");
}

/// APIs 0, 1 and 3, as 10.1.0-v2's users build them (`cfg(feature = ...)` around what
/// an API lacks): each pair built for API 0 and 1 runs in qemu-x86_64 7.2, for API 3 in
/// qemu-x86_64 10.2 (which still loads it), and must agree as above.
#[test]
fn compat_plugin_behaves_the_same_built_against_either_crate_apis_0_1_3() {
    for api in [Api::V0, Api::V1, Api::V3] {
        let l = pair_agrees(api, "compute", &["40"]);
        assert!(
            count(&l, "reads") > 0 && count(&l, "syscalls") > 0,
            "{api:?}: {l:?}"
        );
        if api != Api::V0 {
            assert_ne!(l["entry"], "0x0", "{api:?}: {l:?}");
        }
    }
}

/// API 2 (QEMU 9.0): the plugin builds against either crate, but QEMU 9.1 changed
/// `qemu_plugin_insn_data`'s parameters while still loading API-2 plugins, and no QEMU
/// 9.0 can be had here, so the API-2 builds run in qemu-x86_64 10.2. There the
/// 10.1.0-v2 build crashes QEMU (it calls the function the API-2 way; "QEMU internal
/// SIGSEGV"), while this crate's asks which API QEMU speaks and calls it that way: its
/// build runs alone and matches bb.c.
#[test]
fn compat_plugin_built_for_api_2_runs_in_qemu_10_2() {
    let seed = build_compat(Against::Seed, Api::V2);
    let local = build_compat(Against::Local, Api::V2);
    let q = Api::V2.user_qemu();
    let r = run_user_on(
        q,
        "compat-v2-local",
        &[
            Plugin::new(local, &["tag=local"]),
            Plugin::new(q.ref_plugin("bb"), &["inline=on"]),
        ],
        "compute",
        &["40"],
    );
    r.assert_success();
    let l = compat_line(&r.log, "local");
    let bb = parse_bb(&r.log);
    assert_eq!(count(&l, "insns"), bb.total_insns, "{}", r.describe());
    assert_eq!(count(&l, "blocks"), bb.total_bbs, "{}", r.describe());
    assert!(count(&l, "bytes") > 0, "instruction bytes were read: {l:?}");
    let s = run_user_on(
        q,
        "compat-v2-seed",
        &[Plugin::new(seed, &["tag=seed"])],
        "compute",
        &["40"],
    );
    eprintln!(
        "API 2 in QEMU 10.2: this crate's build {:?}; 10.1.0-v2's build {:?} ({})",
        r.status,
        s.status,
        s.stderr.trim()
    );
}
