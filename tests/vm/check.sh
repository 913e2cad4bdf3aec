#!/bin/sh
# Guest-side checker for the VM tests (busybox sh). Runs as a oneshot unit in the booted image,
# prints one `CHECK name: PASS|FAIL|SKIP detail` line per check on the console, then asks PID 1 for
# an orderly poweroff (SIGUSR2, the busybox convention) so shutdown is tested too.
#
# The host side (qemu/boot.sh callers) greps these lines; `CHECKS-DONE pass=N fail=M` closes the list.

# The console is the one place every init variant shows: do not depend on unit-output capture.
if [ -w /dev/console ]; then exec >/dev/console 2>&1; fi
# The OS update tests (tests/vm_os.rs) drive the boot themselves.
case " $(cat /proc/cmdline) " in *" vmtest.os="*) exec /usr/lib/lifsea/tests/os.sh ;; esac

pass=0
fail=0
result() { # name PASS|FAIL|SKIP detail...
    name=$1 status=$2
    shift 2
    echo "CHECK $name: $status $*"
    case $status in
        PASS) pass=$((pass + 1)) ;;
        FAIL) fail=$((fail + 1)) ;;
    esac
}

uptime_s=$(cut -d' ' -f1 /proc/uptime)
echo "CHECK-START uptime=$uptime_s"
# The init's boot timeline so far (qemu/measure-boot.sh reads the stamps from the console).
if [ -r /run/lifsea/boot-timeline.json ]; then
    echo "CHECK-TIMELINE $(tr -d '\n' </run/lifsea/boot-timeline.json)"
fi

# vmtest.figures (a second boot of the Debian image, after the first one wrote kubelet's config and
# its admin unit): only the node's figures of this boot, kubelet's readiness at boot, then poweroff.
if grep -q 'vmtest.figures' /proc/cmdline && command -v initctl >/dev/null 2>&1; then
    since() { initctl status "$1" 2>/dev/null | sed -n 's/.*state: running (since \([0-9.]*\)s after boot.*/\1/p'; }
    i=0
    while [ -z "$(since kubelet)" ] && [ $i -lt 1800 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    k=$(since kubelet)
    c=$(since containerd)
    echo "CHECK-INFO boot-figures containerd-ready-at=${c}s kubelet-ready-at=${k}s"
    if [ -n "$k" ] && [ -n "$c" ] && awk "BEGIN { exit !($k > $c) }"; then
        result kubelet-at-boot PASS "containerd ready at ${c}s, kubelet stand-in ready at ${k}s"
    else
        result kubelet-at-boot FAIL "containerd '$c', kubelet '$k': $(initctl status kubelet 2>&1 | tr '\n' '|')"
    fi
    echo "CHECKS-DONE pass=$pass fail=$fail"
    sync
    kill -USR2 1
    exit 0
fi

# /usr is the read-only half of the deployment: writes must fail with EROFS, not EACCES or ENOENT.
if out=$(touch /usr/.lifsea-write-test 2>&1); then
    rm -f /usr/.lifsea-write-test
    result usr-readonly FAIL "touch /usr/.lifsea-write-test succeeded"
elif echo "$out" | grep -q 'Read-only file system'; then
    result usr-readonly PASS "$out"
else
    result usr-readonly FAIL "touch /usr failed otherwise: $out"
fi

for d in /etc /var; do
    f=$d/.lifsea-write-test
    if echo ok >"$f" 2>/dev/null && [ "$(cat "$f")" = ok ]; then
        rm -f "$f"
        result "writable-${d#/}" PASS "$d"
    else
        result "writable-${d#/}" FAIL "cannot write $f"
    fi
done

# A counter in /var must survive a reboot: /var is bound from the stateroot, not a tmpfs.
state=/var/lib/lifsea-test
mkdir -p "$state"
prev=$(cat "$state/boots" 2>/dev/null || echo 0)
boot=$((prev + 1))
echo "$boot" >"$state/boots"
sync
echo "CHECK-INFO boot=$boot"
if [ "$prev" -eq 0 ]; then
    result var-persist SKIP "first boot, marker written"
else
    result var-persist PASS "found marker of boot $prev"
fi

# Mounts: mountinfo fields are: id parent dev root mountpoint options ... - fstype source superopts.
mi=/proc/self/mountinfo
mnt_field() { # mountpoint -> "options fstype" of the last (topmost) mount there
    awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { o = $6 " " $(i + 1) } } END { print o }' "$mi"
}
# The second line: mounted right after containerd's spawn (fact `mounts`, which this unit is after).
for m in / /usr /var /sysroot /boot /proc /sys /dev /run /sys/fs/cgroup \
        /dev/pts /dev/shm /dev/mqueue /sys/kernel/security /sys/fs/bpf; do
    f=$(mnt_field "$m")
    if [ -z "$f" ]; then
        result "mount:$m" FAIL "not a mount point"
        continue
    fi
    opts=${f% *} fstype=${f#* }
    case $m in
        /usr)
            case ",$opts," in
                *,ro,*) result "mount:$m" PASS "$fstype $opts" ;;
                *) result "mount:$m" FAIL "not read-only: $opts" ;;
            esac ;;
        /sys/fs/cgroup)
            if [ "$fstype" = cgroup2 ]; then result "mount:$m" PASS "$fstype"; else result "mount:$m" FAIL "type $fstype"; fi ;;
        *) result "mount:$m" PASS "$fstype $opts" ;;
    esac
done

# The virtio-net NIC works only if its driver was loaded by modalias (a module, not built in).
nics=
for d in /sys/class/net/*/device/driver; do
    [ -e "$d" ] || continue
    drv=$(basename "$(readlink "$d")")
    iface=${d#/sys/class/net/}
    nics="$nics ${iface%%/*}:$drv"
done
case $nics in
    *:virtio_net*) result netdev-virtio PASS "$nics" ;;
    *) result netdev-virtio FAIL "no virtio_net interface:${nics:- none}" ;;
esac

# Networking (issue 8): the init's own DHCP client on eth0 under QEMU user networking
# (restrict=on): 10.0.2.15/24, default route via 10.0.2.2, nameserver 10.0.2.3, network-online
# reached, and vm-net-online (a unit that requires network-online) ran. Waits at most 20 s.
if command -v initctl >/dev/null 2>&1; then
    i=0
    while ! initctl net 2>/dev/null | grep -q 'network-online: reached' && [ $i -lt 200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    net=$(initctl net 2>&1)
    echo "CHECK-INFO net-after=${i}00ms"
    if echo "$net" | grep -q 'network-online: reached'; then
        result net-online PASS "$(echo "$net" | grep '^LEASE' | head -1)"
    else
        result net-online FAIL "$(echo "$net" | tr '\n' '|')"
    fi
    if echo "$net" | grep -Eq '^  eth0 +10\.0\.2\.15/24$'; then
        result net-address PASS "eth0 10.0.2.15/24"
    else
        result net-address FAIL "$(echo "$net" | grep -A5 '^ADDRESSES' | tr '\n' '|')"
    fi
    # /proc/net/route: destination 00000000, gateway 10.0.2.2 in little-endian hex.
    if awk '$1 == "eth0" && $2 == "00000000" && $3 == "0202000A" { f = 1 } END { exit !f }' /proc/net/route; then
        result net-default-route PASS "default via 10.0.2.2 dev eth0"
    else
        result net-default-route FAIL "$(tr '\n' '|' </proc/net/route)"
    fi
    if grep -q '^nameserver 10\.0\.2\.3$' /etc/resolv.conf 2>/dev/null; then
        result net-resolv PASS "$(ls -l /etc/resolv.conf | sed 's/.* \/etc/\/etc/')"
    else
        result net-resolv FAIL "$(tr '\n' '|' </etc/resolv.conf 2>&1)"
    fi
    i=0
    while [ ! -e /run/lifsea-test/net-online ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ -e /run/lifsea-test/net-online ]; then
        result net-online-unit PASS "$(cat /run/lifsea-test/net-online)"
    else
        result net-online-unit FAIL "vm-net-online did not run"
    fi
else
    for c in net-online net-address net-default-route net-resolv net-online-unit; do
        result $c SKIP "no initctl in this image"
    done
fi

# Which deployment is / (the root field of its mount: /ostree/deploy/OS/deploy/CSUM.SERIAL).
echo "CHECK-INFO deployment=$(awk '$5 == "/" { r = $4 } END { print r }' "$mi")"

# / must be the deployment itself (bound), /sysroot the physical root: both from the same disk.
if [ -e /sysroot/ostree/deploy ]; then
    result sysroot-physical PASS "/sysroot/ostree/deploy present"
else
    result sysroot-physical FAIL "/sysroot/ostree/deploy missing"
fi

if [ -e /run/ostree-booted ]; then
    result ostree-booted PASS /run/ostree-booted
else
    result ostree-booted FAIL "/run/ostree-booted missing"
fi

if grep -q 'ostree=' /proc/cmdline; then
    result cmdline-ostree PASS "$(tr ' ' '\n' </proc/cmdline | grep '^ostree=')"
else
    result cmdline-ostree FAIL "no ostree= on the kernel command line"
fi

# The real ostree CLI (Debian image only) recognises the booted deployment: same dev/inode as /.
if command -v ostree >/dev/null 2>&1; then
    st=$(ostree admin status 2>&1)
    if echo "$st" | grep -q '^\* '; then
        result ostree-status PASS "$(echo "$st" | grep '^\* ')"
    else
        result ostree-status FAIL "$(echo "$st" | tr '\n' '|')"
    fi
else
    result ostree-status SKIP "no ostree CLI in this image"
fi

# containerd (Debian image only): the unit is ordered before this checker (wants), so by now it
# must answer on its socket.
if [ -x /usr/bin/ctr ]; then
    if out=$(timeout 20 ctr --address /run/containerd/containerd.sock version 2>&1); then
        result containerd PASS "$(echo "$out" | grep -m1 'Version' | tr -s ' ')"
    else
        result containerd FAIL "$(echo "$out" | tr '\n' '|')"
    fi
else
    result containerd SKIP "no containerd in this image"
fi

# A Kubernetes node (Debian image only; docs/node.md): node-prep's work, a container run by ctr from
# a local rootfs below /kubepods, and that container surviving a kill -9 of containerd (kill = "main").
# The container "long" is left running: the poweroff below must still be clean.
if [ -d /usr/lib/lifsea/tests/ctr-rootfs ] && [ -x /usr/bin/ctr ] && command -v initctl >/dev/null 2>&1; then
    up() { cut -d' ' -f1 /proc/uptime; }
    i=0
    while ! initctl status node-prep 2>/dev/null | grep -q 'state: exited' && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    np=$(initctl status node-prep 2>&1 | grep 'state:')
    why=
    echo "$np" | grep -q 'state: exited' || why="$why node-prep:$np"
    grep -q '^br_netfilter ' /proc/modules || why="$why br_netfilter-not-loaded"
    [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>&1)" = 1 ] || why="$why bridge-nf-call-iptables"
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || why="$why ip_forward"
    for c in cpu memory pids; do
        grep -qw $c /sys/fs/cgroup/kubepods/cgroup.subtree_control 2>/dev/null || why="$why kubepods-no-$c"
    done
    [ -d /var/lib/kubelet ] && [ -d /etc/kubernetes ] || why="$why directories"
    [ "$(wc -l </proc/swaps)" -le 1 ] || why="$why swap-on"
    if [ -z "$why" ]; then
        result node-prep PASS "$np; kubepods: $(cat /sys/fs/cgroup/kubepods/cgroup.subtree_control)"
    else
        result node-prep FAIL "$why"
    fi
    # Ready since (CLOCK_BOOTTIME, i.e. guest uptime): the measurement for docs/node.md.
    echo "CHECK-INFO containerd-ready-at=$(initctl status containerd | sed -n 's/.*state: running (since \([0-9.]*s\) after boot.*/\1/p')"
    rf=/var/lib/lifsea-test/ctr-rootfs
    rm -rf "$rf"
    mkdir -p /var/lib/lifsea-test
    cp -a /usr/lib/lifsea/tests/ctr-rootfs "$rf"
    out=$(timeout 60 ctr run --rm --cgroup /kubepods/lifsea-marker --rootfs "$rf" lifsea-marker \
        /bin/sh -c 'echo LIFSEA-CTR-MARKER; cat /proc/self/cgroup' 2>&1)
    if echo "$out" | grep -q LIFSEA-CTR-MARKER && echo "$out" | grep -q '^0::/kubepods/lifsea-marker$'; then
        result ctr-run PASS "$(echo "$out" | tr '\n' ' ')"
    else
        result ctr-run FAIL "$(echo "$out" | tr '\n' '|')"
    fi
    # A long-running task, then containerd's main process killed hard.
    timeout 60 ctr run -d --cgroup /kubepods/lifsea-long --rootfs "$rf" lifsea-long /bin/sleep 3600 >/dev/null 2>&1
    old=$(initctl status containerd | awk '$1 == "pid:" { print $2 }')
    tl=$(ctr task ls 2>&1)
    if [ -n "$old" ] && echo "$tl" | grep -q 'lifsea-long.*RUNNING'; then
        kill -9 "$old"
        t0=$(up)
        i=0
        new=$old
        while [ $i -lt 300 ]; do
            new=$(initctl status containerd | awk '$1 == "pid:" { print $2 }')
            if [ -n "$new" ] && [ "$new" != "$old" ] && [ "$new" != - ] && initctl status containerd | grep -q 'state: running'; then
                break
            fi
            sleep 0.1
            i=$((i + 1))
        done
        t1=$(up)
        tl=$(timeout 20 ctr task ls 2>&1)
        if [ "$new" != "$old" ] && echo "$tl" | grep -q 'lifsea-long.*RUNNING'; then
            result ctr-survives-restart PASS "containerd $old -> $new ready again after $(awk "BEGIN { print $t1 - $t0 }") s; $(echo "$tl" | tr -s ' ' | tr '\n' '|')"
        else
            result ctr-survives-restart FAIL "containerd $old -> $new; $(echo "$tl" | tr '\n' '|')"
        fi
    else
        result ctr-survives-restart FAIL "containerd pid '$old', tasks: $(echo "$tl" | tr '\n' '|')"
    fi
fi

# The ops container (docs/node.md, "Ops container"): `initctl ops` runs a toolbox container
# through containerd with the host's root at /host, the host's pid namespace, its cgroup below
# /system/ops; the exit status comes back; nothing of it is left afterwards; every session is logged.
if [ -d /usr/lib/lifsea/toolbox ] && [ -x /usr/bin/ctr ] && command -v initctl >/dev/null 2>&1; then
    ops_left() {
        c=$(ctr -n lifsea-ops containers ls -q 2>&1)
        t=$(ctr -n lifsea-ops tasks ls -q 2>&1)
        n=$(ctr -n lifsea-ops snapshots ls 2>&1 | tail -n +2)
        echo "$c$t$n"
    }
    out=$(timeout 120 initctl ops -- cat /host/etc/hostname 2>&1)
    rc=$?
    left=$(ops_left)
    if [ $rc -eq 0 ] && [ "$out" = "$(cat /etc/hostname)" ] && [ -z "$left" ]; then
        result ops-hostname PASS "printed '$out'; no ops container, task or snapshot left"
    else
        result ops-hostname FAIL "rc=$rc out='$(echo "$out" | tr '\n' '|')' left='$(echo "$left" | tr '\n' '|')'"
    fi
    timeout 120 initctl ops -- sh -c 'exit 7' >/dev/null 2>&1
    rc=$?
    out=$(timeout 120 initctl ops -- sh -c 'cat /proc/1/comm; grep "^0::" /proc/self/cgroup; ls /host/sysroot/ostree >/dev/null && echo host-root-ok' 2>&1)
    host1=$(cat /proc/1/comm)
    left=$(ops_left)
    if [ $rc -eq 7 ] && echo "$out" | grep -qx "$host1" && echo "$out" | grep -q '^0::/system/ops/ops-' \
        && echo "$out" | grep -qx host-root-ok && [ -z "$left" ]; then
        result ops-exit-status PASS "exit 7 came back; $(echo "$out" | tr '\n' ' ')"
    else
        result ops-exit-status FAIL "rc=$rc out='$(echo "$out" | tr '\n' '|')' pid1=$host1 left='$(echo "$left" | tr '\n' '|')'"
    fi
    # The figure for docs/node.md: `initctl ops -- true` from call to exit, five times.
    times=
    for i in 1 2 3 4 5; do
        t0=$(cut -d' ' -f1 /proc/uptime)
        timeout 120 initctl ops -- true >/dev/null 2>&1
        t1=$(cut -d' ' -f1 /proc/uptime)
        times="$times $(awk "BEGIN { printf \"%d\", ($t1 - $t0) * 1000 }")"
    done
    echo "CHECK-INFO ops-true-ms=$(echo $times | tr ' ' '\n' | sort -n | sed -n 3p) all:$times"
    n=$(grep -c ' start uid=0 ' /var/log/lifsea/ops.log 2>/dev/null)
    e=$(grep -c ' end uid=0 ' /var/log/lifsea/ops.log 2>/dev/null)
    if [ "$n" = 8 ] && [ "$e" = 8 ]; then
        result ops-session-log PASS "$(tail -1 /var/log/lifsea/ops.log)"
    else
        result ops-session-log FAIL "starts=$n ends=$e: $(tr '\n' '|' </var/log/lifsea/ops.log 2>&1)"
    fi
fi

# The kubelet stand-in through the shipped unit (only its exec path swapped; an admin override in
# /etc): skipped without its config, started without a reboot once the file is written, after
# containerd is ready, in podruntime/kubelet with the documented flags, ready by HTTP /healthz.
if [ -x /usr/lib/lifsea/tests/kubelet-standin ] && [ -f /usr/lib/lifsea/units/kubelet.toml ] && command -v initctl >/dev/null 2>&1; then
    sed 's|"/usr/bin/kubelet"|"/usr/lib/lifsea/tests/kubelet-standin"|' /usr/lib/lifsea/units/kubelet.toml \
        >/etc/lifsea/units/kubelet.toml
    initctl reload >/dev/null 2>&1
    initctl enable kubelet >/dev/null 2>&1
    i=0
    while ! initctl status kubelet 2>/dev/null | grep -q 'state: skipped' && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    st=$(initctl status kubelet 2>&1)
    if echo "$st" | grep -q 'state: skipped' && [ ! -e /run/lifsea-test/kubelet/argv ]; then
        result kubelet-skipped PASS "$(echo "$st" | grep -E 'state:|skipped:' | tr -s ' ' | tr '\n' ' ')"
    else
        result kubelet-skipped FAIL "$(echo "$st" | tr '\n' '|')"
    fi
    mkdir -p /var/lib/kubelet
    printf 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n' >/var/lib/kubelet/config.yaml
    t0=$(cut -d' ' -f1 /proc/uptime)
    i=0
    while ! initctl status kubelet 2>/dev/null | grep -q 'state: running' && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    st=$(initctl status kubelet 2>&1)
    hz=$(timeout 5 /usr/lib/lifsea/toolbox/bin/busybox wget -q -O - http://127.0.0.1:10248/healthz 2>&1)
    argv=$(cat /run/lifsea-test/kubelet/argv 2>/dev/null)
    cg=$(grep '^0::' /run/lifsea-test/kubelet/cgroup 2>/dev/null)
    started=$(cat /run/lifsea-test/kubelet/started 2>/dev/null)
    cready=$(initctl status containerd | sed -n 's/.*state: running (since \([0-9.]*\)s after boot.*/\1/p')
    why=
    echo "$st" | grep -q 'state: running' || why="$why not-running"
    [ "$hz" = ok ] || why="$why healthz:'$hz'"
    [ "$cg" = "0::/podruntime/kubelet" ] || why="$why cgroup:'$cg'"
    for f in --cgroup-driver=cgroupfs --cgroup-root=/ --kubelet-cgroups=/podruntime/kubelet \
        --runtime-cgroups=/podruntime/containerd --config=/var/lib/kubelet/config.yaml \
        --container-runtime-endpoint=unix:///run/containerd/containerd.sock; do
        echo "$argv" | grep -qx -- "$f" || why="$why missing-arg:$f"
    done
    if [ -z "$started" ] || [ -z "$cready" ] || ! awk "BEGIN { exit !($started > $cready) }"; then
        why="$why order:kubelet-$started-containerd-$cready"
    fi
    kready=$(echo "$st" | sed -n 's/.*state: running (since \([0-9.]*\)s after boot.*/\1/p')
    if [ -z "$why" ]; then
        result kubelet-standin PASS "started at ${started}s (config written at ${t0}s), ready at ${kready}s; containerd ready at ${cready}s; $cg"
    else
        result kubelet-standin FAIL "$why; $(echo "$st" | tr '\n' '|')"
    fi
    echo "CHECK-INFO kubelet-ready-at=${kready}s containerd-ready-at=${cready}s config-written-at=${t0}s"
fi

# The control API answers inside the guest, and shows the boot timeline so far.
if command -v initctl >/dev/null 2>&1; then
    # Boot completes once every unit is ready (this checker is ready as soon as it runs): wait for
    # it, bounded, so the timeline printed below is the whole boot.
    i=0
    while [ ! -e /run/lifsea/boot-timeline.json ] && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if out=$(initctl list 2>&1); then
        result control-api PASS "$(echo "$out" | wc -l) lines from initctl list"
        echo "---- initctl list ----"
        echo "$out"
        echo "---- initctl analyze ----"
        initctl analyze 2>&1
        echo "---- end ----"
    else
        result control-api FAIL "$(echo "$out" | tr '\n' '|')"
    fi
else
    result control-api SKIP "no initctl in this image"
fi

# Devices without udev (docs/devices.md). Only lifsea-init does these (not the stand-in init).
if [ -S /run/lifsea/control.sock ]; then
    if command -v initctl >/dev/null 2>&1; then
        # Coldplug runs beside the units: wait for it (bounded) before judging.
        devs=$(initctl devices 2>&1)
        i=0
        while ! echo "$devs" | grep -q '^coldplug: done' && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
            devs=$(initctl devices 2>&1)
        done
        echo "---- initctl devices ----"
        echo "$devs"
        echo "---- end ----"
        if echo "$devs" | grep -q '^coldplug: done'; then
            result devices-fact PASS "$(echo "$devs" | head -1)"
        else
            result devices-fact FAIL "$(echo "$devs" | head -1)"
        fi
        if echo "$devs" | grep -q '^power button: /dev/input/event'; then
            result power-button PASS "$(echo "$devs" | grep '^power button')"
        else
            result power-button FAIL "$(echo "$devs" | grep '^power button')"
        fi
    else
        result devices-fact SKIP "no initctl in this image"
        result power-button SKIP "no initctl in this image"
    fi
    if [ -b /dev/disk/by-label/lifsea-root ]; then
        result dev-disk-by-label PASS "/dev/disk/by-label/lifsea-root -> $(readlink /dev/disk/by-label/lifsea-root)"
    else
        result dev-disk-by-label FAIL "$(ls -lR /dev/disk 2>&1 | tr '\n' '|')"
    fi
    # The image blacklists qemu_fw_cfg in /etc/modprobe.d: QEMU's fw_cfg device (ACPI QEMU0002) would
    # make coldplug load it otherwise.
    if [ -f /etc/modprobe.d/lifsea-test.conf ]; then
        bl=$(awk '$1 == "blacklist" { print $2 }' /etc/modprobe.d/lifsea-test.conf)
        loaded=
        for m in $bl; do
            if grep -q "^$m " /proc/modules; then loaded="$loaded $m"; fi
        done
        if [ -n "$loaded" ]; then
            result modprobe-blacklist FAIL "loaded although blacklisted:$loaded"
        elif ls /sys/bus/acpi/devices/ 2>/dev/null | grep -q '^QEMU0002'; then
            result modprobe-blacklist PASS "not loaded: $bl (device QEMU0002 present)"
        else
            result modprobe-blacklist FAIL "no QEMU0002 device: the blacklist proves nothing"
        fi
    else
        result modprobe-blacklist SKIP "no /etc/modprobe.d/lifsea-test.conf"
    fi
    # The kernel's own module request (mounting overlay) is answered by the init's modprobe.
    kmp=$(cat /proc/sys/kernel/modprobe 2>/dev/null)
    if [ "$kmp" != /usr/lib/lifsea/modprobe ]; then
        result kernel-modprobe FAIL "/proc/sys/kernel/modprobe is '$kmp'"
    elif grep -q '^overlay ' /proc/modules; then
        result kernel-modprobe SKIP "overlay already loaded"
    else
        o=/run/lifsea-ovl
        mkdir -p $o/l $o/u $o/w $o/m
        if out=$(mount -t overlay overlay -o lowerdir=$o/l,upperdir=$o/u,workdir=$o/w $o/m 2>&1); then
            umount $o/m
            if grep -q "^kernel	overlay	" /run/lifsea/modules.log 2>/dev/null; then
                result kernel-modprobe PASS "$(grep "^kernel	overlay	" /run/lifsea/modules.log | tr '\t' ' ')"
            else
                result kernel-modprobe FAIL "overlay mounted but no kernel record: $(tr '\n\t' '| ' </run/lifsea/modules.log 2>&1)"
            fi
        else
            result kernel-modprobe FAIL "mount -t overlay: $out"
        fi
    fi
else
    for c in dev-disk-by-label devices-fact power-button modprobe-blacklist kernel-modprobe; do
        result $c SKIP "not lifsea-init"
    done
fi

# vmtest.faults / vmtest.oom / vmtest.powercut: fault injection and power cuts (issue 12), tests/vm/faults.sh.
if grep -qE 'vmtest\.(faults|oom|powercut)' /proc/cmdline; then
    . /usr/lib/lifsea/tests/faults.sh
fi

echo "CHECKS-DONE pass=$pass fail=$fail"
sync

# vmtest.hotplug: the host adds a virtio-blk disk labelled lifsea-hot through the QEMU monitor once
# it sees HOTPLUG-WAIT, removes it after HOTPLUG-REMOVE-WAIT, and presses the power button after
# POWERDOWN-WAIT (this checker does not power off then).
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
if grep -q 'vmtest.hotplug' /proc/cmdline; then
    npci=$(ls /sys/bus/pci/devices | wc -l)
    echo "HOTPLUG-WAIT"
    # Three moments: the PCI device appears (the kernel's hotplug), the disk appears (virtio_blk,
    # loaded by the init's hotplug helper, probed it), the by-label link appears (the init read
    # the superblock). The init's own latency is disk -> link; PCI -> link adds the kernel's
    # module load and probe, which doubles on a loaded host.
    t_dev= t_blk= t_link= i=0
    while [ $i -lt 6000 ]; do
        if [ -z "$t_dev" ] && [ "$(ls /sys/bus/pci/devices | wc -l)" -gt "$npci" ]; then t_dev=$(now_ms); fi
        if [ -z "$t_blk" ] && ls /sys/class/block/ | grep -q '^vd'; then t_blk=$(now_ms); fi
        if [ -e /dev/disk/by-label/lifsea-hot ]; then t_link=$(now_ms); break; fi
        sleep 0.01
        i=$((i + 1))
    done
    if [ -z "$t_link" ]; then
        echo "CHECK hotplug-link: FAIL no /dev/disk/by-label/lifsea-hot within 60 s"
    else
        total=$((t_link - ${t_dev:-$t_link}))
        ms=$((t_link - ${t_blk:-$t_link}))
        rec=$(grep "^hotplug	virtio_blk	" /run/lifsea/modules.log | tr '\t' ' ')
        if [ "$ms" -le 1000 ] && [ "$total" -le 5000 ] && [ -n "$rec" ]; then
            echo "CHECK hotplug-link: PASS link ${ms} ms after the disk, ${total} ms after the PCI device; $rec"
        else
            echo "CHECK hotplug-link: FAIL link ${ms} ms after the disk, ${total} ms after the PCI device; record: '$rec'"
        fi
        echo "CHECK-INFO hotplug-link-ms=$ms hotplug-total-ms=$total"
    fi
    echo "HOTPLUG-REMOVE-WAIT"
    i=0
    while [ -e /dev/disk/by-label/lifsea-hot ] && [ $i -lt 3000 ]; do
        sleep 0.01
        i=$((i + 1))
    done
    if [ -e /dev/disk/by-label/lifsea-hot ]; then
        echo "CHECK hotplug-remove: FAIL link still there 30 s after device_del"
    else
        echo "CHECK hotplug-remove: PASS link gone"
    fi
    initctl devices 2>&1 | sed -n '/^modules loaded/,/^$/p'
    echo "POWERDOWN-WAIT"
    sync
    exit 0
fi

# Ask the init for an orderly poweroff (SIGUSR2), or a reboot (SIGTERM) when the command line has
# vmtest.reboot; vmtest.nopoweroff (or LIFSEA_CHECK_NO_POWEROFF=1) leaves the machine running.
if [ "${LIFSEA_CHECK_NO_POWEROFF:-0}" = 1 ] || grep -q 'vmtest.nopoweroff' /proc/cmdline; then
    :
elif grep -q 'vmtest.reboot' /proc/cmdline; then
    kill -TERM 1
else
    kill -USR2 1
fi
exit 0
