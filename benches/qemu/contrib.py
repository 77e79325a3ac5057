#!/usr/bin/env python3
"""Real-QEMU benchmark of this crate's rewrites of QEMU's contrib plugins against the C originals.

For each plugin of the table below, times three configurations, interleaved round-robin
(benches/qemu/run.py's `interleave`) so that drift and other work on the machine cancel:

  none  no plugin
  c     QEMU's contrib/plugins/<name>.c (user mode: $QEMU_CONTRIB_PLUGINS/lib<name>.so,
        built for API 5; system mode: the same source rebuilt for API 4 through
        benches/qemu/contrib_v4.c)
  rs    this crate's example of the same name (target/api-v5 or target/api-v4)

given the same arguments (QEMU's spellings), and reports, per configuration, the median
wall time and the median CPU time of the QEMU process (user + system, from the rusage
of the waited child: what QEMU and the plugin computed, without the time this VM's
host takes the CPU away, which on a 2-core cloud VM moves wall times by up to 2/3
between identical runs), and rs/c for both. Targets: at 2 threads where the C plugin's
hot path writes state that other vCPUs write too (a lock, a shared table, adjacent
scoreboard entries), rs/c < 1 in wall time (contention is time spent waiting, which
CPU time does not show); everywhere else rs/c <= 1.05 in CPU time (the same work, done
at no more cost). Both ratios are always reported.

  User mode    qemu-x86_64 10.2 (plugin API 5), guest benches/qemu/walk.c with 1 and 2
               worker threads; one interleaved group per (plugin, threads).
  System mode  qemu-system-x86_64 10.0 (plugin API 4), -smp 1 and -smp 2, MTTCG, booting
               the provisioned Linux guest (its init loops on every CPU and powers off);
               one interleaved group per -smp with every qualifying plugin's c and rs and
               one shared `none`. A plugin qualifies if its C source builds for API 4 and
               neither side imports a qemu_plugin_* symbol that qemu-system-x86_64 10.0
               lacks (`nm -D`); the others are listed with the reason.
               With --system102: qemu-system-x86_64 10.2 (plugin API 5, built by
               `scripts/provision-qemu.sh system102` from the same source as the user-mode
               QEMU) instead, loading the same API-5 C plugins and examples as user mode;
               there every plugin listed for system mode qualifies (traps too: 10.0 has no
               discontinuity callbacks), at every -smp (the `system:1` limits below are
               QEMU 10.0's).

Sanity: every run must exit 0 (system mode: the guest's init must report its work done,
i.e. it powered off rather than panicked); every run's output must hold the plugin's
report headers; in user mode, whose guest is deterministic, C and Rust must agree on one
number per plugin (within 0.1%: the main thread's few instructions vary). A system-mode
boot that aborts on QEMU 10.0's own `iotlb_to_section` assertion (a race in
qemu_plugin_get_hwaddr's MMIO lookup against memory-map updates, see tests/common) is
run again, at most 4 times, and every such retry is reported.

Output: a table on stdout, target/qemu-bench/contrib.json (every time, check value,
retry), docs/performance-contrib.svg. Logs, traces and consoles of the last run of each
configuration stay in target/qemu-bench/contrib/. Progress goes to stderr.
Exit status: 0 ok; 1 a run failed or outputs are missing or disagree; 2 a setup failure.

Usage: python3 benches/qemu/contrib.py [--reps N] [--system-reps N] [--plugins a,b]
       [--no-system] [--no-user] [--no-build] [--scale F] [--warmup N] [--system102]
       python3 benches/qemu/contrib.py --merge RUN1.json,RUN2.json,... [--svg PATH]
Python 3 standard library only. Needs scripts/provision-qemu.sh to have run.
"""

# The plugins, one row each. A new contrib rewrite needs one row here (and, optionally,
# one in OUTPUT below).
#   name   the example's name and the C file's (contrib/plugins/<name>.c)
#   args   given to both sides, comma-separated, QEMU's spellings; `{trace}` becomes a
#          per-run file under target/qemu-bench/contrib/
#   modes  "user" and/or "system" (system mode also needs the API-4 symbol check);
#          "system102": system mode only on QEMU 10.2 (--system102);
#          "pair": user mode, two instances run in step over a socket (lockstep), 1 thread;
#          "system:1" limits system mode to those -smp values (the note says why)
#   turns  walk.c loop turns per guest thread in user mode (picked so that the slowest
#          configuration takes no more than ~15 s on 2 CPUs)
#   shared whether the C plugin's hot path writes state other vCPUs write too
#          (sets the 2-thread target: rs/c < 1 if so, <= 1.05 if not)
#   note   what the hot path does
PLUGINS = [
    # name        args                modes            turns        shared  note
    ("hotblocks", "",                 "user system",   60_000_000,  True,
     "exec callback per block; C adds to a scoreboard (8-byte entries, adjacent vCPUs share "
     "a cache line) and takes a global mutex at translation. No arguments: the example takes "
     "none (hotblocks.c's inline=on is not timed)"),
    ("hotpages",  "",                 "user system:1", 30_000_000,  True,
     "memory callback per access (hwaddr lookup, page count); C: one global mutex around one "
     "hash table. Not at -smp 2: there qemu-system-x86_64 10.0 aborts early in the boot on its "
     "iotlb_to_section assertion, inside qemu_plugin_get_hwaddr (apparently an MMIO TLB entry "
     "looked up in a memory map that has changed since), under hotpages.c as under the rewrite "
     "(hotpages.c: 5 aborts in a row in one run)"),
    ("howvec",    "",                 "user system",   30_000_000,  True,
     "exec callback per instruction; on x86 every opcode has its own counter (C: a "
     "scoreboard per opcode, 8-byte entries)"),
    ("execlog",   "ifilter=bswap",    "user system",   80_000_000,  True,
     "logs walk.c's bswap marker (1 in 256 loop turns; in system mode the kernel's bswaps); "
     "every instruction is disassembled at translation; C takes a rwlock (read) per logged "
     "instruction"),
    ("cflow",     "",                 "user system",   30_000_000,  True,
     "inline stores per instruction, conditional callback on every non-fall-through block; "
     "C: global mutex + hash lookup + per-node mutex per branch"),
    ("drcov",     "filename={trace}", "user system",   60_000_000,  True,
     "exec callback per block; C takes one global mutex per block execution"),
    ("traps",     "",                 "user system",   100_000_000, False,
     "discontinuity callbacks (API 5); x86 user mode has none (syscalls are not "
     "exceptions there), so this times loading and exit"),
    ("cache",     "",                 "user system102", 4_000_000,  True,
     "an instruction-fetch callback per instruction and a memory callback per access, each "
     "through the L1 model (and its misses into a per-instruction record); C locks the core's "
     "cache per access and counts misses with atomics on shared records. System mode on QEMU "
     "10.2 only (--system102): on 10.0 one boot with both plugins took 8 minutes "
     "(docs/contrib-plugins.md), on 10.2 a boot with cache.c 44 s"),
    ("bbv",       "outfile={trace}",  "user system",   60_000_000,  False,
     "two inline adds per block (the interval's instructions, and the block's slot in the "
     "vCPU's table) and a conditional callback that writes a line every interval (default "
     "100,000,000 instructions). C: the same, with a scoreboard per block"),
    ("stoptrigger", "icount=1000000000000000", "user system", 80_000_000, False,
     "per instruction: an inline add, an inline store of its address, and a conditional "
     "callback (never taken here: the count is never reached); C the same. So this times "
     "the instrumentation alone"),
    ("hwprofile", "",                 "system:1",      0,           True,
     "memory callback per access (hwaddr lookup; device accesses counted); C: one global "
     "mutex around a hash table per device access. System mode only (devices), and at -smp 1 "
     "only: with more vCPUs QEMU 10.0 aborts in qemu_plugin_get_hwaddr (iotlb_to_section) in "
     "most boots"),
    ("ips",       "",                 "system",        0,           False,
     "an inline add per block and a conditional callback per quantum (ips/10 = 100,000,000 "
     "instructions at the default ips=1g, which these boots never reach: no sleep), which "
     "moves the virtual clock; C the same. System mode only: linux-user has no time control "
     "(ips.c asserts)"),
    ("uftrace",   "",                 "user system102", 30_000_000, False,
     "a callback with register access on each block's first instruction and after each one "
     "that names the frame pointer: reads it, and guest memory on a call, into the vCPU's "
     "stack and trace buffer; C the same, its state in a scoreboard entry per vCPU. Writes "
     "./uftrace.data in the run directory (6.4 GB for a boot). System mode on QEMU 10.2 only "
     "(--system102): on 10.0 one Linux boot at -smp 1 took 5.8 minutes with the rewrite "
     "(uftrace.c makes the same register read on nearly every block of the kernel), on "
     "10.2 79 s"),
]
PLUGINS.append(
    ("lockstep", "",                  "pair",          40,          False,
     "two QEMUs in step: before each block a socket round trip (send this side's position, "
     "read the other's); C the same, its state in unlocked globals, the rewrite's under one "
     "lock. Timed as pairs (none: two plain QEMUs side by side) on tests/guests/compute.c, "
     "single-threaded (with threads the pair diverges by scheduling); turns = its rounds"))


# What each plugin's output must hold (regexes, in both C's and Rust's, every run) and,
# in user mode, what they must agree on: a regex whose first match's group 1 is a number
# (within 0.1%), or "lines" for the number of lines. The output is the plugin log, or the
# `{trace}` file(s) when the arguments name one. A plugin missing here only needs output;
# (None, None): the plugin prints nothing in this setup (only its exit status counts).
OUTPUT = {
    "hotblocks": ([r"^collected \d+ entries in the hash table$", r"^pc, tcount, icount, ecount$"],
                  r"^0x[0-9a-f]+, \d+, \d+, (\d+)$"),          # the top block's executions
    "hotpages": ([r"^Addr, RCPUs, Reads, WCPUs, Writes$"],
                 r"^0x[0-9a-f]+, 0x[0-9a-f]+, (\d+), "),       # the top page's reads
    "howvec": ([r"^Instruction Classes:$", r"^Individual Instructions:$"],
               r"^Instr: .*\t\((\d+) hits\)"),                  # the top opcode's hits
    "execlog": ([r"^\d+, 0x[0-9a-f]+, 0x[0-9a-f]+, \"bswap"], "lines"),
    "cflow": ([r"^collected \d+ control flow nodes in the hash table$", r"^    branches \d+$"],
              r"^    branches (\d+)$"),                         # the hottest node's branches
    "drcov": ([r"^DRCOV VERSION: 2$", r"^BB Table: \d+ bbs$"], None),
    "traps": ([r"VCPU, interrupts, exceptions, hostcalls$"], r"^\s+0,\s+\d+,\s+(\d+),"),
    "cache": ([r"^core #, data accesses, data misses, dmiss rate, insn accesses, insn misses, imiss rate$"],
              r"^0\s+(\d+)\s"),                               # core 0's data accesses
    "bbv": ([r"^T(:\d+:\d+ )+$"], "lines"),                     # intervals, all files
    "stoptrigger": (None, None),                                  # prints nothing untriggered
    "hwprofile": ([r"^Device, Address, RCPUs, Reads,  WCPUs, Writes$"], None),
    "ips": (None, None),                                          # prints nothing
    "uftrace": (None, None),                                      # writes uftrace.data/
    "lockstep": ([r"^No divergence :-\)$", r"^Executed (\d+)/\1 blocks$"],
                 r"^Executed ~(\d+) instructions$"),             # both sides, every run
}

import argparse  # noqa: E402
import collections  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  benches/qemu/run.py: load_env, sh, glib_cflags, interleave, ...

ROOT = run.ROOT
OUT = run.OUT
RUNS = OUT / "contrib"
CONFIGS = ["none", "c", "rs"]
USER_TIMEOUT = 600
SYSTEM_TIMEOUT = 900
FLAKE = "iotlb_to_section: Assertion"
FLAKE_RETRIES = 4
# Plugins not timed on qemu-system-x86_64 10.2 (--system102), and why.
SYSTEM102_SKIP = {
    "hwprofile": "qemu-system-x86_64 10.2.2 reports no access as I/O (qemu_plugin_hwaddr_is_io is false "
                 "for every access of a boot: QEMU's own tests/tcg/plugins/mem.c with haddr=on counts 0 io "
                 "accesses, where 10.0 names devices), so hwprofile.c and the rewrite would both time RAM "
                 "accesses only",
}
# Every re-run (a hung boot, QEMU 10.0's iotlb_to_section abort), for the report.
RETRIES = []


class RunFailed(Exception):
    pass


# One run's cost: wall seconds, and CPU seconds (user + system) of the QEMU process(es).
Timing = collections.namedtuple("Timing", "wall cpu")


def children_cpu():
    """CPU seconds used so far by this process's waited-for children (user + system)."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def die(msg):
    print(f"contrib.py: {msg}", file=sys.stderr)
    sys.exit(2)


def table():
    rows = []
    for n, a, m, t, s, note in PLUGINS:
        modes = [w.split(":")[0] for w in m.split()]
        smp = [w.split(":", 1)[1] for w in m.split() if w.startswith("system:")]
        rows.append(dict(name=n, args=a, modes=modes, turns=t, shared=s, note=note,
                         smp_only=[int(x) for x in smp[0].split(",")] if smp else None))
    return rows


def plugin_arg(so, args, trace):
    a = args.replace("{trace}", str(trace))
    return ["-plugin", f"{so},{a}" if a else str(so)]


def run_qemu(cmd, stem, timeout, hang_retries=0, flake_retries=0, must_print=None):
    """Runs `cmd` once with its plugin log at <stem>.log and its console at <stem>.out and
    <stem>.err; returns the wall time. A run that has not exited after `timeout` s is
    killed and run again up to `hang_retries` times, one that aborts on QEMU's
    iotlb_to_section assertion up to `flake_retries` times (both reported in RETRIES);
    any other non-zero exit, or a console without `must_print`, raises RunFailed. The
    Timing is the last run's (a retry's own)."""
    log, out, err = (stem.with_name(stem.name + s) for s in (".log", ".out", ".err"))
    for f in (log, out, err):
        if f.exists():
            f.unlink()
    t0, c0 = time.perf_counter(), children_cpu()
    try:
        with open(out, "wb") as o, open(err, "wb") as e:
            # In the run directory: plugins that write files where QEMU runs (uftrace)
            # write them there.
            r = subprocess.run([str(c) for c in cmd], stdout=o, stderr=e, timeout=timeout,
                               cwd=stem.parent)
    except subprocess.TimeoutExpired:
        if hang_retries <= 0:
            raise RunFailed(f"no exit after {timeout} s (console in {out}, {err}): {' '.join(map(str, cmd))}")
        RETRIES.append(f"{stem.name}: no exit after {timeout} s; run again")
        print(f"warning: {RETRIES[-1]}", file=sys.stderr)
        return run_qemu(cmd, stem, timeout, hang_retries - 1, flake_retries, must_print)
    dt = Timing(time.perf_counter() - t0, children_cpu() - c0)
    if r.returncode != 0:
        tail = err.read_bytes()[-3000:].decode(errors="replace")
        if FLAKE in tail and flake_retries > 0:
            RETRIES.append(f"{stem.name}: QEMU aborted on its iotlb_to_section assertion after {dt.wall:.1f} s; run again")
            print(f"warning: {RETRIES[-1]}", file=sys.stderr)
            return run_qemu(cmd, stem, timeout, hang_retries, flake_retries - 1, must_print)
        raise RunFailed(f"exit {r.returncode}: {' '.join(map(str, cmd))}\n{tail}")
    if must_print and must_print not in out.read_text(errors="replace"):
        raise RunFailed(f"the console lacks {must_print!r} (guest did not finish?): see {out}")
    return dt


def check_output(p, cfg, text, agree_wanted):
    """Checks one run's output; returns the number the C and Rust runs must agree on (or None)."""
    expect, agree = OUTPUT.get(p["name"], ([], None))
    where = f"{p['name']} ({cfg})"
    if expect is None:
        return None
    if not text.strip():
        raise RunFailed(f"{where}: no output")
    for rx in expect:
        if not re.search(rx, text, re.M):
            raise RunFailed(f"{where}: output lacks /{rx}/")
    if not agree_wanted or agree is None:
        return None
    if agree == "lines":
        return text.count("\n")
    m = re.search(agree, text, re.M)
    if not m:
        raise RunFailed(f"{where}: output lacks /{agree}/")
    return int(m.group(1))


def trace_files(trace):
    """The `{trace}` file, or the files a plugin names after it (bbv: <trace>.<vcpu>.bb)."""
    return sorted(f for f in trace.parent.glob(trace.name + "*") if f == trace or f.name.startswith(trace.name + "."))


def read_output(p, stem, trace):
    if "{trace}" in p["args"]:
        return "".join(f.read_bytes().decode("latin-1") for f in trace_files(trace))
    log = stem.with_name(stem.name + ".log")
    return log.read_text(errors="replace") if log.exists() else ""


def listening(sock):
    """Whether a Unix socket is listening at `sock` (/proc/net/unix flags __SO_ACCEPTCON)."""
    try:
        table = Path("/proc/net/unix").read_text()
    except OSError:
        return False
    return any(f[-1] == str(sock) and f[3] == "00010000"
               for f in (line.split() for line in table.splitlines()) if len(f) > 7)


def pair_job(p, cfg, env, paths, stem, turns):
    """Like `job`, for a plugin run by two QEMUs in step (`pair` mode): the first waits at
    install for the second to connect; the time runs from the first's start until both
    have exited. Both sides' outputs must agree on the check value."""
    def go():
        sock = RUNS / f"{p['name']}-{cfg}.sock"  # short: a socket path has at most 107 bytes
        sock.unlink(missing_ok=True)
        so = {"c": paths["c5"], "rs": paths["ex5"]}.get(cfg)
        procs, files = [], []
        t0, c0 = time.perf_counter(), children_cpu()
        try:
            for side in "ab":
                s = stem.with_name(f"{stem.name}-{side}")
                log = s.with_name(s.name + ".log")
                log.unlink(missing_ok=True)
                plug = plugin_arg(so / f"lib{p['name']}.so", f"sockpath={sock}", None) if so else []
                cmd = [env["QEMU_USER"]] + plug + ["-d", "plugin", "-D", log, paths["compute"], turns]
                files += [open(s.with_name(s.name + ".out"), "wb"), open(s.with_name(s.name + ".err"), "wb")]
                procs.append((subprocess.Popen([str(c) for c in cmd], stdout=files[-2], stderr=files[-1],
                                               cwd=RUNS), log))
                while so and side == "a" and not listening(sock):
                    if procs[0][0].poll() is not None or time.perf_counter() - t0 > 60:
                        raise RunFailed(f"{p['name']} ({cfg}): the first side never listened at {sock}")
                    time.sleep(0.002)
            for proc, log in procs:
                if proc.wait(timeout=USER_TIMEOUT) != 0:
                    raise RunFailed(f"{p['name']} ({cfg}): exit {proc.returncode}; see {log}")
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
            for f in files:
                f.close()
        # Both QEMUs have been waited for: the CPU time is the pair's.
        dt = Timing(time.perf_counter() - t0, children_cpu() - c0)
        if cfg == "none":
            return dt, None
        vals = [check_output(p, cfg, log.read_text(errors="replace"), True) for _, log in procs]
        if vals[0] != vals[1]:
            raise RunFailed(f"{p['name']} ({cfg}): the two sides disagree: {vals}")
        return dt, vals[0]
    return go


def job(p, cfg, cmd, stem, trace, timeout, mode):
    """A callable for run.interleave: runs once, checks the output, returns (Timing, check value)."""
    def go():
        for f in trace_files(trace):
            f.unlink()
        dt = run_qemu(cmd, stem, timeout, hang_retries=1,
                      flake_retries=FLAKE_RETRIES if mode == "system" else 0,
                      must_print="guest: all work done" if mode == "system" else None)
        if cfg == "none":
            return dt, None
        return dt, check_output(p, cfg, read_output(p, stem, trace), mode == "user")
    return go


# ------------------------------------------------------------------------------ build

def build(env, plugins, args):
    """Builds the guest, the examples and the API-4 C plugins; returns paths and, per
    plugin, why it cannot run in system mode (None if it can)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    p = {"walk": OUT / "walk", "compute": OUT / "compute", "c5": Path(env["QEMU_CONTRIB_PLUGINS"]),
         "ex5": ROOT / "target" / "api-v5" / "release" / "examples",
         "ex4": ROOT / "target" / "api-v4" / "release" / "examples"}
    want_system = not args.no_system and any("system" in q["modes"] for q in plugins)
    api4 = want_system and not args.system102
    if not args.no_build:
        run.sh(["gcc", "-O1", "-static", "-pthread", "-o", p["walk"], HERE / "walk.c"])
        run.sh(["gcc", "-O1", "-static", "-o", p["compute"], ROOT / "tests" / "guests" / "compute.c"])
        run.sh(["cargo", "build", "--quiet", "--release", "--examples", "--target-dir", "target/api-v5"], cwd=ROOT)
        if api4:
            run.sh(["cargo", "build", "--quiet", "--release", "--examples", "--no-default-features",
                    "--features", "plugin-api-v4", "--target-dir", "target/api-v4"], cwd=ROOT)
    # Time copies: the test suite builds into the same target/api-v* directories, and a
    # rebuild there must not swap a plugin between two repetitions.
    p["digests"] = {}
    v5 = (["user", "pair"] if not args.no_user else []) + (["system"] if want_system and not api4 else [])
    for key, modes in (("c5", v5), ("ex5", v5), ("ex4", ["system"] if api4 else [])):
        snap = RUNS / {"c5": "c-v5", "ex5": "rs-v5", "ex4": "rs-v4"}[key]
        snap.mkdir(parents=True, exist_ok=True)
        for q in plugins:
            if not any(m in q["modes"] for m in modes):
                continue
            so = p[key] / f"lib{q['name']}.so"
            if not so.exists():
                die(f"missing {so} (is `{q['name']}` an example yet? provisioned QEMU's contrib plugins?)")
            shutil.copy2(so, snap / so.name)
            p["digests"][f"{snap.name}/{so.name}"] = hashlib.sha256(so.read_bytes()).hexdigest()[:16]
        p[key] = snap
    why_not = {}
    if not want_system:
        return p, why_not
    if not api4:
        # QEMU 10.2 and the API-5 plugins come from one source tree: nothing is missing.
        return p, {q["name"]: SYSTEM102_SKIP.get(q["name"]) if "system" in q["modes"]
                   else "not listed for system mode in the PLUGINS table" for q in plugins}
    have = run.dyn_symbols(env["QEMU_SYSTEM"], undefined=False)
    cc = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-I" + str(Path(env["QEMU_SRC"]) / "include" / "qemu")] + \
        run.glib_cflags()
    for q in plugins:
        if "system" not in q["modes"]:
            why_not[q["name"]] = "not listed for system mode in the PLUGINS table"
            continue
        src = Path(env["QEMU_SRC"]) / "contrib" / "plugins" / f"{q['name']}.c"
        c4 = RUNS / f"lib{q['name']}-v4.so"
        rs4 = p["ex4"] / f"lib{q['name']}.so"
        if not args.no_build:
            cmd = cc + [f"-DCONTRIB_C=\"{src}\"", "-o", c4, HERE / "contrib_v4.c"]
            print("+ " + " ".join(map(str, cmd)), file=sys.stderr)
            r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
            if r.returncode != 0:
                c4.unlink(missing_ok=True)
                why_not[q["name"]] = f"{src.name} does not build for API 4: {r.stderr.strip()[-300:]}"
                continue
        for so in (c4, rs4):
            if not so.exists():
                die(f"missing {so}" + (" (run without --no-build)" if args.no_build else ""))
        missing = {}
        for side, so in (("C", c4), ("Rust", rs4)):
            m = sorted(run.dyn_symbols(so, undefined=True) - have)
            if m:
                missing[side] = m
        if missing:
            why_not[q["name"]] = "; ".join(
                f"the {side} build imports {', '.join(m)}, which qemu-system-x86_64 "
                f"{run.version(env['QEMU_SYSTEM'])} (plugin API 4) does not export" for side, m in missing.items())
        else:
            why_not[q["name"]] = None
            p["digests"][c4.name] = hashlib.sha256(c4.read_bytes()).hexdigest()[:16]
    return p, why_not


# ------------------------------------------------------------------------------ modes

def agreement(p, checks, label):
    """C's and Rust's check values (every rep) must agree within 0.1%."""
    vals = [v for cfg in ("c", "rs") for v in checks[cfg] if v is not None]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi - lo > 0.001 * max(abs(hi), 1):
        raise RunFailed(f"{label}: C and Rust outputs disagree: c {checks['c']}, rs {checks['rs']} "
                        f"({OUTPUT[p['name']][1]!r})")
    return {"c": checks["c"], "rs": checks["rs"]}


def summarize(times):
    """times: {cfg: [Timing]} -> medians and rs/c of wall and of CPU time, and every run's."""
    r = {}
    for metric, suffix in (("wall", ""), ("cpu", "_cpu")):
        each = {cfg: [getattr(t, metric) for t in ts] for cfg, ts in times.items()}
        med = {cfg: statistics.median(ts) for cfg, ts in each.items()}
        r["median" + suffix + "_s"] = med
        r["times" + suffix + "_s"] = each
        r["rs_over_c" + suffix] = med["rs"] / med["c"] if med["c"] else float("nan")
    return r


def user_mode(env, paths, plugins, args):
    res = {}
    for p in plugins:
        pair = "pair" in p["modes"]
        if "user" not in p["modes"] and not pair:
            continue
        turns = max(1, int(p["turns"] * args.scale))
        for threads in [1] if pair else args.threads:
            label = f"user {p['name']} {threads}T"
            print(f"[{label}] {turns} turns per thread, args {p['args'] or '(none)'!r}", file=sys.stderr)
            jobs = {}
            for cfg in CONFIGS:
                stem = RUNS / f"user-{p['name']}-{cfg}-{threads}"
                trace = stem.with_name(stem.name + ".trace")
                so = {"c": paths["c5"], "rs": paths["ex5"]}.get(cfg)
                plug = plugin_arg(so / f"lib{p['name']}.so", p["args"], trace) if so else []
                cmd = [env["QEMU_USER"]] + plug + ["-d", "plugin", "-D", stem.with_name(stem.name + ".log"),
                                                   paths["walk"], threads, turns]
                jobs[cfg] = (pair_job(p, cfg, env, paths, stem, turns) if pair
                             else job(p, cfg, cmd, stem, trace, USER_TIMEOUT, "user"))
            times, checks = run.interleave(label, jobs, args.reps, args.warmup)
            r = summarize(times)
            r["turns"] = turns
            r["agree"] = agreement(p, checks, label)
            res[(p["name"], threads)] = r
            m, k = r["median_s"], r["median_cpu_s"]
            print(f"[{label}] medians none {m['none']:.3f} s, c {m['c']:.3f} s, rs {m['rs']:.3f} s; "
                  f"rs/c {r['rs_over_c']:.3f}; CPU none {k['none']:.3f} s, c {k['c']:.3f} s, "
                  f"rs {k['rs']:.3f} s; rs/c {r['rs_over_c_cpu']:.3f}", file=sys.stderr)
    return res


def system_qemu(env, args):
    """The system-mode QEMU of this run: (command, plugin API)."""
    if not args.system102:
        return env["QEMU_SYSTEM"], 4
    if not env.get("QEMU_SYSTEM_10_2"):
        die(f"QEMU_SYSTEM_10_2 missing from {run.ENV_FILE}: run scripts/provision-qemu.sh system102 "
            "(builds qemu-system-x86_64 10.2, 2-10 minutes)")
    return env["QEMU_SYSTEM_10_2"], 5


def system_cmd(env, qemu, smp, plug, stem):
    return [qemu, "-M", "q35", "-smp", str(smp), "-m", "512", "-accel", "tcg,thread=multi",
            "-kernel", env["GUEST_KERNEL"], "-initrd", env["GUEST_INITRD"],
            "-append", "console=ttyS0 quiet panic=-1", "-nographic", "-no-reboot"] + plug + \
        ["-d", "plugin", "-D", stem.with_name(stem.name + ".log")]


def system_mode(env, paths, plugins, args):
    res = {}
    qemu, api = system_qemu(env, args)
    names = [p for p in plugins if paths["why_not"].get(p["name"]) is None and "system" in p["modes"]]
    if not names:
        return res
    for smp in args.smp:
        label = f"system -smp {smp}"
        jobs = {}
        here = [p for p in names if p["smp_only"] is None or smp in p["smp_only"]]
        if not here:
            continue
        for p in [None] + here:
            for cfg in (["none"] if p is None else ["c", "rs"]):
                name = "none" if p is None else p["name"]
                stem = RUNS / f"system-{name}-{cfg}-{smp}"
                trace = stem.with_name(stem.name + ".trace")
                so = ({"c": RUNS / f"lib{name}-v4.so", "rs": paths["ex4"] / f"lib{name}.so"} if api == 4 else
                      {"c": paths["c5"] / f"lib{name}.so", "rs": paths["ex5"] / f"lib{name}.so"}).get(cfg)
                plug = plugin_arg(so, p["args"], trace) if so else []
                jobs[(name, cfg)] = job(p, cfg, system_cmd(env, qemu, smp, plug, stem), stem, trace, SYSTEM_TIMEOUT,
                                        "system")
        warm = RUNS / f"system-warmup-{smp}"
        print(f"[{label}] untimed warm-up boot; then {len(jobs)} boots per rep: none and "
              f"{', '.join(p['name'] for p in here)} (c, rs)", file=sys.stderr)
        run_qemu(system_cmd(env, qemu, smp, [], warm), warm, SYSTEM_TIMEOUT, 1, FLAKE_RETRIES, "guest: all work done")
        times, _ = run.interleave(label, jobs, args.system_reps, 0)
        for p in here:
            r = summarize({"none": times[("none", "none")], "c": times[(p["name"], "c")],
                           "rs": times[(p["name"], "rs")]})
            res[(p["name"], smp)] = r
            m, k = r["median_s"], r["median_cpu_s"]
            print(f"[{label}] {p['name']}: medians none {m['none']:.2f} s, c {m['c']:.2f} s, "
                  f"rs {m['rs']:.2f} s; rs/c {r['rs_over_c']:.3f}; CPU none {k['none']:.2f} s, "
                  f"c {k['c']:.2f} s, rs {k['rs']:.2f} s; rs/c {r['rs_over_c_cpu']:.3f}", file=sys.stderr)
    return res


# ------------------------------------------------------------------------------ report

def target(p, threads, r):
    """(the target as text, whether it is met, the ratio it is judged on): wall time where
    the rewrite must scale better (contention is waiting), CPU time where it must cost no
    more."""
    if threads > 1 and p["shared"]:
        return "< 1 (wall)", r["rs_over_c"] < 1.0, r["rs_over_c"]
    return "<= 1.05 (CPU)", r["rs_over_c_cpu"] <= 1.05, r["rs_over_c_cpu"]


def report(meta, plugins, user, system, why_not):
    if meta.get("sources"):
        head = ["Merged from " + "; ".join(meta["sources"]) + f" (system mode: QEMU {meta['qemu_system_version']}, "
                f"API {meta['system_api']}; later files' rows replace earlier ones)."]
    else:
        head = None
    L = (head or [f"QEMU user {meta['qemu_user_version']} (API 5), system {meta['qemu_system_version']} "
                  f"(API {meta['system_api']}); "
                  f"host {meta['host_cpus']} CPUs; load (1 min) {meta['load_start']:.2f} at start, "
                  f"{meta['load_end']:.2f} at end; "
                  + (f"user mode {meta['reps']} reps + {meta['warmup']} warm-up per group; " if user else "")
                  + (f"system mode {meta['system_reps']} reps after one warm-up boot; " if system else "")
                  + f"{meta['elapsed_s'] / 60:.1f} min."]) + [
         "",
         "Wall and CPU: median seconds of QEMU's wall time and of its process's CPU time (user + system).",
         "",
         "| plugin | mode | threads | none s | C s | Rust s | Rust/C wall | none CPU s | C CPU s | Rust CPU s "
         "| Rust/C CPU | target | met |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in plugins:
        for mode, res, unit in (("user", user, "T"), ("system", system, " vCPU")):
            for (name, n), r in sorted(res.items()):
                if name != p["name"]:
                    continue
                m, k = r["median_s"], r["median_cpu_s"]
                t, ok, _ = target(p, n, r)
                L.append(f"| {name} | {mode} | {n} | {m['none']:.3f} | {m['c']:.3f} | {m['rs']:.3f} | "
                         f"{r['rs_over_c']:.3f} | {k['none']:.3f} | {k['c']:.3f} | {k['rs']:.3f} | "
                         f"{r['rs_over_c_cpu']:.3f} | {t} | {'yes' if ok else 'NO'} |")
    L.append("")
    if user:
        L.append("User-mode guest: walk THREADS TURNS; turns per thread: " +
                 ", ".join(f"{p['name']} {user[(p['name'], meta['threads'][0])]['turns']:,}"
                           for p in plugins if (p["name"], meta["threads"][0]) in user) + "."
                 + (" Pairs (lockstep): two QEMUs in step on tests/guests/compute.c ROUNDS, ROUNDS "
                    "given as its turns, 1 thread." if any("pair" in p["modes"] for p in plugins) else ""))
    for name, why in why_not.items():
        if why:
            L.append(f"- {name}: not timed in system mode: {why}.")
    for p in plugins:
        if system and p["smp_only"] and not why_not.get(p["name"]):
            L.append(f"- {p['name']}: system mode at -smp {','.join(map(str, p['smp_only']))} only: {p['note']}.")
    if RETRIES:
        L.append("- Runs done again (the re-run's time counts): " + "; ".join(RETRIES))
    return "\n".join(L)


def svg(meta, plugins, user, system, path, why_not=None):
    """Grouped horizontal bars: rs/c per plugin, user 1T/2T and system 1/2 vCPUs; run.py's style."""
    series = [("user", 1, "user, 1 thread", "#2e9e5b"), ("user", 2, "user, 2 threads", "#86c98f"),
              ("system", 1, "system, 1 vCPU", "#3b6ea5"), ("system", 2, "system, 2 vCPUs", "#5d8fc9")]
    groups = []
    for p in plugins:
        bars = []
        for mode, n, label, color in series:
            r = (user if mode == "user" else system).get((p["name"], n))
            if r:
                t, _, v = target(p, n, r)
                bars.append((f"{label} ({t.split('(')[1][:-1]})", color, v))
        if bars and system and (why_not or {}).get(p["name"]):
            bars.append(("system", None, None))
        elif bars and system and p["smp_only"]:
            bars += [(f"system, {n} vCPU{'s' if n > 1 else ''}", "restricted", None)
                     for n in meta["smp"] if n not in p["smp_only"]]
        if bars:
            groups.append((p["name"], bars))
    vals = [v for _, b in groups for _, _, v in b if v is not None and v == v]
    hi = max(1.25, math.ceil(max(vals + [1.0]) * 4) / 4)
    left, width, bar, gap = 200, 560, 14, 14
    height = 86 + sum(18 + len(b) * bar + gap for _, b in groups) + 40
    X = lambda v: left + width * v / hi  # noqa: E731
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14" font-weight="bold">QEMU contrib plugins: this crate\'s rewrite / '
         'the C original, in the measure each target is judged on</text>',
         '<text x="10" y="38" fill="#555">medians: CPU time where the target is 1.05, wall time where it is '
         'below 1 (2 threads, shared state); lower is better</text>',
         f'<text x="10" y="54" fill="#555">dashed: 1.0 and 1.05; user '
         f'{meta["qemu_user_version"]}, system {meta["qemu_system_version"]}; '
         + (f'{len(meta["sources"])} runs merged' if meta.get("sources") else f'load at start {meta["load_start"]:.2f}')
         + '</text>']
    y = 76
    top = y
    for name, bars in groups:
        s.append(f'<text x="10" y="{y + 12}" font-weight="bold">{name}</text>')
        y += 18
        for label, color, v in bars:
            s.append(f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{label}</text>')
            if v is None and color == "restricted":
                s.append(f'<text x="{left + 4}" y="{y + bar - 3}" fill="#555">not timed: QEMU '
                         f'{meta["qemu_system_version"]} aborts there under either plugin (see the report)</text>')
            elif v is None:
                s.append(f'<text x="{left + 4}" y="{y + bar - 3}" fill="#555">not timed on QEMU {meta["qemu_system_version"]} '
                         f'(plugin API {meta["system_api"]}): see the report</text>')
            elif v == v and v > 0:
                s.append(f'<rect x="{left}" y="{y}" width="{max(1.0, X(v) - left):.1f}" height="{bar - 2}" '
                         f'fill="{color}"/>')
                s.append(f'<text x="{X(v) + 4:.1f}" y="{y + bar - 3}">{v:.2f}</text>')
            y += bar
        y += gap
    for v, dash in ((1.0, "4,3"), (1.05, "2,2")):
        s.append(f'<line x1="{X(v):.1f}" y1="{top}" x2="{X(v):.1f}" y2="{y}" stroke="#333" stroke-dasharray="{dash}"/>')
    v = 0.0
    while v <= hi + 1e-9:
        s.append(f'<line x1="{X(v):.1f}" y1="{y}" x2="{X(v):.1f}" y2="{y + 5}" stroke="#333"/>')
        s.append(f'<text x="{X(v):.1f}" y="{y + 18}" text-anchor="middle">{v:g}</text>')
        v += 0.25
    s.append(f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#333"/>')
    s.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(s) + "\n")


def git_rev():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                       text=True)
    return r.stdout.strip() + ("+dirty" if d.stdout.strip() else "")


def write_json(path, meta, plugins, user, system, why_not, failure=None):
    def flat(res, key):
        return [dict(plugin=name, **{key: n}, **r) for (name, n), r in sorted(res.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "plugins": plugins, "user": flat(user, "threads"),
                                "system": flat(system, "vcpus"), "system_skipped": why_not,
                                "retries": RETRIES, "failure": failure}, indent=1, default=str))


def merge(paths, plugins):
    """Rows of earlier runs' JSON files (write_json's), later files' rows replacing earlier
    ones: (meta, user, system, why_not). The files' system-mode rows must come from one QEMU."""
    user, system, why_not, meta, sources = {}, {}, {}, None, []
    for path in paths:
        d = json.loads(Path(path).read_text())
        if d.get("failure"):
            die(f"{path} records a failed run: {d['failure']}")
        m = d["meta"]
        if meta is None:
            meta = dict(m)
        if d["user"]:
            meta["qemu_user_version"] = m["qemu_user_version"]
        if d["system"]:
            if "system_from" in meta and (meta["qemu_system_version"], meta["system_api"]) != \
                    (m["qemu_system_version"], m.get("system_api", 4)):
                die(f"{path}: system mode on QEMU {m['qemu_system_version']}, {meta['system_from']}: "
                    f"{meta['qemu_system_version']}; merge one QEMU's rows at a time")
            meta.update(qemu_system_version=m["qemu_system_version"], system_api=m.get("system_api", 4),
                        system_from=str(path), smp=m["smp"])
        for r in d["user"]:
            user[(r["plugin"], r["threads"])] = {k: v for k, v in r.items() if k not in ("plugin", "threads")}
        for r in d["system"]:
            system[(r["plugin"], r["vcpus"])] = {k: v for k, v in r.items() if k not in ("plugin", "vcpus")}
        for name, why in (d.get("system_skipped") or {}).items():
            if why or name not in why_not:
                why_not[name] = why
        sources.append(f"{Path(path).name} ({m['crate_revision']}, {m['date']})")
    for name, _ in system:
        why_not[name] = None
    meta["sources"] = sources
    meta["smp"] = meta.get("smp") or [1, 2]
    meta.setdefault("system_api", 4)  # files written before --system102 ran 10.0 only
    names = {p["name"] for p in plugins}
    user = {k: v for k, v in user.items() if k[0] in names}
    system = {k: v for k, v in system.items() if k[0] in names}
    return meta, user, system, why_not


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per configuration (user mode)")
    ap.add_argument("--system-reps", type=int, default=3, help="timed repetitions per configuration (system mode)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up repetitions per user-mode group")
    ap.add_argument("--plugins", help="comma-separated subset of: " + ", ".join(n for n, *_ in PLUGINS))
    ap.add_argument("--threads", default="1,2", help="user-mode guest thread counts")
    ap.add_argument("--smp", default="1,2", help="system-mode vCPU counts")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every plugin's user-mode loop turns")
    ap.add_argument("--no-user", action="store_true", help="skip user mode")
    ap.add_argument("--no-system", action="store_true", help="skip system mode")
    ap.add_argument("--no-build", action="store_true", help="use what was built before")
    ap.add_argument("--system102", action="store_true",
                    help="system mode on qemu-system-x86_64 10.2 (API 5; scripts/provision-qemu.sh system102) "
                         "instead of 10.0 (API 4)")
    ap.add_argument("--svg", type=Path, default=ROOT / "docs" / "performance-contrib.svg")
    ap.add_argument("--json", type=Path, default=OUT / "contrib.json")
    ap.add_argument("--merge", metavar="J1,J2,...",
                    help="run nothing: print the report and write the SVG of earlier runs' JSON files, "
                         "later files' rows replacing earlier ones")
    args = ap.parse_args()
    args.threads = [] if args.no_user else [int(t) for t in args.threads.split(",")]
    args.smp = [int(t) for t in args.smp.split(",")]

    plugins = table()
    if args.plugins:
        want = args.plugins.split(",")
        unknown = sorted(set(want) - {p["name"] for p in plugins})
        if unknown:
            die(f"unknown plugins {unknown}; the table has {[p['name'] for p in plugins]}")
        plugins = [p for p in plugins if p["name"] in want]
    if args.merge:
        meta, user, system, why_not = merge(args.merge.split(","), plugins)
        for p in plugins:
            p["smp_only"] = None if meta["system_api"] != 4 else p["smp_only"]
        print(report(meta, plugins, user, system, why_not))
        svg(meta, plugins, user, system, args.svg, why_not)
        print(f"\nwrote {args.svg}", file=sys.stderr)
        return
    if args.system102:
        # The -smp limits of the table are QEMU 10.0's (its iotlb_to_section abort).
        for p in plugins:
            p["smp_only"] = None
            if "system102" in p["modes"]:
                p["modes"].append("system")
    env = run.load_env()
    if not env.get("QEMU_CONTRIB_PLUGINS"):
        die(f"QEMU_CONTRIB_PLUGINS missing from {run.ENV_FILE}: run scripts/provision-qemu.sh")
    paths, why_not = build(env, plugins, args)
    paths["why_not"] = why_not
    for name, why in why_not.items():
        if why:
            print(f"{name}: not timed in system mode: {why}", file=sys.stderr)

    sys_qemu, sys_api = system_qemu(env, args) if not args.no_system else (env["QEMU_SYSTEM"], 4)
    meta = {"qemu_user_version": run.version(env["QEMU_USER"]), "qemu_system_version": run.version(sys_qemu),
            "system_api": sys_api,
            "host_cpus": os.cpu_count(), "load_start": os.getloadavg()[0], "reps": args.reps,
            "system_reps": args.system_reps, "warmup": args.warmup, "threads": args.threads, "smp": args.smp,
            "scale": args.scale, "crate_revision": git_rev(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "guest": "benches/qemu/walk.c (user mode); the provisioned Linux guest (system mode)",
            "plugin_sha256": paths["digests"]}
    t0 = time.perf_counter()
    user, system = {}, {}
    try:
        if not args.no_user:
            user = user_mode(env, paths, plugins, args)
            meta["load_end"] = os.getloadavg()[0]
            meta["elapsed_s"] = time.perf_counter() - t0
            if not args.no_system:
                print(report(meta, plugins, user, {}, {}) + "\n\n(user mode done; system mode follows)\n",
                      file=sys.stderr, flush=True)
        if not args.no_system:
            system = system_mode(env, paths, plugins, args)
    except RunFailed as e:
        meta["load_end"] = os.getloadavg()[0]
        meta["elapsed_s"] = time.perf_counter() - t0
        write_json(args.json, meta, plugins, user, system, why_not, str(e))
        print(f"contrib.py: FAILED: {e}\n(partial results in {args.json})", file=sys.stderr)
        sys.exit(1)
    meta["load_end"] = os.getloadavg()[0]
    meta["elapsed_s"] = time.perf_counter() - t0
    print(report(meta, plugins, user, system, why_not))
    if user or system:
        svg(meta, plugins, user, system, args.svg, why_not)
    write_json(args.json, meta, plugins, user, system, why_not)
    print(f"\nwrote {args.svg} and {args.json}; {meta['elapsed_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
