#!/bin/bash
# The whole test suite: unit tests, namespace tests (root), VM tests (QEMU TCG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo build --release
cargo test --release -- --test-threads=2
