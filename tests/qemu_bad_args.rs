//! Bad plugin arguments under real qemu-x86_64, for every argument of every example.
//! Each argument gets the cases that apply to its type: an unknown key, a missing value,
//! a wrong type, an out-of-range number, an empty string, or a path that does not exist,
//! is not a directory or is not writable. Every case must be refused at install: exit
//! code 1, QEMU's "Could not load plugin", the guest not run, no panic anywhere, and
//! exactly one line from the plugin, naming the key and (where there is one) the value.
//!
//! A missing value is `key=` here. A bare `key` cannot reach a plugin from QEMU's command
//! line: QEMU's option parser turns it into `key=on` (see `bare_flag_arrives_as_on` in
//! `qemu_failures.rs`). So bare keys appear below only where `on` is itself a bad value,
//! which is how a user who forgets the value meets it. The parser's own handling of a key
//! without `=` is unit-tested in `src/install/args.rs`.

mod common;

use std::fs;

use common::*;

/// One refused run: the example, its arguments, and the strings its one line must hold.
struct Case {
    plugin: &'static str,
    args: Vec<String>,
    named: Vec<String>,
}

fn case(plugin: &'static str, args: &[&str], named: &[&str]) -> Case {
    Case {
        plugin,
        args: args.iter().map(|s| s.to_string()).collect(),
        named: named.iter().map(|s| s.to_string()).collect(),
    }
}

/// What QEMU itself prints on stderr: its own messages are prefixed with its name, and
/// its warning about a bare `key` has a second line `Please use key=on instead`.
fn from_qemu(line: &str) -> bool {
    line.starts_with("qemu-x86_64: ") || line.starts_with("Please use ")
}

/// Everything wrong with one run, as lines of a report (empty if the case passed).
fn problems(c: &Case, r: &Run) -> Vec<String> {
    let mut bad = Vec::new();
    if r.status.code() != Some(1) {
        bad.push(format!("exit status {:?}, expected code 1", r.status));
    }
    if !r.stderr.contains("Could not load plugin") {
        bad.push("no \"Could not load plugin\" on stderr".into());
    }
    if r.stdout.contains("compute:") {
        bad.push("the guest ran".into());
    }
    let all = format!("{}\n{}\n{}", r.stdout, r.stderr, r.log);
    // Rust's default panic hook says "panicked"; a panic the crate catches at install is
    // reported as "... panic: ...".
    if all.contains("panicked") || all.contains("panic:") {
        bad.push("a panic was reported".into());
    }
    // The plugin's own lines: stderr without QEMU's, plus anything in the plugin log
    // (qemu_plugin_outs), where nothing should be at install.
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !from_qemu(l))
        .chain(r.log.lines().filter(|l| !l.trim().is_empty()))
        .collect();
    match lines[..] {
        [line] => {
            if !line.starts_with(&format!("{}: ", c.plugin)) {
                bad.push(format!("the line does not start with `{}: `", c.plugin));
            }
            for word in &c.named {
                if !line.contains(word.as_str()) {
                    bad.push(format!("the line does not name {word:?}"));
                }
            }
        }
        _ => bad.push(format!(
            "{} lines from the plugin, expected exactly 1: {lines:#?}",
            lines.len()
        )),
    }
    bad
}

#[test]
fn every_bad_argument_of_every_example_is_refused_with_one_line() {
    // Files the path arguments point at, in a fresh directory of this run.
    let fx = run_dir("bad-args-fixtures");
    let out_dir = fx.join("out");
    fs::create_dir(&out_dir).unwrap();
    let file = fx.join("regular-file");
    fs::write(&file, "not a directory\n").unwrap();
    let range = fx.join("range.cfg");
    fs::write(&range, "401000 402000\n").unwrap();
    let garbage = fx.join("garbage.cfg");
    fs::write(&garbage, "not hex at all\n").unwrap();
    let reversed = fx.join("reversed.cfg");
    fs::write(&reversed, "2000 1000\n").unwrap();
    let (file, range, garbage, reversed) = (
        file.display().to_string(),
        range.display().to_string(),
        garbage.display().to_string(),
        reversed.display().to_string(),
    );
    let dir_ok = format!("dir={}", out_dir.display());
    let config_ok = format!("config={range}");
    let missing = "/nonexistent/qemu-plugin-rs/no-such-path";

    let mut cases = vec![
        // ------------------------------------------------ icount: inline, check, events
        case("icount", &["no_such_key=1"], &["`no_such_key`", "unknown"]),
        // Bare, so QEMU passes `bogus=on`. (A bare key starting with `no` is QEMU's
        // shorthand for `off`: `no_such_key` arrives as `_such_key=off`.)
        case("icount", &["bogus"], &["`bogus`", "unknown"]),
        case(
            "icount",
            &["check=on", "check=off"],
            &["`check`", "more than once"],
        ),
        case("icount", &["=on"], &["`=on`", "no key"]),
        // ------------------------------------------------ mem: inline, track
        case("mem", &["bogus_option=rw"], &["`bogus_option`", "unknown"]),
        case("mem", &["inline=maybe"], &["`inline`", "`maybe`", "on/off"]),
        case("mem", &["inline="], &["`inline`", "empty value"]),
        case("mem", &["track=x"], &["`track`", "`x`", "one of r, w, rw"]),
        case(
            "mem",
            &["track=RW"],
            &["`track`", "`RW`", "one of r, w, rw"],
        ),
        case("mem", &["track="], &["`track`", "empty value", "one of"]),
        case("mem", &["track"], &["`track`", "`on`", "one of"]),
        // ------------------------------------------------ hotblocks, syscalls: no arguments
        case("hotblocks", &["x=1"], &["`x`", "unknown", "none"]),
        case("hotblocks", &["x="], &["`x`", "unknown"]),
        case("hotblocks", &["verbose"], &["`verbose`", "unknown"]),
        case("syscalls", &["x=1"], &["`x`", "unknown", "none"]),
        case("syscalls", &["x="], &["`x`", "unknown"]),
        case("syscalls", &["verbose"], &["`verbose`", "unknown"]),
        // ------------------------------------------------ trace: dir (required), every
        case("trace", &["bogus=1", &dir_ok], &["`bogus`", "unknown"]),
        case("trace", &["every=5"], &["`dir`", "missing"]),
        case("trace", &["dir="], &["`dir`", "empty value"]),
        case("trace", &["dir"], &["`dir`", "`on`", "nothing exists"]),
        case(
            "trace",
            &[&format!("dir={missing}")],
            &["`dir`", missing, "nothing exists"],
        ),
        case(
            "trace",
            &[&format!("dir={file}")],
            &["`dir`", &file, "not a directory"],
        ),
        // Not writable. The tests run as root, to whom a chmod 0555 directory is still
        // writable, so these are directories no one can create a file in: procfs refuses
        // new files in /proc (ENOENT) and sysfs in /sys (EACCES), whatever the mode bits.
        case("trace", &["dir=/proc"], &["`dir`", "`/proc`", "writable"]),
        case("trace", &["dir=/sys"], &["`dir`", "`/sys`", "writable"]),
        // ------------------------------------------------ reload: config (required), interval
        case("reload", &["bogus=1", &config_ok], &["`bogus`", "unknown"]),
        case("reload", &["interval=5"], &["`config`", "missing"]),
        case("reload", &["config="], &["`config`", "empty value"]),
        case(
            "reload",
            &["config"],
            &["`config`", "`on`", "reading it failed"],
        ),
        case(
            "reload",
            &[&format!("config={missing}")],
            &["`config`", missing, "reading it failed"],
        ),
        case(
            "reload",
            &[&format!("config={}", fx.display())],
            &["`config`", &fx.display().to_string(), "reading it failed"],
        ),
        case(
            "reload",
            &[&format!("config={garbage}")],
            &["`config`", &garbage, "two hex addresses"],
        ),
        case(
            "reload",
            &[&format!("config={reversed}")],
            &["`config`", &reversed, "START <= END"],
        ),
        // ------------------------------------------------ tiny (10.1 style): exec
        case("tiny", &["bogus=1"], &["`bogus`", "unknown", "exec"]),
        case("tiny", &["exce=on"], &["`exce`", "unknown", "exec"]),
        // ------------------------------------------------ icount_mutex (10.1 style): none
        case("icount_mutex", &["x=1"], &["`x`", "unknown", "none"]),
        case("icount_mutex", &["verbose"], &["`verbose`", "unknown"]),
        // ------------------------------------------------ panicky: at
        case("panicky", &["bogus=1"], &["`bogus`", "unknown"]),
        // ------------------------------------------------ regs: at, names
        case("regs", &["names=rip"], &["`at`", "missing"]),
        case(
            "regs",
            &["at=401000", "names=rip"],
            &["`at`", "`401000`", "0x"],
        ),
        case("regs", &["at=0x401000"], &["`names`", "missing"]),
        // ---------------------------------- QEMU's contrib plugins, rewritten (C spellings)
        case("traps", &["x=1"], &["`x`", "unknown", "none"]),
        // drcov.c and traps.c ignore arguments they do not know; the rewrites refuse them.
        case("drcov", &["out=x"], &["`out`", "unknown", "filename"]),
        case("drcov", &["filename="], &["`filename`", "can be created"]),
        case(
            "drcov",
            &[&format!("filename={missing}")],
            &["`filename`", missing, "can be created"],
        ),
        case(
            "hotpages",
            &["sortby=x"],
            &["`sortby`", "`x`", "reads, writes or address"],
        ),
        case(
            "hotpages",
            &["pagesize=3"],
            &["`pagesize`", "`3`", "power of two"],
        ),
        case("hotpages", &["io=maybe"], &["`io`", "`maybe`"]),
        case(
            "howvec",
            &["count=nosuch"],
            &["`count`", "`nosuch`", "unclas"],
        ),
        case(
            "howvec",
            &["inline=maybe"],
            &["`inline`", "`maybe`", "on/off"],
        ),
        case(
            "howvec",
            &["verbose=on", "verbose=off"],
            &["`verbose`", "more than once"],
        ),
        case(
            "execlog",
            &["afilter=zz"],
            &["`afilter`", "`zz`", "hexadecimal"],
        ),
        case("execlog", &["rdisas=maybe"], &["`rdisas`", "`maybe`"]),
        case(
            "execlog",
            &["filter=mov"],
            &["`filter`", "unknown", "ifilter"],
        ),
        case(
            "cflow",
            &["sort=x"],
            &["`sort`", "`x`", "hottest, early or exceptions"],
        ),
        case(
            "cache",
            &["dcachesize=1000"],
            &["`dcachesize`", "divisible by block size"],
        ),
        case(
            "cache",
            &["l2assoc=3"],
            &["`l2cachesize`", "divisible by set size"],
        ),
        case(
            "cache",
            &["dblksize=abc"],
            &["`dblksize`", "`abc`", "whole number"],
        ),
        case(
            "cache",
            &["evict=mru"],
            &["`evict`", "`mru`", "lru, fifo, rand"],
        ),
        case("cache", &["cores=0"], &["`cores`", "`0`", "1 to 4096"]),
        case("cache", &["batch=0"], &["`batch`", "`0`", "1 to 4096"]),
        case("bbv", &["interval=100"], &["`outfile`", "missing"]),
        case(
            "bbv",
            &["outfile=/tmp/x", "interval=0"],
            &["`interval`", "`0`"],
        ),
        case(
            "bbv",
            &["outfile=/tmp/x", "inline_blocks=40000"],
            &["`inline_blocks`", "`40000`", "0 to 32768"],
        ),
        case(
            "bbv",
            &[&format!("outfile={missing}/p")],
            &["`outfile`", "can be created"],
        ),
        case(
            "stoptrigger",
            &["bogus=1"],
            &["`bogus`", "unknown", "icount, addr"],
        ),
        case("stoptrigger", &["addr="], &["`addr`", "an address"]),
        case(
            "stoptrigger",
            &["icount=0"],
            &["`icount`", "`0`", "positive"],
        ),
        case(
            "stoptrigger",
            &["icount=-5"],
            &["`icount`", "`-5`", "positive"],
        ),
        case(
            "stoptrigger",
            &["icount=10:abc"],
            &["`icount`", "`10:abc`", "EXIT_CODE"],
        ),
        case(
            "stoptrigger",
            &["addr=zz"],
            &["`addr`", "`zz`", "an address"],
        ),
        case("ips", &["bogus=1"], &["`bogus`", "unknown", "ips, ipq"]),
        case("ips", &["ips=abc"], &["`ips`", "`abc`", "k, m or g"]),
        case("ips", &["ips=10x"], &["`ips`", "`10x`", "k, m or g"]),
        case("ips", &["ips=0"], &["`ips`", "`0`", "positive"]),
        case("ips", &["ips=5"], &["`ips`", "`5`", "at least 10"]),
        case("ips", &["ipq=0"], &["`ipq`", "`0`"]),
        case("lockstep", &["verbose=on"], &["`sockpath`", "missing"]),
        case(
            "lockstep",
            &["sockpath=/tmp", "verbose=maybe"],
            &["`verbose`", "`maybe`"],
        ),
        case(
            "lockstep",
            &[&format!("sockpath={missing}/sock")],
            &["`sockpath`", "Unix socket"],
        ),
        case(
            "uftrace",
            &["trace-privilege-level=maybe"],
            &["`trace-privilege-level`", "`maybe`"],
        ),
        case(
            "uftrace",
            &["bogus=1"],
            &["`bogus`", "unknown", "trace-privilege-level"],
        ),
    ];

    // Every boolean: a word that is not one, an integer, and an empty value.
    for (plugin, key) in [
        ("icount", "inline"),
        ("icount", "check"),
        ("icount", "events"),
        ("tiny", "exec"),
    ] {
        let k = format!("`{key}`");
        for (value, shown) in [("maybe", "`maybe`"), ("2", "`2`"), ("", "empty value")] {
            cases.push(case(plugin, &[&format!("{key}={value}")], &[&k, shown]));
        }
    }

    // Every integer: wrong types, zero, negative, past its maximum and past u64, empty,
    // and bare (`on`). Each has its required companion argument, valid, so the refusal
    // can only be about the integer.
    let too_big = "99999999999999999999999";
    for (plugin, key, companion, range) in [
        (
            "trace",
            "every",
            Some(dir_ok.as_str()),
            "from 1 to 18446744073709551615",
        ),
        (
            "reload",
            "interval",
            Some(config_ok.as_str()),
            "from 1 to 3600000",
        ),
        ("panicky", "at", None, "from 1 to 18446744073709551615"),
    ] {
        let k = format!("`{key}`");
        let mut values = vec!["abc", "1.5", "0x10", "0", "-1", too_big, "", "on"];
        if key == "interval" {
            values.push("3600001");
        }
        for value in values {
            let arg = if value == "on" {
                key.to_string() // bare: QEMU passes `key=on`
            } else {
                format!("{key}={value}")
            };
            let shown = if value.is_empty() {
                "empty value".to_string()
            } else {
                format!("`{value}`")
            };
            let mut args = vec![arg.as_str()];
            args.extend(companion);
            cases.push(case(plugin, &args, &[&k, &shown, range]));
        }
    }

    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let r = run_user(
            &format!("bad-args-{i}-{}", c.plugin),
            &[Plugin::new(example(Api::V5, c.plugin), &args)],
            "compute",
            &["1"],
        );
        let bad = problems(c, &r);
        let line = r
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty() && !from_qemu(l))
            .unwrap_or("<no line from the plugin>");
        eprintln!(
            "{:<12} {:<50} exit {:?} {:.2?}: {line}",
            c.plugin,
            c.args.join(","),
            r.status.code(),
            r.elapsed
        );
        if !bad.is_empty() {
            failures.push(format!(
                "{} {:?}:\n  {}\n  command: {}\n  stderr: {}",
                c.plugin,
                c.args,
                bad.join("\n  "),
                r.cmdline,
                r.stderr
                    .lines()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join("\n          ")
            ));
        }
    }
    eprintln!("{} cases, {} failed", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} bad-argument cases were not refused with one clear line:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
