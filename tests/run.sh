#!/bin/bash
# The whole test suite: unit tests, namespace tests (root), VM tests (QEMU TCG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo build --release
# VM tests (tests/vm_boot.rs) run only when asked: they boot QEMU and download a kernel.
export LIFSEA_VM_TESTS=${LIFSEA_VM_TESTS:-1}
cargo test --release -- --test-threads=2
# Panic injection (issue 12, finding 3): a build with the test-only feature, never shipped.
cargo test --release --features fault-injection --test ns_faults
