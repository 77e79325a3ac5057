#!/usr/bin/env bash
# The test command: provisions QEMU (cached after the first run), then runs every test:
# unit and mock-host tests under both plugin APIs, lints, the mock-host stress tests under
# valgrind's race detectors, and the integration tests that load the example plugins into
# real QEMU (linux-user 10.2 and MTTCG system mode 10.0).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s\n' "$*"; }

step "provisioning QEMU, reference plugins and the Linux guest (cached after the first run)"
./scripts/provision-qemu.sh all

step "format and lints (plugin API v5 and v4)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --no-default-features --features plugin-api-v4 -- -D warnings
cargo clippy --workspace --all-targets --features anyhow,num-traits -- -D warnings

step "features of 10.1.0-v2: plugin-api-v0..v3 are declared and refused with a clear error"
for v in 0 1 2 3; do
  out=$(cargo check --quiet --no-default-features --features "plugin-api-v$v" 2>&1 || true)
  if ! printf '%s' "$out" | grep -q "not supported yet"; then
    printf 'plugin-api-v%s: expected the "not supported yet" compile error, got:\n%s\n' "$v" "$out" >&2
    exit 1
  fi
  echo "plugin-api-v$v: refused with the expected message"
done

step "data races: mock-host stress tests under valgrind's helgrind and DRD"
./scripts/race-check.sh

step "unit and mock-host tests, plugin API v4"
cargo test --workspace --lib --no-default-features --features plugin-api-v4

step "unit tests with the 10.1.0-v2 features anyhow and num-traits"
cargo test --lib --features anyhow,num-traits

step "all tests, plugin API v5: unit, mock host, real QEMU (user mode and MTTCG system mode)"
cargo test --release --workspace
