# Sourced by run.sh: the flags cargo-fuzz passes (coverage instrumentation for libFuzzer), without
# a sanitizer, so that a stable toolchain builds the targets too. Debug assertions and overflow
# checks are on: an overflow that would silently wrap in the release init is a finding.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
FUZZ_TARGET_TRIPLE=x86_64-unknown-linux-gnu
