#!/bin/sh
# The boot benchmark's marker, run in the guest once the init thinks the node is ready: waits until
# the marker condition holds, then prints one line on the console that the host times:
#   BENCH-MARKER uptime=SECONDS rss_kb=PID1_RSS pid1=NAME cond=CONDITION
# The condition comes from the kernel command line, `bench.marker=containerd[,lease]` (default
# containerd), so the host sets it per variant: `containerd` means `ctr version` answers, `lease`
# that an interface other than lo has a global IPv4 address (a DHCP lease under QEMU's user network).
# `--svg` then prints lifsea-init's boot chart (`initctl analyze --svg`) base64-encoded between
# BENCH-SVG-BEGIN and BENCH-SVG-END, and its text timeline between BENCH-ANALYZE-BEGIN/END.
# POSIX sh (dash on Debian); polls every 20 ms so the marker lags the condition by little.

if [ -w /dev/console ]; then exec >/dev/console 2>&1; fi
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

svg=0
for a in "$@"; do
    case $a in --svg) svg=1 ;; esac
done
cond=containerd
for w in $(cat /proc/cmdline); do
    case $w in bench.marker=*) cond=${w#bench.marker=} ;; esac
done

sock=/run/containerd/containerd.sock
containerd_ok() {
    [ -S "$sock" ] && ctr --address "$sock" version >/dev/null 2>&1
}
lease_ok() {
    ip -4 -o addr show scope global 2>/dev/null | grep -q ' inet '
}

# Bounded: a variant that never gets there shows up as a timeout on the host, with this line.
tries=0
for c in $(echo "$cond" | tr ',' ' '); do
    case $c in
        containerd) check=containerd_ok ;;
        lease) check=lease_ok ;;
        *) echo "BENCH-ERROR unknown marker condition $c"; exit 1 ;;
    esac
    until $check; do
        tries=$((tries + 1))
        if [ $tries -gt 6000 ]; then
            echo "BENCH-ERROR condition $c not reached"
            exit 1
        fi
        sleep 0.02
    done
done

# Builtins only from here to the marker: a fork and exec costs tens of milliseconds in a loaded TCG
# guest, and would sit between the uptime read here and the host seeing the line.
rss=
while read -r key value _; do
    case $key in VmRSS:) rss=$value ;; esac
done </proc/1/status
read -r comm </proc/1/comm
read -r up _ </proc/uptime
echo "BENCH-MARKER uptime=$up rss_kb=$rss pid1=$comm cond=$cond"

# Issue 9's comparison, after the marker so it costs the measurement nothing: what systemd spends
# on udev's coldplug in the booted system. The figures `systemd-analyze blame` prints (activating
# to active, for a oneshot: its whole run) read straight from the units' timestamps, because blame
# itself refuses to answer until boot is finished, which this unit holds back. One line per unit:
#   BENCH-UDEV unit=NAME state=ACTIVESTATE start_us=T active_us=T
# lifsea-init's counterpart is its own console line "devices: coldplug done in N ms".
if [ "$comm" = systemd ]; then
    for u in systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service; do
        st= t0= t1=
        while IFS='=' read -r k v; do
            case $k in
                ActiveState) st=$v ;;
                InactiveExitTimestampMonotonic) t0=$v ;;
                ActiveEnterTimestampMonotonic) t1=$v ;;
            esac
        done <<EOF2
$(systemctl show -p ActiveState -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic "$u")
EOF2
        echo "BENCH-UDEV unit=$u state=$st start_us=$t0 active_us=$t1"
    done
    echo "BENCH-UDEV-END"
fi

if [ $svg = 1 ] && command -v initctl >/dev/null 2>&1; then
    # The chart covers the whole boot only once boot is complete (every unit ready).
    i=0
    while [ ! -e /run/lifsea/boot-timeline.json ] && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    echo "BENCH-ANALYZE-BEGIN"
    initctl analyze 2>&1
    echo "BENCH-ANALYZE-END"
    if initctl analyze --svg /run/bench-boot.svg >/dev/null 2>&1; then
        echo "BENCH-SVG-BEGIN"
        base64 /run/bench-boot.svg
        echo "BENCH-SVG-END"
    else
        echo "BENCH-ERROR initctl analyze --svg failed"
    fi
fi
exit 0
