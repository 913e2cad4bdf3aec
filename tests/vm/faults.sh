# Guest-side fault injection (issue 12), sourced by check.sh (busybox sh; uses its `result`) when
# the kernel command line has one of:
#   vmtest.faults    PID 1's oom_score_adj and nice; a fork bomb inside `pids-max` with the
#                    control API timed during it; containerd killed mid-start (Debian image only)
#   vmtest.oom       memory exhaustion with the OOM killer (a unit allocating without bound)
#   vmtest.powercut  installs units that write under /var, log fast and flip enable markers, then
#                    prints POWERCUT-READY; the host kills QEMU at chosen moments (tests/vm_faults.rs)
# Units are added at run time in /etc/lifsea/units (writable, persistent) and loaded by `reload`.

# Centiseconds since boot, without forking (a fork under TCG costs several milliseconds).
cs_now() {
    read -r up _ </proc/uptime
    echo "${up%.*}${up#*.}"
}

# One control API round trip (`initctl version`: connect, request, reply) in ms, 10 ms resolution;
# 99999 when it failed.
api_ms() {
    t0=$(cs_now)
    if initctl version >/dev/null 2>&1; then
        echo $((($(cs_now) - t0) * 10))
    else
        echo 99999
    fi
}

# A field of `initctl --json status UNIT` ("state", "pid", "last_exit", "restarts").
unit_field() { # UNIT FIELD
    initctl --json status "$1" 2>/dev/null | sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -1
}

wait_until() { # TENTHS COMMAND...: polls every 0.1 s
    n=$1
    shift
    while [ "$n" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

U=/etc/lifsea/units
mkdir -p $U

if grep -q 'vmtest.faults' /proc/cmdline; then
    # --- PID 1 is exempt from the OOM killer --------------------------------------------------
    adj=$(cat /proc/1/oom_score_adj)
    if [ "$adj" = -1000 ]; then
        result pid1-oom-score-adj PASS "-1000"
    else
        result pid1-oom-score-adj FAIL "oom_score_adj of PID 1 is $adj"
    fi
    # ... and runs at nice -10, while its units (this checker is one) get neither.
    nice_of() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f17; }
    shield="PID 1 nice $(nice_of 1); this unit: oom_score_adj $(cat /proc/$$/oom_score_adj), nice $(nice_of $$)"
    if [ "$(nice_of 1)" = -10 ] && [ "$(cat /proc/$$/oom_score_adj)" = 0 ] && [ "$(nice_of $$)" = 0 ]; then
        result pid1-shield PASS "$shield"
    else
        result pid1-shield FAIL "$shield"
    fi

    # --- fork bomb inside pids-max ---------------------------------------------------------------
    cat >$U/vm-bomb.toml <<'EOF'
cgroup = { pids-max = 64 }
restart = "always"
restart-delay = "10ms"
restart-delay-max = "50ms"
stop-timeout = "1s"
exec = ["/bin/sh", "-c", "b() { b | b & }; while :; do b; done"]
EOF
    # The same round trip before the bomb: what starting initctl itself costs under TCG.
    base=''
    for _ in $(seq 10); do base="$base $(api_ms)"; sleep 0.1; done
    echo "CHECK-INFO api-ms-before-bomb$base"
    initctl reload >/dev/null 2>&1
    initctl start vm-bomb >/dev/null 2>&1
    cg=/sys/fs/cgroup/system/vm-bomb
    bomb_live() { [ "$(cat $cg/pids.current 2>/dev/null || echo 0)" -ge 48 ]; }
    if ! wait_until 300 bomb_live; then
        result fork-bomb FAIL "the bomb never reached 48 tasks: pids.current=$(cat $cg/pids.current 2>&1)"
    else
        worst=0 peak=0 samples='' failed=0
        for _ in $(seq 30); do
            ms=$(api_ms)
            samples="$samples $ms"
            [ "$ms" -gt "$worst" ] && worst=$ms
            [ "$ms" = 99999 ] && failed=$((failed + 1))
            pc=$(cat $cg/pids.current)
            [ "$pc" -gt "$peak" ] && peak=$pc
            sleep 0.1
        done
        refused=$(sed -n 's/^max //p' $cg/pids.events)
        echo "CHECK-INFO fork-bomb-api-ms$samples"
        initctl stop vm-bomb >/dev/null 2>&1
        emptied() { [ "$(cat $cg/pids.current 2>/dev/null || echo 0)" = 0 ]; }
        emptied_ok=0
        wait_until 300 emptied && emptied_ok=1
        detail="pids.max=$(cat $cg/pids.max 2>/dev/null) peak=$peak forks refused=$refused api worst=${worst}ms over 30 calls (before the bomb:$base ms)"
        # Every call answered; the 100 ms bound itself is asserted in tests/ns_storm.rs on the
        # host: here a fork + exec of initctl under TCG alone costs hundreds of ms (see "before").
        # 65: a restarted main process joins a group the init has killed through cgroup.procs
        # (supervisor/cgroup.rs, `killed`), and the kernel lets a migration, unlike a fork, pass
        # pids.max; every fork inside stays refused at 64.
        if [ "$failed" = 0 ] && [ "$emptied_ok" = 1 ] && [ "$peak" -le 65 ] && [ "${refused:-0}" -gt 0 ]; then
            result fork-bomb PASS "$detail"
        else
            result fork-bomb FAIL "$detail, $failed calls failed, group emptied: $emptied_ok"
        fi
    fi
    rm -f $U/vm-bomb.toml
fi

if grep -q 'vmtest.oom' /proc/cmdline; then
    # --- memory exhaustion: the OOM killer picks the hog, never PID 1 ---------------------------
    cat >$U/vm-hog.toml <<'EOF'
restart = "no"
exec = ["/bin/sh", "-c", "exec tail /dev/zero"]
EOF
    initctl reload >/dev/null 2>&1
    initctl start vm-hog >/dev/null 2>&1
    worst=0 n=0 failed=0
    hog_done() { [ "$(unit_field vm-hog state)" = failed ]; }
    i=0
    while [ $i -lt 600 ] && ! hog_done; do
        ms=$(api_ms)
        n=$((n + 1))
        [ "$ms" = 99999 ] && failed=$((failed + 1))
        [ "$ms" != 99999 ] && [ "$ms" -gt "$worst" ] && worst=$ms
        sleep 0.2
        i=$((i + 1))
    done
    victim=$(dmesg | grep -m1 'Out of memory: Killed process' | sed 's/.*Killed process/Killed process/')
    last=$(unit_field vm-hog last_exit)
    detail="victim: ${victim:-none}; vm-hog: $last; PID 1 oom_score_adj $(cat /proc/1/oom_score_adj); api: $n calls during the pressure, $failed failed, worst ${worst}ms"
    echo "CHECK-INFO oom $detail"
    if [ "$last" = "killed by SIGKILL" ] && echo "$victim" | grep -q '(tail)' && [ "$failed" = 0 ] &&
        initctl version >/dev/null 2>&1; then
        result oom PASS "$detail"
    else
        result oom FAIL "$detail"
    fi
    rm -f $U/vm-hog.toml
    initctl reload >/dev/null 2>&1
fi

if grep -q 'vmtest.faults' /proc/cmdline; then

    # --- containerd killed while starting (before it reported READY=1) ---------------------------
    if initctl status containerd >/dev/null 2>&1; then
        r0=$(unit_field containerd restarts)
        initctl restart containerd >/dev/null 2>&1
        starting() {
            [ "$(unit_field containerd state)" = starting ] && p=$(unit_field containerd pid) && [ -n "$p" ] &&
                [ "$p" != null ]
        }
        if wait_until 300 starting && kill -9 "$p"; then
            killed_at=$(cs_now)
            back() { [ "$(unit_field containerd state)" = running ] && ctr version >/dev/null 2>&1; }
            if wait_until 1200 back; then
                result containerd-mid-start PASS "killed pid $p while starting; running again after $((($(cs_now) - killed_at) * 10)) ms, restarts $r0 -> $(unit_field containerd restarts), pid $(unit_field containerd pid)"
            else
                result containerd-mid-start FAIL "not back within 120 s: $(initctl status containerd 2>&1 | tr '\n' ' ')"
            fi
        else
            result containerd-mid-start FAIL "never saw containerd starting with a pid: $(initctl status containerd 2>&1 | tr '\n' ' ')"
        fi
    fi
fi

if grep -q 'vmtest.powercut' /proc/cmdline; then
    # Units writing under /var, logging fast (the init writes their logs) and flipping enable
    # markers (the init writes those): the state a power cut must not corrupt.
    if [ ! -e $U/vm-pc-writer.toml ]; then
        cat >$U/vm-pc-writer.toml <<'EOF'
exec = ["/bin/sh", "-c", "mkdir -p /var/lib/pc; i=0; while :; do i=$((i+1)); dd if=/dev/zero of=/var/lib/pc/f$((i % 8)) bs=64k count=16 2>/dev/null; echo $i >> /var/lib/pc/count; sleep 0.05; done"]
EOF
        cat >$U/vm-pc-chatty.toml <<'EOF'
exec = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo \"line $i of the chatty unit, long enough to fill its log\"; [ $((i % 100)) = 0 ] && sleep 0.1; done"]
EOF
        cat >$U/vm-pc-dummy.toml <<'EOF'
exec = ["/bin/sleep", "100000"]
EOF
        cat >$U/vm-pc-markers.toml <<'EOF'
exec = ["/bin/sh", "-c", "while :; do initctl disable vm-pc-dummy; sleep 0.1; initctl enable vm-pc-dummy; sleep 0.1; done >/dev/null 2>&1"]
EOF
        initctl reload >/dev/null 2>&1
    fi
    for u in vm-pc-writer vm-pc-chatty vm-pc-markers; do
        initctl start $u >/dev/null 2>&1
    done
    echo "POWERCUT-READY machine-id=$(cat /etc/machine-id) leases=$(ls /var/lib/lifsea 2>/dev/null | tr '\n' ' ')"
fi
