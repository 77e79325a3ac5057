#!/usr/bin/env bash
# The test command: provisions QEMU (cached after the first run), then runs every test:
# unit and mock-host tests under several plugin APIs, lints, the mock-host stress tests under
# valgrind's race detectors, and the integration tests that load the example plugins into
# real QEMU (linux-user 10.2 and 7.2; MTTCG system mode 7.2, 10.0 and 11.1; x86_64, aarch64
# and riscv64 guests).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s\n' "$*"; }

step "provisioning QEMU, reference plugins and the Linux guest (cached after the first run)"
./scripts/provision-qemu.sh all

step "format and lints (every plugin API, v0 to v7)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
for v in 0 1 2 3 4 6 7; do
  echo "clippy, plugin-api-v$v"
  cargo clippy --workspace --all-targets --no-default-features --features "plugin-api-v$v" -- -D warnings
done
cargo clippy --workspace --all-targets --features anyhow,num-traits -- -D warnings

step "features: two plugin APIs at once are refused with a clear error"
out=$(cargo check --quiet --features plugin-api-v7 2>&1 || true)
if ! printf '%s' "$out" | grep -q "mutually exclusive"; then
  printf 'plugin-api-v5 + plugin-api-v7: expected the "mutually exclusive" compile error, got:\n%s\n' "$out" >&2
  exit 1
fi
echo "plugin-api-v5 + plugin-api-v7: refused with the expected message"

step "data races: mock-host stress tests under valgrind's helgrind and DRD (plugin APIs 5 and 7)"
./scripts/race-check.sh
RACE_CHECK_API=7 ./scripts/race-check.sh

for v in 1 3 4 6 7; do
  step "unit and mock-host tests, plugin API v$v (the mock host speaks that API)"
  cargo test --workspace --lib --no-default-features --features "plugin-api-v$v"
done

step "unit tests with the 10.1.0-v2 features anyhow and num-traits"
cargo test --lib --features anyhow,num-traits

step "all tests, plugin API v5: unit, mock host, real QEMU (linux-user 10.2 (v5; x86_64, aarch64, riscv64 guests) and 7.2 (v1); MTTCG system mode 7.2 (v1), 10.0 (v4; x86_64, aarch64) and 11.1 (v7; x86_64, aarch64, riscv64); one qemu-plugin-any file in all of them)"
cargo test --release --workspace
