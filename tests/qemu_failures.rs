//! Failure modes under qemu-x86_64: bad plugin arguments make QEMU refuse the plugin
//! with a message naming the argument, and a panic inside a callback is contained: the
//! plugin is uninstalled and the guest runs to completion.

mod common;

use common::*;

/// Asserts that QEMU refused to load `plugin` with `args`, exited 1 without running the
/// guest, and that its output names every string in `named` (the plugin's own path is
/// removed first, so the path cannot satisfy the check).
fn assert_refused(plugin: &str, args: &[&str], named: &[&str]) {
    let path = example(Api::V5, plugin);
    let label = format!("refuse-{plugin}-{}", args.join("_").replace('/', "_"));
    let r = run_user(
        &label,
        &[Plugin::new(path.clone(), args)],
        "compute",
        &["1"],
    );
    assert_eq!(
        r.status.code(),
        Some(1),
        "{plugin} {args:?} should be refused\n{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("Could not load plugin"),
        "{}",
        r.describe()
    );
    assert!(
        !r.stdout.contains("compute:"),
        "the guest ran\n{}",
        r.describe()
    );
    let text =
        format!("{}\n{}", r.stderr, r.stdout).replace(&path.display().to_string(), "<plugin>");
    for word in named {
        assert!(
            text.contains(word),
            "{plugin} {args:?}: the message does not name {word:?}\n{}",
            r.describe()
        );
    }
}

#[test]
fn unknown_argument_is_refused() {
    assert_refused("icount", &["no_such_key=1"], &["no_such_key"]);
    assert_refused("mem", &["inline=on", "bogus_option=rw"], &["bogus_option"]);
}

/// A plugin argument without `=` cannot reach a plugin from QEMU's command line: QEMU's
/// option parser (plugins/loader.c, `plugin_add`) turns `path,check` into `check=on`
/// (with a deprecation warning) before calling `qemu_plugin_install`. So the real-QEMU
/// check is that this short form is accepted and means `on`; the parser's own handling
/// of a missing `=` can only be tested without QEMU.
#[test]
fn bare_flag_arrives_as_on() {
    let r = run_user(
        "bare-flag",
        &[Plugin::new(example(Api::V5, "icount"), &["check"])],
        "compute",
        &["1"],
    );
    r.assert_success();
    assert!(
        r.stderr.contains("check=on"),
        "QEMU should rewrite `check` to `check=on`\n{}",
        r.describe()
    );
    assert!(icount_mismatches(&r.log).is_empty(), "{}", r.describe());
    let counts = parse_insn(&r.log);
    assert!(counts.total > 0, "{}", r.describe());
}

#[test]
fn bad_boolean_is_refused() {
    assert_refused("icount", &["inline=maybe"], &["inline", "maybe"]);
    assert_refused("mem", &["inline=2"], &["inline"]);
    // An empty value is not a boolean either.
    assert_refused("icount", &["check="], &["check"]);
}

#[test]
fn trace_without_usable_dir_is_refused() {
    assert_refused("trace", &[], &["dir"]);
    let missing = "/nonexistent/qemu-plugin-rs/trace-dir";
    assert_refused("trace", &[&format!("dir={missing}")], &[missing]);
    // A regular file where a directory is expected.
    let file = run_dir("trace-not-a-dir").join("file");
    std::fs::write(&file, "not a directory").unwrap();
    let file = file.display().to_string();
    assert_refused("trace", &[&format!("dir={file}")], &[&file]);
}

fn panicky_completes(guest: &str, gargs: &[&str], at: &str) {
    let plain = run_user(&format!("panicky-plain-{guest}"), &[], guest, gargs);
    plain.assert_success();
    let r = run_user(
        &format!("panicky-{guest}-{at}"),
        &[Plugin::new(
            example(Api::V5, "panicky"),
            &[&format!("at={at}")],
        )],
        guest,
        gargs,
    );
    eprintln!(
        "panicky {guest} at={at}: status {:?}, log {:?}",
        r.status,
        r.log.lines().take(3).collect::<Vec<_>>()
    );
    r.assert_success();
    assert!(!plain.stdout.is_empty());
    assert_eq!(
        r.stdout,
        plain.stdout,
        "the guest's own output differs from a run without plugin\n{}",
        r.describe()
    );
    assert!(
        r.log.contains("panicky: deliberate panic"),
        "the panic message is not in the plugin log\n{}",
        r.describe()
    );
}

#[test]
fn panic_in_callback_is_contained() {
    panicky_completes("compute", &["40"], "1");
    panicky_completes("compute", &["40"], "100000");
}

#[test]
fn panic_in_callback_with_threads_is_contained() {
    // panicky counts executions per vCPU; every worker passes 50,000 block executions
    // at about the same time, so several vCPUs may panic concurrently.
    panicky_completes("threads", &["4", "200000"], "50000");
}
