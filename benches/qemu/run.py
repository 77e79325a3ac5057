#!/usr/bin/env python3
"""Real-QEMU benchmark of per-instruction counting: this crate against QEMU's own C.

Runs a compute-bound guest under qemu-x86_64 (user mode, API v5) with 1 and 2 threads,
and a Linux guest under qemu-system-x86_64 with MTTCG (system mode: QEMU 10.0, API v4;
and QEMU 11.1, API v7, in configurations a, d, e and h only), in these configurations,
interleaved round-robin so that drift cancels:

  a  no plugin
  b  QEMU's tests/tcg/plugins/insn.c, exec callback (qemu_plugin_u64_add per event)
  c  QEMU's insn.c, inline=on (inline scoreboard add)
  d  benches/qemu/cref.c: C callback adding 1 to a 128-byte padded static per-vCPU slot
  e  this crate's `icount` example, per-instruction on_exec (PerVcpu runtime)
  f  this crate's `icount`, inline=on
  g  `icount_mutex`: the 10.1.0-v2-style surface, counts behind one global Mutex

Prints median wall times, ratios against (d) and (f)/(c), checks that every plugin saw
the same instruction count (user mode: the worker threads' counts, which are
deterministic; the main thread's count varies a little with pthread_join's futex
retries), writes docs/performance-ratios.svg and target/qemu-bench/results.json.
Exits 1 if the user-mode worker counts disagree, 2 on a setup failure.

Usage: python3 benches/qemu/run.py [--reps N] [--system-reps N] [--api7-reps N]
       [--iterations N] [--no-user] [--no-system] [--no-api7] [--no-build] [--svg PATH]
       [--candidate PATH.so] [--any] [--arch x86_64|aarch64|riscv64]
Python 3 standard library only. Needs scripts/provision-qemu.sh to have run.
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "benches" / "qemu"
OUT = ROOT / "target" / "qemu-bench"
ENV_FILE = Path.home() / ".cache" / "qemu-plugin-rs" / "env"

CONFIGS = ["a", "b", "c", "d", "e", "f", "g", "h"]
NAMES = {
    "a": "no plugin",
    "b": "insn.c, callback",
    "c": "insn.c, inline=on",
    "d": "C reference callback (cref.c)",
    "h": "cref.c with the runtime's two checks (-DCREF_CHECKED)",
    "e": "icount, on_exec (PerVcpu)",
    "f": "icount, inline=on",
    "g": "icount_mutex (10.1-style, global Mutex)",
    "x": "candidate icount (--candidate), on_exec",
    "y": "icount in a qemu-plugin-any bundle (--any; QEMU 10.2 gets its API-5 build)",
}
# Configurations timed only when asked for.
EXTRA = ["x", "y"]


def die(msg):
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load_env():
    env = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip('"')
    for k in list(env):
        env[k] = os.environ.get(k, env[k])
    need = ["QEMU_USER", "QEMU_SRC", "QEMU_REF_PLUGINS", "QEMU_SYSTEM", "GUEST_KERNEL", "GUEST_INITRD"]
    missing = [k for k in need if not env.get(k)]
    if missing:
        die(f"missing {missing}: run scripts/provision-qemu.sh (reads {ENV_FILE})")
    return env


def sh(cmd, **kw):
    print("+ " + " ".join(shlex.quote(str(c)) for c in cmd), file=sys.stderr)
    r = subprocess.run([str(c) for c in cmd], **kw)
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {cmd[0]}")
    return r


def glib_cflags():
    r = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True)
    if r.returncode != 0:
        die("pkg-config glib-2.0 failed (apt-get install libglib2.0-dev)")
    return r.stdout.split()


# The configurations timed on QEMU 11.1 (API 7): (g) cannot finish a boot in time there
# either, and QEMU's insn.c cannot be built for API 7 here (no QEMU 11.1 source).
API7_CONFIGS = ["a", "d", "e", "h"]


# --arch: the user-mode guest's architecture. The plugins are host code, so the same
# files serve every guest; QEMU, the reference insn.c and the spin guest change.
ARCH_ENV = {"aarch64": ("QEMU_USER_AARCH64", "CC_AARCH64"), "riscv64": ("QEMU_USER_RISCV64", "CC_RISCV64")}


def use_arch(env, p, arch, no_build):
    """Points user mode at `arch`'s QEMU 10.2, its build of insn.c and a cross-built spin."""
    if arch == "x86_64":
        return
    qemu_key, cc_key = ARCH_ENV[arch]
    for k in (qemu_key, cc_key, "QEMU_REF_PLUGINS_ARCH"):
        if not env.get(k):
            die(f"{k} missing from {ENV_FILE}: run scripts/provision-qemu.sh")
    env["QEMU_USER"] = env[qemu_key]
    p["insn5"] = Path(env["QEMU_REF_PLUGINS_ARCH"]) / "libinsn.so"
    p["spin"] = OUT / f"spin-{arch}"
    if not no_build:
        sh([env[cc_key], "-O1", "-static", "-pthread", "-o", p["spin"], HERE / "spin.c"])


def build(env, want_system, no_build, want_api7=False):
    """Builds the guest, the C plugins and the crate's examples; returns their paths."""
    OUT.mkdir(parents=True, exist_ok=True)
    inc = ["-I" + str(Path(env["QEMU_SRC"]) / "include" / "qemu")] + glib_cflags()
    p = {
        "spin": OUT / "spin",
        "cref5": OUT / "libcref-v5.so",
        "cref4": OUT / "libcref-v4.so",
        "crefc5": OUT / "libcref-checked-v5.so",
        "crefc4": OUT / "libcref-checked-v4.so",
        "insn4": OUT / "libinsn-v4.so",
        "insn5": Path(env["QEMU_REF_PLUGINS"]) / "libinsn.so",
        "ex5": ROOT / "target" / "api-v5" / "release" / "examples",
        "ex4": ROOT / "target" / "api-v4" / "release" / "examples",
        "cref7": OUT / "libcref-v7.so",
        "crefc7": OUT / "libcref-checked-v7.so",
        "ex7": ROOT / "target" / "api-v7" / "release" / "examples",
    }
    if no_build:
        return p
    sh(["gcc", "-O1", "-static", "-pthread", "-o", p["spin"], HERE / "spin.c"])
    cc = ["gcc", "-shared", "-fPIC", "-O2", "-Wall"] + inc
    sh(cc + ["-o", p["cref5"], HERE / "cref.c"])
    sh(cc + ["-DCREF_CHECKED", "-o", p["crefc5"], HERE / "cref.c"])
    sh(["cargo", "build", "--quiet", "--release", "--examples", "--target-dir", "target/api-v5"], cwd=ROOT)
    if want_system:
        # API v4 from the 10.2 (v5) header: export version 4 and use only v4 functions;
        # check_v4_symbols() verifies that QEMU 10.0 exports every symbol they import.
        sh(cc + ["-DCREF_API=4", "-o", p["cref4"], HERE / "cref.c"])
        sh(cc + ["-DCREF_API=4", "-DCREF_CHECKED", "-o", p["crefc4"], HERE / "cref.c"])
        insn_c = Path(env["QEMU_SRC"]) / "tests" / "tcg" / "plugins" / "insn.c"
        sh(cc + ["-DINSN_C=\"" + str(insn_c) + "\"", "-o", p["insn4"], HERE / "insn_v4.c"])
        sh(["cargo", "build", "--quiet", "--release", "--examples", "--no-default-features",
            "--features", "plugin-api-v4", "--target-dir", "target/api-v4"], cwd=ROOT)
    if want_api7:
        # API v7: the declarations of benches/qemu/qemu-plugin-api7.h, not QEMU's header.
        cc7 = ["gcc", "-shared", "-fPIC", "-O2", "-Wall"] + glib_cflags() + ["-DCREF_API=7"]
        sh(cc7 + ["-o", p["cref7"], HERE / "cref.c"])
        sh(cc7 + ["-DCREF_CHECKED", "-o", p["crefc7"], HERE / "cref.c"])
        sh(["cargo", "build", "--quiet", "--release", "--examples", "--no-default-features",
            "--features", "plugin-api-v7", "--target-dir", "target/api-v7"], cwd=ROOT)
    return p


def build_any(ex5, no_build):
    """Bundles icount's builds for APIs 1, 4, 5 and 7 (the API-5 one is (e)'s own file)."""
    out = OUT / "libicount-any.so"
    if no_build:
        return out
    builds = []
    for v in (1, 4, 7):
        sh(["cargo", "build", "--quiet", "--release", "--example", "icount", "--no-default-features",
            "--features", f"plugin-api-v{v}", "--target-dir", f"target/api-v{v}"], cwd=ROOT)
        builds.append(ROOT / "target" / f"api-v{v}" / "release" / "examples" / "libicount.so")
    builds.insert(2, ex5 / "libicount.so")
    sh(["cargo", "build", "--quiet", "--release", "-p", "qemu-plugin-any", "--target-dir", "target/any-loader"],
       cwd=ROOT)
    sh([ROOT / "target" / "any-loader" / "release" / "qemu-plugin-bundle", "-o", out] + builds)
    return out


def dyn_symbols(path, undefined):
    args = ["nm", "-D"] + (["--undefined-only"] if undefined else ["--defined-only"]) + [str(path)]
    r = subprocess.run(args, capture_output=True, text=True)
    return {line.split()[-1] for line in r.stdout.splitlines() if "qemu_plugin_" in line}


def check_v4_symbols(env, paths):
    """Every qemu_plugin_* symbol a v4 plugin imports must be exported by qemu-system 10.0."""
    have = dyn_symbols(env["QEMU_SYSTEM"], undefined=False)
    problems = {}
    for name in paths:
        missing = sorted(dyn_symbols(name, undefined=True) - have)
        if missing:
            problems[str(name)] = missing
    return problems


LINE_CPU = re.compile(r"^cpu (\d+) insns: (\d+)$", re.M)
LINE_TOTAL = re.compile(r"^total insns: (\d+)$", re.M)


def parse_counts(text):
    cpus = {int(i): int(n) for i, n in LINE_CPU.findall(text)}
    tot = LINE_TOTAL.findall(text)
    return cpus, (int(tot[-1]) if tot else None)


def plugin_args(cfg, mode, p):
    """`mode`: "user" (API v5), "system" (API v4) or "system7" (API v7)."""
    ex = {"user": p["ex5"], "system": p["ex4"], "system7": p["ex7"]}[mode]
    insn = p["insn5"] if mode == "user" else p["insn4"]
    cref = {"user": p["cref5"], "system": p["cref4"], "system7": p["cref7"]}[mode]
    crefc = {"user": p["crefc5"], "system": p["crefc4"], "system7": p["crefc7"]}[mode]
    return {
        "a": [],
        "b": ["-plugin", f"{insn}"],
        "c": ["-plugin", f"{insn},inline=on"],
        "d": ["-plugin", f"{cref}"],
        "e": ["-plugin", f"{ex / 'libicount.so'}"],
        "f": ["-plugin", f"{ex / 'libicount.so'},inline=on"],
        "g": ["-plugin", f"{ex / 'libicount_mutex.so'}"],
        "h": ["-plugin", f"{crefc}"],
        "x": ["-plugin", f"{p.get('candidate')}"],
        "y": ["-plugin", f"{p.get('any')}"],
    }[cfg]


# QEMU runs that did not finish within their timeout and were run again (reported).
HUNG = []


def run_once(cmd, log, timeout, retries=0):
    """Runs `cmd` once; returns (seconds, plugin log text, stdout). A run still going after
    `timeout` seconds is killed, its console output kept in `<log>.hung`, and run again
    up to `retries` times; a run that fails or hangs beyond that ends the harness."""
    if log.exists():
        log.unlink()
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        hung = log.with_name(log.name + ".hung")
        hung.write_bytes((e.stdout or b"") + b"\n--- stderr ---\n" + (e.stderr or b""))
        msg = f"no exit after {timeout} s (console output in {hung}): {' '.join(map(str, cmd))}"
        if retries <= 0:
            die(msg)
        print(f"warning: {msg}; running it again", file=sys.stderr)
        HUNG.append(f"{log.name}: {timeout} s without exiting, console in {hung.name}")
        return run_once(cmd, log, timeout, retries - 1)
    dt = time.perf_counter() - t0
    text = log.read_text(errors="replace") if log.exists() else ""
    if r.returncode != 0:
        die(f"exit {r.returncode}: {' '.join(map(str, cmd))}\n{r.stderr.decode(errors='replace')[-2000:]}\n{text[-2000:]}")
    return dt, text, r.stdout.decode(errors="replace")


def user_cmd(env, p, cfg, threads, iterations, log):
    return [env["QEMU_USER"]] + plugin_args(cfg, "user", p) + ["-d", "plugin", "-D", str(log),
                                                                str(p["spin"]), str(threads), str(iterations)]


def system_cmd(env, p, cfg, log, extra=None, api7=False):
    args = plugin_args(cfg, "system7" if api7 else "system", p)
    if extra and args:
        args[-1] += extra
    qemu = env["QEMU_SYSTEM_11"] if api7 else env["QEMU_SYSTEM"]
    return [qemu, "-M", "q35", "-smp", "4", "-m", "512", "-accel", "tcg,thread=multi",
            "-kernel", env["GUEST_KERNEL"], "-initrd", env["GUEST_INITRD"],
            "-append", "console=ttyS0 quiet panic=-1", "-nographic", "-no-reboot"] + args + \
        ["-d", "plugin", "-D", str(log)]


def interleave(label, jobs, reps, warmup):
    """jobs: {key: callable() -> (seconds, log text)}. Round-robin over keys each repetition,
    starting one key later each time; the first `warmup` repetitions are not recorded."""
    keys = list(jobs)
    times = {k: [] for k in keys}
    logs = {k: [] for k in keys}
    for rep in range(warmup + reps):
        order = keys[rep % len(keys):] + keys[:rep % len(keys)]
        t0 = time.perf_counter()
        for k in order:
            dt, text = jobs[k]()
            if rep >= warmup:
                times[k].append(dt)
                logs[k].append(text)
        tag = "warm-up" if rep < warmup else f"rep {rep - warmup + 1}/{reps}"
        print(f"[{label}] {tag} done in {time.perf_counter() - t0:.1f} s, load {os.getloadavg()[0]:.2f}",
              file=sys.stderr)
    return times, logs


def ratio(x, y):
    return x / y if y else float("nan")


def user_mode(env, p, args):
    configs = CONFIGS + [c for c, k in (("x", "candidate"), ("y", "any")) if p.get(k)]
    out = {}
    bad = []
    jobs = {}
    for threads in args.threads:
        for cfg in configs:
            log = OUT / f"user-{cfg}-{threads}.log"
            cmd = user_cmd(env, p, cfg, threads, args.iterations, log)
            jobs[(cfg, threads)] = (lambda cmd=cmd, log=log: run_once(cmd, log, 1800)[:2])
    times, logs = interleave("user", jobs, args.reps, args.warmup)
    for threads in args.threads:
        res = {}
        for cfg in configs:
            ts = times[(cfg, threads)]
            entry = {"median_s": statistics.median(ts), "times_s": ts}
            if cfg != "a":
                runs = [parse_counts(t) for t in logs[(cfg, threads)]]
                entry["totals"] = [tot for _, tot in runs]
                entry["workers"] = [sum(n for i, n in cpus.items() if i != 0) for cpus, _ in runs]
                entry["main"] = [cpus.get(0) for cpus, _ in runs]
                entry["per_cpu_last"] = runs[-1][0]
            res[cfg] = entry
        workers = {cfg: set(res[cfg]["workers"]) for cfg in configs if cfg != "a"}
        all_w = set().union(*workers.values())
        # 5 instructions a loop turn in spin.c built by gcc -O1 for x86_64; other
        # architectures' compilers make other loops.
        expected = threads * args.iterations * 5 if args.arch == "x86_64" else "n/a"
        agree = len(all_w) == 1
        if not agree:
            bad.append(f"user {threads}T: worker counts disagree: {workers}")
        d = res["d"]["median_s"]
        a = res["a"]["median_s"]
        worker_insns = next(iter(all_w)) if agree else None
        out[threads] = {
            "configs": res,
            "ratio_vs_d": {cfg: ratio(res[cfg]["median_s"], d) for cfg in configs},
            "f_over_c": ratio(res["f"]["median_s"], res["c"]["median_s"]),
            "e_over_b": ratio(res["e"]["median_s"], res["b"]["median_s"]),
            "ns_per_event": {cfg: (res[cfg]["median_s"] - a) * 1e9 / worker_insns if worker_insns else None
                             for cfg in configs if cfg != "a"},
            "worker_insns": worker_insns,
            "worker_insns_expected_approx": expected,
            "agree": agree,
        }
    if 1 in out and 2 in out:
        # Per-thread throughput at 2 threads over that at 1 thread (each thread does the
        # same work, so it is t1 / t2).
        sc = {cfg: ratio(out[1]["configs"][cfg]["median_s"], out[2]["configs"][cfg]["median_s"]) for cfg in configs}
        out["scaling"] = sc
        out["scaling_e_vs_d"] = ratio(sc["e"], sc["d"])
    return out, bad


# Seconds a boot may take before it counts as hung: the slowest configuration, (g), takes
# about 110 s on an idle 2-CPU machine.
SYSTEM_TIMEOUT = 600


def timed_boots(env, p, label, configs, reps, api7=False):
    """Boots the guest once per configuration and repetition, interleaved, after one
    untimed boot that warms the page cache; returns each configuration's median, times
    and counts, and the ratios against (d)."""
    jobs = {}
    for cfg in configs:
        log = OUT / f"{label}-{cfg}.log"
        cmd = system_cmd(env, p, cfg, log, api7=api7)
        jobs[cfg] = (lambda cmd=cmd, log=log: run_once(cmd, log, SYSTEM_TIMEOUT, 1)[:2])
    warm = OUT / f"{label}-warmup.log"
    run_once(system_cmd(env, p, "a", warm, api7=api7), warm, SYSTEM_TIMEOUT, 1)
    times, logs = interleave(label, jobs, reps, 0)
    res = {}
    for cfg in configs:
        entry = {"median_s": statistics.median(times[cfg]), "times_s": times[cfg]}
        if cfg != "a":
            runs = [parse_counts(t) for t in logs[cfg]]
            entry["totals"] = [tot for _, tot in runs]
            entry["vcpus"] = [len(cpus) for cpus, _ in runs]
        res[cfg] = entry
    d = res["d"]["median_s"]
    return {"configs": res, "ratio_vs_d": {cfg: ratio(res[cfg]["median_s"], d) for cfg in configs}}


def system_mode(env, p, args):
    out = timed_boots(env, p, "system", CONFIGS, args.system_reps)
    res = out["configs"]
    out["f_over_c"] = ratio(res["f"]["median_s"], res["c"]["median_s"])
    out["e_over_b"] = ratio(res["e"]["median_s"], res["b"]["median_s"])
    # icount's own consistency check: callback and inline counts in one run must agree.
    log = OUT / "system-check.log"
    _, text, _ = run_once(system_cmd(env, p, "e", log, ",check=on"), log, SYSTEM_TIMEOUT, 1)
    mism = [l for l in text.splitlines() if "mismatch" in l]
    out["icount_check"] = {"total": parse_counts(text)[1], "mismatches": mism}
    return out


def api7_mode(env, p, args):
    """(a), (d), (e), (h) booting the guest in qemu-system-x86_64 11.1 with plugins built
    for API 7, interleaved; every plugin must count all 4 vCPUs."""
    return timed_boots(env, p, "api7", API7_CONFIGS, args.api7_reps, api7=True)


def fmt_ratio(x):
    return f"{x:.2f}" if x == x else "-"


def user_report(L, meta, user):
    """Appends the user-mode section of the report to the lines `L`."""
    L.append(f"### User mode (qemu-{meta.get('arch', 'x86_64')}, API v5)")
    L.append("")
    hdr = "| config | " + " | ".join(f"{t} thr: median s | {t} thr: / (d) | {t} thr: ns/event" for t in meta["threads"]) + " |"
    L.append(hdr)
    L.append("|---|" + "---|---|---|" * len(meta["threads"]))
    for cfg in [c for c in CONFIGS + EXTRA if c in user[meta["threads"][0]]["configs"]]:
        row = f"| ({cfg}) {NAMES[cfg]} |"
        for t in meta["threads"]:
            u = user[t]
            ns = u["ns_per_event"].get(cfg)
            row += f" {u['configs'][cfg]['median_s']:.3f} | {fmt_ratio(u['ratio_vs_d'][cfg])} | " \
                   f"{'-' if ns is None else f'{ns:.2f}'} |"
        L.append(row)
    L.append("")
    for t in meta["threads"]:
        u = user[t]
        totals = {cfg: sorted(set(c["totals"])) for cfg, c in u["configs"].items() if cfg != "a"}
        L.append(f"- {t} thread(s): worker-thread instructions, every plugin and run: "
                 f"{u['worker_insns'] if u['agree'] else 'DISAGREE'} "
                 f"({'agree' if u['agree'] else 'MISMATCH'}; expected about {u['worker_insns_expected_approx']}); "
                 f"totals incl. main thread: " + ", ".join(f"({c}) {'/'.join(map(str, v))}" for c, v in totals.items()))
        L.append(f"  (f)/(c) = {u['f_over_c']:.3f}; (e)/(b) = {u['e_over_b']:.3f} "
                 f"((e) is {1 / u['e_over_b']:.2f}x faster than (b))"
                 + (f"; (y)/(e) = {u['ratio_vs_d']['y'] / u['ratio_vs_d']['e']:.3f}"
                    if "y" in u["ratio_vs_d"] else ""))
    if "scaling" in user:
        sc = user["scaling"]
        L.append(f"- per-thread throughput, 2 threads / 1 thread: (d) {sc['d']:.3f}, (e) {sc['e']:.3f}, "
                 f"(e)/(d) {user['scaling_e_vs_d']:.3f}; (h) {sc['h']:.3f}, (c) {sc['c']:.3f}, (f) {sc['f']:.3f}, (b) {sc['b']:.3f}, (g) {sc['g']:.3f}"
                 + "".join(f", ({c}) {sc[c]:.3f}" for c in EXTRA if c in sc))


def boots_table(L, title, configs, res):
    """Appends the table of a `timed_boots` result to the report lines `L`."""
    L.append("")
    L.append(f"### {title}")
    L.append("")
    L.append("| config | median s | / (d) | vCPUs counted | totals (not deterministic) |")
    L.append("|---|---|---|---|---|")
    for cfg in configs:
        c = res["configs"][cfg]
        tot = "-" if cfg == "a" else ", ".join(str(x) for x in c["totals"])
        vc = "-" if cfg == "a" else ", ".join(str(x) for x in c["vcpus"])
        L.append(f"| ({cfg}) {NAMES[cfg]} | {c['median_s']:.2f} | {fmt_ratio(res['ratio_vs_d'][cfg])} | {vc} | {tot} |")
    L.append("")


def report(meta, user, system, api7=None):
    L = []
    L.append(f"QEMU user {meta['qemu_user_version']}, system {meta['qemu_system_version']}; "
             f"host {meta['host_cpus']} CPUs; load (1 min) at start {meta['load_start']:.2f}, "
             f"at end {meta['load_end']:.2f}; {meta['reps']} reps + {meta['warmup']} warm-up, "
             f"{meta['iterations']} loop turns per guest thread.")
    L.append("")
    if user:
        user_report(L, meta, user)
    if system:
        boots_table(L, "System mode (qemu-system-x86_64 -smp 4, MTTCG, API v4)", CONFIGS, system)
        ck = system["icount_check"]
        L.append(f"- (f)/(c) = {system['f_over_c']:.3f}; (e)/(b) = {system['e_over_b']:.3f}; "
                 f"icount check=on run: total {ck['total']}, "
                 f"{'no callback/inline mismatch' if not ck['mismatches'] else 'MISMATCH: ' + '; '.join(ck['mismatches'])}")
    if api7:
        boots_table(L, f"System mode on QEMU {meta.get('qemu_11_version', '11.1')} "
                    "(qemu-system-x86_64 -smp 4, MTTCG, API v7)", API7_CONFIGS, api7)
        L.append(f"- (e)/(d) = {api7['ratio_vs_d']['e']:.3f}, (h)/(d) = {api7['ratio_vs_d']['h']:.3f}")
    if HUNG:
        L.append("")
        L.append("Runs killed after hanging and run again (their times are the re-runs'): " + "; ".join(HUNG))
    return "\n".join(L)


def svg(meta, user, system, path, api7=None):
    """Horizontal bars, log scale: each configuration's median time over (d)'s."""
    groups = []
    for t in meta["threads"]:
        if t in user:
            groups.append((f"user, {t} thread{'s' if t > 1 else ''}", user[t]["ratio_vs_d"]))
    if system:
        groups.append(("system, -smp 4 MTTCG", system["ratio_vs_d"]))
    if api7:
        groups.append(("system 11.1 (API 7)", api7["ratio_vs_d"]))
    colors = {"a": "#9e9e9e", "b": "#e07b39", "c": "#f2b134", "d": "#3b6ea5",
              "e": "#2e9e5b", "f": "#86c98f", "g": "#c0392b", "h": "#5d8fc9", "x": "#7d3c98", "y": "#d68910"}
    lo, hi = 0.1, 100.0
    vals = [v for _, r in groups for v in r.values() if v == v and v > 0]
    if vals:
        lo = 10 ** min(-1, int(__import__("math").floor(__import__("math").log10(min(vals)))))
        hi = 10 ** max(1, int(__import__("math").ceil(__import__("math").log10(max(vals)))))
    import math
    left, width, bar, gap = 300, 520, 14, 18
    height = 70 + sum(len(r) * bar + gap + 18 for _, r in groups) + 40
    X = lambda v: left + width * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="20" font-size="14" font-weight="bold">Per-instruction counting under QEMU: '
         f'median wall time / C reference callback (d)</text>',
         f'<text x="10" y="38" fill="#555">log scale; lower is better; dashed: 1.0 and the 1.10 target; '
         f'load at start {meta["load_start"]:.2f}</text>']
    y = 60
    top = y
    for title, r in groups:
        s.append(f'<text x="10" y="{y + 12}" font-weight="bold">{title}</text>')
        y += 18
        for cfg in [c for c in CONFIGS + EXTRA if c in r]:
            v = r[cfg]
            s.append(f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">({cfg}) {NAMES[cfg]}</text>')
            if v == v and v > 0:
                s.append(f'<rect x="{left}" y="{y}" width="{max(1.0, X(v) - left):.1f}" height="{bar - 2}" fill="{colors[cfg]}"/>')
                s.append(f'<text x="{X(v) + 4:.1f}" y="{y + bar - 3}">{v:.2f}</text>')
            y += bar
        y += gap
    for v, dash in ((1.0, "4,3"), (1.10, "2,2")):
        s.append(f'<line x1="{X(v):.1f}" y1="{top}" x2="{X(v):.1f}" y2="{y}" stroke="#333" stroke-dasharray="{dash}"/>')
    e = math.log10(lo)
    while e <= math.log10(hi) + 1e-9:
        v = 10 ** e
        s.append(f'<line x1="{X(v):.1f}" y1="{y}" x2="{X(v):.1f}" y2="{y + 5}" stroke="#333"/>')
        s.append(f'<text x="{X(v):.1f}" y="{y + 18}" text-anchor="middle">{v:g}</text>')
        e += 1
    s.append(f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#333"/>')
    s.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(s) + "\n")


def version(binary):
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    m = re.search(r"version (\S+)", r.stdout)
    return m.group(1) if m else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per configuration (user mode)")
    ap.add_argument("--system-reps", type=int, default=3, help="timed repetitions per configuration (system mode)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up repetitions")
    ap.add_argument("--iterations", type=int, default=40_000_000, help="loop turns per guest thread (5 insns each)")
    ap.add_argument("--threads", default="1,2", help="guest thread counts, comma-separated")
    ap.add_argument("--no-user", action="store_true", help="skip user mode")
    ap.add_argument("--no-system", action="store_true", help="skip system mode on QEMU 10.0")
    ap.add_argument("--no-api7", action="store_true", help="skip system mode on QEMU 11.1 (API 7)")
    ap.add_argument("--api7-reps", type=int, default=3, help="timed repetitions per configuration "
                    "(system mode on QEMU 11.1)")
    ap.add_argument("--no-build", action="store_true", help="use what was built before")
    ap.add_argument("--svg", type=Path, default=ROOT / "docs" / "performance-ratios.svg")
    ap.add_argument("--candidate", type=Path, help="an extra icount-style .so (API v5) to time in "
                    "user mode as config (x), e.g. icount built from another revision of the crate")
    ap.add_argument("--any", action="store_true", help="also time icount bundled by qemu-plugin-any "
                    "(builds for APIs 1, 4, 5, 7) in user mode, as config (y): its hot path is the "
                    "API-5 build's own, so (y)/(e) should be 1")
    ap.add_argument("--arch", choices=["x86_64", "aarch64", "riscv64"], default="x86_64",
                    help="the user-mode guest's architecture (system mode stays x86_64)")
    ap.add_argument("--json", type=Path, default=OUT / "results.json")
    args = ap.parse_args()
    args.threads = [] if args.no_user else [int(t) for t in args.threads.split(",")]

    env = load_env()
    if not args.no_api7 and not env.get("QEMU_SYSTEM_11"):
        die("QEMU_SYSTEM_11 missing from the QEMU env file: run scripts/provision-qemu.sh "
            "(or pass --no-api7)")
    p = build(env, not args.no_system, args.no_build, not args.no_api7)
    if args.candidate:
        p["candidate"] = args.candidate.resolve()
    if args.any:
        p["any"] = build_any(p["ex5"], args.no_build)
    use_arch(env, p, args.arch, args.no_build)
    for k in ("spin", "cref5", "insn5"):
        if not p[k].exists():
            die(f"missing {p[k]}")
    if not args.no_system:
        problems = check_v4_symbols(env, [p["cref4"], p["crefc4"], p["insn4"], p["ex4"] / "libicount.so",
                                          p["ex4"] / "libicount_mutex.so"])
        if problems:
            die(f"v4 plugins import symbols QEMU {version(env['QEMU_SYSTEM'])} lacks: {problems}")

    meta = {"qemu_user_version": version(env["QEMU_USER"]), "qemu_system_version": version(env["QEMU_SYSTEM"]),
            "qemu_11_version": version(env["QEMU_SYSTEM_11"]) if not args.no_api7 else None,
            "host_cpus": os.cpu_count(), "load_start": os.getloadavg()[0], "reps": args.reps,
            "system_reps": args.system_reps, "warmup": args.warmup, "iterations": args.iterations,
            "threads": args.threads, "arch": args.arch, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    t0 = time.perf_counter()
    user, bad = ({}, []) if args.no_user else user_mode(env, p, args)
    if not args.no_system:
        # The user-mode results on stderr now, in case system mode fails.
        meta["load_end"] = os.getloadavg()[0]
        print(report(meta, user, None) + "\n\n(user mode done; system mode follows)\n",
              file=sys.stderr, flush=True)
    system = None if args.no_system else system_mode(env, p, args)
    api7 = None if args.no_api7 else api7_mode(env, p, args)
    meta["load_end"] = os.getloadavg()[0]
    meta["elapsed_s"] = time.perf_counter() - t0

    text = report(meta, user, system, api7)
    print(text)
    svg(meta, user, system, args.svg, api7)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "user": {str(k): v for k, v in user.items()},
                                     "system": system, "api7": api7, "problems": bad},
                                    indent=1, default=str))
    print(f"\nwrote {args.svg} and {args.json}; {meta['elapsed_s']:.0f} s", file=sys.stderr)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
