#!/bin/bash
# Builds the libFuzzer targets and runs each one for SECONDS (one process at a time), then prints
# per target: executions, executions per second and crashes. Exits non-zero when any target
# crashed (panic, abort, timeout or out-of-memory), leaving the input under
# fuzz/target/artifacts/TARGET/ and the fuzzer's log under fuzz/target/logs/.
#
#   fuzz/run.sh SECONDS [TARGET...]     every target (or the ones named) for SECONDS each
#   FUZZ_RUNS=10000000 fuzz/run.sh 3600 stop each target at 10 M executions (or 3600 s)
#   FUZZ_NICE=19                        run the fuzzers at this niceness (default 0)
#
# Independent of qemu/: it needs cargo, a C++ compiler (libfuzzer-sys builds libFuzzer) and
# crates.io. Works with the stable toolchain (no sanitizer; see build-env.sh). The corpus each
# run grows is kept in fuzz/target/corpus/TARGET and reused by the next run; the committed seeds
# in fuzz/seeds/TARGET are read, never written.
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
secs=$1
shift
. ./build-env.sh
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^lifsea-init-fuzz$')
targets=${*:-$all}
for t in $targets; do
    grep -qx "$t" <<<"$all" || { echo "unknown target $t (have: $(echo $all))" >&2; exit 2; }
done
cargo build --release --quiet --target "$FUZZ_TARGET_TRIPLE" $(printf -- '--bin %s ' $targets)
bin=target/$FUZZ_TARGET_TRIPLE/release
runs=${FUZZ_RUNS:--1}
printf '%-12s %12s %9s %7s %8s\n' target executions exec/s seconds crashes
bad=0
# Longest input per target, where a longer one adds nothing but time (libFuzzer's default is
# 4096 bytes or the largest seed). cmdline: the x86 kernel keeps 2048 bytes of command line
# (COMMAND_LINE_SIZE). modules: seven files in one input, so time grows with the text; 2048 bytes
# is still dozens of alias/dep lines and a few requests, and every line parser sees the whole
# grammar in a line or two (the 6 KB seed is truncated, its head still loads). blockdev keeps
# its 17 KB seed's length: a GPT header at 512 and 128 entries of 128 bytes after it.
max_len() {
    case $1 in
        cmdline | modules) echo 2048 ;;
        *) echo 0 ;; # libFuzzer's default
    esac
}
for t in $targets; do
    corpus=target/corpus/$t artifacts=target/artifacts/$t log=target/logs/$t.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    start=$(date +%s.%N)
    rc=0
    nice -n "${FUZZ_NICE:-0}" "$bin/$t" -max_total_time="$secs" -runs="$runs" -timeout=25 \
        -rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$corpus" "seeds/$t" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -1)
    # A crashed run prints no final stats: take the last progress line's count instead.
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    execs=${execs:-0}
    crashes=$(find "$artifacts" -type f -newermt "@${start%.*}" | wc -l)
    [ "$rc" -eq 0 ] || [ "$crashes" -gt 0 ] || crashes=1
    elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    rate=$(awk -v n="$execs" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
    printf '%-12s %12s %9s %7s %8s\n' "$t" "$execs" "$rate" "$elapsed" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        bad=$((bad + 1))
        grep -m3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
        find "$artifacts" -type f -newermt "@${start%.*}" | sed 's/^/    input: fuzz\//'
    fi
done
n=$(wc -w <<<"$targets")
echo "fuzz: $n targets for up to ${secs}s each, $bad with crashes"
[ "$bad" -eq 0 ]
