#!/usr/bin/env bash
# The test command: provisions QEMU (cached after the first run), then runs every test:
# unit and mock-host tests under both plugin APIs, lints, the mock-host stress tests under
# valgrind's race detectors, and the integration tests that load the example plugins into
# real QEMU (linux-user 10.2, MTTCG system mode 10.0 and 11.1).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s\n' "$*"; }

step "provisioning QEMU, reference plugins and the Linux guest (cached after the first run)"
./scripts/provision-qemu.sh all

step "format and lints (plugin APIs v4, v5, v6, v7)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
for v in 4 6 7; do
  echo "clippy, plugin-api-v$v"
  cargo clippy --workspace --all-targets --no-default-features --features "plugin-api-v$v" -- -D warnings
done
cargo clippy --workspace --all-targets --features anyhow,num-traits -- -D warnings

step "features: plugin-api-v0..v3 are declared and refused with a clear error; two APIs at once are refused"
expect_error() { # feature-args... -- expected message
  local msg="${!#}" out
  out=$(cargo check --quiet "${@:1:$#-1}" 2>&1 || true)
  if ! printf '%s' "$out" | grep -q "$msg"; then
    printf 'cargo check %s: expected the compile error "%s", got:\n%s\n' "${*:1:$#-1}" "$msg" "$out" >&2
    exit 1
  fi
  echo "cargo check ${*:1:$#-1}: refused with the expected message"
}
for v in 0 1 2 3; do
  expect_error --no-default-features --features "plugin-api-v$v" "not supported yet"
done
expect_error --features plugin-api-v7 "mutually exclusive"

step "data races: mock-host stress tests under valgrind's helgrind and DRD"
./scripts/race-check.sh

for v in 4 6 7; do
  step "unit and mock-host tests, plugin API v$v (the mock host speaks that API)"
  cargo test --workspace --lib --no-default-features --features "plugin-api-v$v"
done

step "unit tests with the 10.1.0-v2 features anyhow and num-traits"
cargo test --lib --features anyhow,num-traits

step "all tests, plugin API v5: unit, mock host, real QEMU (linux-user 10.2, MTTCG system mode 10.0 (v4) and 11.1 (v7))"
cargo test --release --workspace
