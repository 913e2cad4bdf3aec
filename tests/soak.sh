#!/bin/bash
# Soak test (issue 12 item 4; not CI): runs lifsea-init as PID 1 of a fresh PID namespace for
# MINUTES minutes while units crash and restart on their own and a driver loop reloads unit files,
# toggles enable markers and drives every control verb through initctl. PID 1's open fds, RSS and
# CPU time are sampled after a warm-up and at the end; the run fails when fds or RSS grew.
#
#   tests/soak.sh MINUTES            (root: unshare; LIFSEA_BIN=path picks the binary,
#                                     default target/x86_64-unknown-linux-musl/release/lifsea-init)
#
# Why a warm-up: the first minute fills the log rings, the timeline and the allocator's arenas to
# their steady size; growth is judged from there on. The fd count moves with the churn (a unit's
# pipes and log file exist while it does), so each side is the fewest fds seen over 20 driver
# rounds (~30 s): after the warm-up, and at the end. Allowed slack: 0 fds, RSS +512 KiB (one
# allocator arena page run; a leak over 30 minutes of churn is far larger).
# Prints `SOAK start|end fds=N rss_kb=N cpu_ticks=N`, one `SOAK sample` per minute and a summary.
set -euo pipefail

minutes=${1:?usage: tests/soak.sh MINUTES}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LIFSEA_BIN:-$root/target/x86_64-unknown-linux-musl/release/lifsea-init}
[ -x "$bin" ] || { echo "soak: no binary $bin (cargo build --release)" >&2; exit 2; }
warmup=${SOAK_WARMUP:-60}
rss_slack_kb=${SOAK_RSS_SLACK_KB:-512}

dir=$(mktemp -d /tmp/lifsea-soak.XXXXXX)
units=$dir/units run=$dir/run out=$dir/out
mkdir -p "$units" "$run" "$out" "$dir/logs"
# Copy the binary: a rebuild during the run must not change what is being measured.
cp "$bin" "$dir/lifsea-init"
bin=$dir/lifsea-init

cg=
cg2=$(awk '$0 ~ / - cgroup2 / {print $5; exit}' /proc/self/mountinfo)
if [ -n "$cg2" ]; then
    cg=$cg2/lifsea-soak-$$
    mkdir "$cg"
fi

initpid= upid=
cleanup() {
    set +e
    [ -z "$upid" ] || kill -KILL "$upid" 2>/dev/null
    [ -z "$initpid" ] || kill -KILL "$initpid" 2>/dev/null
    if [ -n "$cg" ]; then
        echo 1 >"$cg/cgroup.kill" 2>/dev/null
        for _ in $(seq 50); do
            grep -q 'populated 0' "$cg/cgroup.events" 2>/dev/null && break
            sleep 0.1
        done
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    fi
    [ -n "${SOAK_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- units -----------------------------------------------------------------------------------
# Crashes every ~0.3 s forever; a short reset-after keeps it restarting fast (worst-case churn).
cat >"$units/crasher.toml" <<EOF
restart = "always"
restart-delay = "50ms"
restart-reset-after = "200ms"
exec = ["/bin/sh", "-c", "echo crash \$\$; sleep 0.3; exit 3"]
EOF
# Dies of a signal now and then, with a child left in its group for the cgroup kill.
cat >"$units/killed.toml" <<EOF
restart = "on-failure"
restart-delay = "100ms"
restart-reset-after = "1s"
exec = ["/bin/sh", "-c", "sleep 1000 & sleep 1.5; kill -9 \$\$"]
EOF
# Chatty: fills its log ring and log file.
cat >"$units/chatty.toml" <<EOF
exec = ["/bin/sh", "-c", "i=0; while :; do i=\$((i+1)); echo line \$i of chatty output; if [ \$((i % 50)) = 0 ]; then sleep 0.1; fi; done"]
EOF
# Readiness over an fd, controlled (stop/start/restart) by the driver.
cat >"$units/ctl.toml" <<EOF
ready = { fd = 3 }
stop-timeout = "1s"
exec = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo >&3; while :; do sleep 0.2; done"]
EOF
# Oneshot re-run by the driver.
cat >"$units/once.toml" <<EOF
type = "oneshot"
exec = ["/bin/sh", "-c", "echo once ran"]
EOF
# Ignores SIGTERM: every stop escalates to SIGKILL at the timeout.
cat >"$units/stubborn.toml" <<EOF
stop-timeout = "300ms"
exec = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"]
EOF

# --- the init --------------------------------------------------------------------------------
(
    # $BASHPID, not $$ (the script's own pid): only the init goes into the group it kills.
    [ -z "$cg" ] || echo "$BASHPID" >"$cg/cgroup.procs"
    exec unshare --pid --fork --mount-proc "$bin" --container --units "$units" --run-dir "$run" \
        --log-dir "$dir/logs"
) </dev/null >/dev/null 2>"$dir/init.log" &
upid=$!
for _ in $(seq 100); do
    initpid=$(pgrep -P "$upid" | head -1 || true)
    [ -n "$initpid" ] && [ -S "$run/control.sock" ] && break
    sleep 0.1
done
[ -n "$initpid" ] || { echo "soak: the init did not start" >&2; cat "$dir/init.log" >&2; exit 1; }

ctl() { timeout 10 "$bin" initctl --run-dir "$run" "$@"; }

sample() { # label
    local fds rss ticks zombies
    fds=$(find "/proc/$initpid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$initpid/status")
    ticks=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$initpid/stat")
    zombies=$( (grep -l "^[0-9]* (.*) Z $initpid " /proc/[0-9]*/stat 2>/dev/null || true) | wc -l)
    echo "SOAK $1 t=$(($(date +%s) - t0))s fds=$fds rss_kb=$rss cpu_ticks=$ticks zombies=$zombies"
}

# --- the driver loop -------------------------------------------------------------------------
t0=$(date +%s)
end=$((t0 + minutes * 60))
start_line= next_minute=$((t0 + 60)) rounds=0 errors=0
api() { # a verb that must answer
    if ! ctl "$@" >/dev/null 2>>"$dir/driver.err"; then
        errors=$((errors + 1))
        echo "soak: initctl $* failed" >>"$dir/driver.err"
    fi
}
while [ "$(date +%s)" -lt "$end" ]; do
    kill -0 "$initpid" 2>/dev/null || { echo "soak: the init died" >&2; tail -50 "$dir/init.log" >&2; exit 1; }
    rounds=$((rounds + 1))
    api status
    api status crasher
    api restart ctl
    api stop ctl
    api start ctl
    api start once
    api restart stubborn
    api logs -n 20 chatty
    api analyze
    # A unit appears and disappears through reload; another is edited in place.
    if [ $((rounds % 2)) = 0 ]; then
        printf 'exec = ["/bin/sh", "-c", "echo temp; sleep 100"]\n' >"$units/temp.toml"
    else
        rm -f "$units/temp.toml"
    fi
    printf 'type = "oneshot"\nexec = ["/bin/sh", "-c", "echo once ran %s"]\n' "$rounds" >"$units/once.toml"
    api reload
    if [ $((rounds % 3)) = 0 ]; then api disable chatty; else api enable chatty; fi
    # A broken file next to good ones, now and then: that reload must answer with the error.
    if [ $((rounds % 5)) = 0 ]; then
        echo 'exec = 3' >"$units/broken.toml"
        if ctl reload >/dev/null 2>"$dir/refused.err" || ! grep -q 'broken.toml:1:8' "$dir/refused.err"; then
            errors=$((errors + 1))
            echo "soak: a reload with a broken file was not refused with its position" >>"$dir/driver.err"
        fi
        rm -f "$units/broken.toml"
    fi
    now=$(date +%s)
    # Fewest fds over the last 20 rounds (see the top).
    fds_recent="$(find "/proc/$initpid/fd" -mindepth 1 -maxdepth 1 | wc -l) ${fds_recent:-}"
    fds_recent=$(echo "$fds_recent" | cut -d' ' -f1-20)
    fds_min=$(echo "$fds_recent" | tr ' ' '\n' | grep . | sort -n | head -1)
    if [ -n "$start_line" ] && [ -z "${fds_min_start:-}" ] && [ "$rounds" -ge $((start_round + 20)) ]; then
        fds_min_start=$fds_min
        echo "SOAK start-window fds_min=$fds_min_start (rounds $start_round..$rounds)"
    fi
    if [ -z "$start_line" ] && [ $((now - t0)) -ge "$warmup" ]; then
        start_round=$rounds
        fds_recent=""
        start_line=$(sample start)
        echo "$start_line"
    fi
    if [ "$now" -ge "$next_minute" ]; then
        sample sample
        next_minute=$((next_minute + 60))
    fi
    sleep 0.5
done
[ -n "$start_line" ] || { echo "soak: shorter than the warm-up ($warmup s)" >&2; exit 2; }
end_line=$(sample end)
echo "$end_line"

field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
[ -n "${fds_min_start:-}" ] || { echo "soak: fewer than 20 rounds after the warm-up" >&2; exit 2; }
fds0=$fds_min_start fds1=$fds_min
rss0=$(field rss_kb "$start_line") rss1=$(field rss_kb "$end_line")
cpu0=$(field cpu_ticks "$start_line") cpu1=$(field cpu_ticks "$end_line")
t_start=$(sed -n 's/.* t=\([0-9]*\)s.*/\1/p' <<<"$start_line")
t_end=$(sed -n 's/.* t=\([0-9]*\)s.*/\1/p' <<<"$end_line")
hz=$(getconf CLK_TCK)
cpu_pct=$(awk -v c=$((cpu1 - cpu0)) -v hz="$hz" -v s=$((t_end - t_start)) 'BEGIN {printf "%.2f", 100 * c / hz / (s > 0 ? s : 1)}')
restarts=$(grep -c 'crash ' "$dir/logs/crasher.log" 2>/dev/null || echo "?")
echo "SOAK summary minutes=$minutes rounds=$rounds api_errors=$errors fds(min of 20 rounds)=$fds0->$fds1 rss_kb=$rss0->$rss1 cpu=${cpu_pct}% (PID 1, between the samples) crasher_runs=$restarts"
fail=0
if [ "$fds1" -gt "$fds0" ]; then echo "SOAK FAIL: fds grew $fds0 -> $fds1"; ls -l "/proc/$initpid/fd"; fail=1; fi
if [ "$rss1" -gt $((rss0 + rss_slack_kb)) ]; then echo "SOAK FAIL: RSS grew $rss0 -> $rss1 KiB"; fail=1; fi
if [ "$errors" -gt 0 ]; then echo "SOAK FAIL: $errors API calls failed:"; tail -20 "$dir/driver.err"; fail=1; fi
if grep -q 'panicked' "$dir/init.log"; then echo "SOAK FAIL: a panic in the init's log"; grep -m5 panicked "$dir/init.log"; fail=1; fi
# Orderly end: the init stops everything and exits 0.
kill -TERM "$initpid"
if ! timeout 30 tail --pid="$initpid" -f /dev/null; then echo "SOAK FAIL: no exit 30 s after SIGTERM"; fail=1; fi
wait "$upid" || { echo "SOAK FAIL: the init exited $?"; fail=1; }
upid= initpid=
[ "$fail" = 0 ] && echo "SOAK PASS"
exit "$fail"
