#!/bin/bash
# The whole test suite: unit tests, namespace tests (root), VM tests (QEMU TCG).
#
# Tests that need something heavy (QEMU boots, the Debian kernel) are #[ignore]d with the reason for
# a plain `cargo test`; this script fetches what they need and runs them too (--include-ignored),
# so nothing reports "ok" having done nothing. The last line sums up every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo build --release
# The Debian kernel (cached) for the tests that read its module tree.
bash -c '. qemu/lib.sh && ensure_kernel'
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
cargo test --release --no-fail-fast -- --include-ignored --test-threads=2 2>&1 | tee "$log" || rc=$?
# Panics injected at named points need the test-only feature (never in a production build).
cargo test --release --features fault-injection --test ns_faults -- --test-threads=2 2>&1 \
    | tee -a "$log" || rc=$?
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) s += $i
        }
        n++
     }
     END { printf "\nsuite: %d test binaries\n", n; printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
