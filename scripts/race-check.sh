#!/usr/bin/env bash
# Runs the runtime's mock-host stress tests under valgrind's two race detectors, helgrind
# and DRD, and fails on any error either reports. Prints one line per tool and test.
#
# The tests run at a reduced size (QEMU_PLUGIN_STRESS_SCALE, default 0.02 here) that
# keeps what they exercise: 8 vCPU threads and a config swap; a vCPU exit and its index
# reused; thread churn with 80 vCPUs alive at once, growing the shard array past its
# first segment, then exits and index reuse; syscall, idle and resume hooks; 8
# threads growing the shard array at once with nothing else between them; and QEMU's
# exit run from one vCPU's thread while the others execute and one of them is held
# inside an exec callback (hole 1: the forced race of a device calling exit()); and a
# thread storm growing the scoreboards while exiting threads merge their inline counters
# under QEMU's plugin lock (hole 11); and `FnMut` exec closures of the 10.1.0-v2 surface
# run by 4 vCPUs at once, each behind its own lock.
#
# The test binary is a debug build with the `race-check` feature, which turns the
# crate's happens-before annotations (src/annotate.rs) into valgrind client requests.
# scripts/race-check.supp suppresses only reports inside std, libtest and third-party
# crates (each entry says why); none names a function of this crate.
#
# The swap of runtime::tests::config_swapped_while_vcpus_run_is_seen_by_every_vcpu is
# described to the tools by annotations in `set_config` and `Vcpu::config` (arc_swap
# publishes it with atomics they cannot see); at this scale the swap may land after the
# vCPUs' run, so that test checks the mid-run case only when it lands in time.
#
# Environment: RACE_CHECK_SCALE (default 0.02), CARGO_TARGET_DIR (default target),
# RACE_CHECK_API (the plugin API to build for, default 5; under 7 every lifecycle hook
# finds the runtime through the userdata QEMU passes instead of a global).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${RACE_CHECK_SCALE:-0.02}"
TARGET="${CARGO_TARGET_DIR:-target}"
API="${RACE_CHECK_API:-5}"
LOGS="$TARGET/race-check-v$API"
TESTS=(
  runtime::tests::eight_vcpus_millions_of_events_with_a_config_swap
  runtime::tests::config_swapped_while_vcpus_run_is_seen_by_every_vcpu
  runtime::tests::exit_merges_and_a_reused_index_starts_from_a_fresh_shard
  runtime::tests::ten_thousand_vcpus_come_and_go_without_losing_a_count
  runtime::tests::syscall_idle_and_resume_hooks_reach_the_vcpus_shard
  runtime::shards::tests::growth_under_concurrency_never_moves_slots
  runtime::exit_tests::hole1_an_exit_from_a_vcpu_thread_waits_for_running_exec_closures
  runtime::exit_tests::exit_from_inside_a_callback_merges_the_exiting_vcpu_without_waiting_for_it
  runtime::thread_tests::hole11_scoreboard_growth_while_vcpus_exit_never_races_a_merge
  callbacks::exec::tests::fnmut_closures_run_by_several_vcpus_at_once_lose_nothing
)

die() { printf 'race-check: %s\n' "$*" >&2; exit 1; }

# valgrind comes from apt, like the packages scripts/provision-qemu.sh installs.
if ! command -v valgrind >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else
      die "valgrind not found: apt-get install valgrind"
    fi
  fi
  command -v apt-get >/dev/null || die "valgrind not found, and no apt-get: install valgrind (>= 3.19)"
  printf 'race-check: apt-get install valgrind\n' >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

start=$(date +%s)
build_out=$(cargo test --no-default-features --features "plugin-api-v$API,race-check" --lib --no-run \
  --message-format=json-render-diagnostics) \
  || die "build failed"
BIN=$(printf '%s\n' "$build_out" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$BIN" ] || die "no test executable in cargo's output"
printf 'race-check: plugin API %s, built %s in %ss\n' "$API" "$BIN" "$(($(date +%s) - start))"
mkdir -p "$LOGS"

# Runs every test under one tool, one after the other; prints a line per test; writes
# the failed tests' names to $LOGS/<tool>.failed.
run_tool() {
  local tool=$1 t log t0 ms secs summary rc errors
  : >"$LOGS/$tool.failed"
  for t in "${TESTS[@]}"; do
    log="$LOGS/$tool-${t##*::}.log"
    t0=$(date +%s%N)
    rc=0
    QEMU_PLUGIN_STRESS_SCALE="$SCALE" valgrind --tool="$tool" --error-exitcode=1 \
      --num-callers=40 --suppressions=scripts/race-check.supp \
      "$BIN" --exact "$t" --test-threads=1 >"$log" 2>&1 || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    secs="$((ms / 1000)).$((ms % 1000 / 100))s"
    summary=$(sed -n 's/.*ERROR SUMMARY: \(.*\)/\1/p' "$log" | tail -n 1)
    errors=${summary%% errors*}
    if [ "$rc" -ne 0 ] || [ "${errors:-x}" != 0 ] || ! grep -q 'test result: ok. 1 passed' "$log"; then
      printf 'race-check: %-8s %-66s FAILED (exit %s; %s) %6s, log %s\n' \
        "$tool" "$t" "$rc" "${summary:-no summary}" "$secs" "$log"
      echo "$t" >>"$LOGS/$tool.failed"
    else
      printf 'race-check: %-8s %-66s %s %6s\n' "$tool" "$t" "$summary" "$secs"
    fi
  done
}

# The two tools run side by side (valgrind runs a process's threads one at a time).
run_tool helgrind >"$LOGS/helgrind.out" &
hg=$!
run_tool drd >"$LOGS/drd.out" &
drd=$!
wait "$hg" "$drd" || true
cat "$LOGS/helgrind.out" "$LOGS/drd.out"

failed=$(cat "$LOGS/helgrind.failed" "$LOGS/drd.failed")
if [ -n "$failed" ]; then
  for tool in helgrind drd; do
    while read -r t; do
      [ -n "$t" ] || continue
      printf '\n--- %s, %s: first reports (whole log: %s)\n' "$tool" "$t" \
        "$LOGS/$tool-${t##*::}.log"
      grep -v '^==[0-9]*== *$' "$LOGS/$tool-${t##*::}.log" | head -n 150 || true
      grep 'ERROR SUMMARY\|test result' "$LOGS/$tool-${t##*::}.log" || true
    done <"$LOGS/$tool.failed"
  done
  die "race reports or test failures (logs in $LOGS)"
fi
printf 'race-check: clean, %s tests x 2 tools at scale %s, %ss in all\n' \
  "${#TESTS[@]}" "$SCALE" "$(($(date +%s) - start))"
