#!/bin/sh
# A busybox-sh stand-in for lifsea-init, used only to prove the QEMU harness and the guest checker
# independently of the Rust init. It does the minimum of the real thing: stage 0 (initramfs: load the
# root-disk modules, wait for the root, mount it), ostree root assembly the prepare-root way,
# early mounts, then runs the checker in place of units and powers off on SIGUSR2.
# The image builders install it with the shebang rewritten to a busybox path that exists where the
# kernel execs it (the physical root in direct mode, the initramfs in initramfs mode).

export PATH=/lifsea-standin/bin:/usr/bin:/usr/sbin:/bin:/sbin:/sysroot/lifsea-standin/bin
msg() { if [ -c /dev/console ]; then echo "standin-init: $*" >/dev/console; else echo "standin-init: $*"; fi; }
fail() { msg "FATAL: $*"; sleep 5; poweroff -f; }
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }

# Finish the deployment bound at N (from D on the physical root mounted at P) with ostree's semantics.
assemble() { # P N D
    P=$1 N=$2 D=$3
    mount --bind "$N/usr" "$N/usr" || fail "bind /usr"
    mount -o remount,bind,ro "$N/usr" || fail "ro /usr"
    os=$(echo "$D" | sed -n 's|.*/ostree/deploy/\([^/]*\)/deploy/.*|\1|p')
    mount --bind "$P/ostree/deploy/$os/var" "$N/var" || fail "bind /var"
    mount --bind "$P/boot" "$N/boot" || fail "bind /boot"
}

stage0() { # initramfs: we are /init
    mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
    msg "stage 0 at $(cut -d' ' -f1 /proc/uptime)"
    while read -r m; do insmod "/modules/$m" || msg "insmod $m failed"; done </modules/order
    root=$(arg root) dev=
    i=0
    while [ $i -lt 50 ]; do
        dev=$(findfs "$root" 2>/dev/null) && break
        i=$((i + 1)); sleep 0.1
    done
    [ -n "$dev" ] || fail "root device $root did not appear within 5s"
    mkdir -p /sysroot
    mount -o rw "$dev" /sysroot || fail "mount $dev"
    o=$(arg ostree)
    D=$(cd "/sysroot$o" 2>/dev/null && pwd -P) || fail "ostree=$o does not resolve"
    # The deployment lives inside the physical root: assemble it on a separate mount point, then
    # move the physical root under it (a mount cannot move below itself).
    mkdir -p /newroot
    mount --bind "$D" /newroot || fail "bind $D"
    assemble /sysroot /newroot "$D"
    mount --move /sysroot /newroot/sysroot || fail "move /sysroot"
    umount /sys; umount /proc; mount --move /dev /newroot/dev
    exec switch_root /newroot /usr/lib/lifsea/standin-init
}

direct() { # direct mode: the kernel ran us from the physical root
    mount -t devtmpfs dev /dev
    mount -t proc proc /proc
    msg "direct mode at $(cut -d' ' -f1 /proc/uptime)"
    mount -o remount,rw / || fail "remount / rw"
    o=$(arg ostree)
    D=$(cd "$o" 2>/dev/null && pwd -P) || fail "ostree=$o does not resolve"
    mount --bind "$D" "$D" || fail "bind $D"
    assemble / "$D" "$D"
    umount /proc
    mount --move /dev "$D/dev"
    cd "$D" || fail "cd $D"
    pivot_root . sysroot || fail "pivot_root"
    exec chroot . /usr/lib/lifsea/standin-init
}

stage1() {
    mount -t proc proc /proc; mount -t sysfs sys /sys
    mount -t devtmpfs dev /dev 2>/dev/null
    mount -t tmpfs -o mode=755,nosuid,nodev run /run
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
    : >/run/ostree-booted
    # lifsea-init coldplugs by modalias; the stand-in just names the one NIC driver the VM needs.
    modprobe virtio_pci 2>/dev/null; modprobe virtio_net 2>/dev/null
    # An image without busybox (Debian) powers off with the physical root's copy, kept in /run
    # because /sysroot is unmounted on the way down.
    if [ ! -e /usr/bin/busybox ] && [ -e /sysroot/lifsea-standin/busybox ]; then
        cp /sysroot/lifsea-standin/busybox /run/busybox
    fi
    msg "root assembled at $(cut -d' ' -f1 /proc/uptime)"
    trap 'shutdown poweroff' USR2
    trap 'shutdown reboot' TERM
    /usr/lib/lifsea/tests/check.sh &
    while :; do wait; done
}

shutdown() { # poweroff|reboot
    msg "$1 requested"
    kill -TERM -1 2>/dev/null; sleep 0.2; kill -KILL -1 2>/dev/null
    sync
    umount /boot /var /sysroot 2>/dev/null
    mount -o remount,ro /sysroot 2>/dev/null; mount -o remount,ro / 2>/dev/null
    sync
    if [ -x /run/busybox ]; then /run/busybox "$1" -f; else "$1" -f; fi
}

if [ $$ -ne 1 ]; then echo "standin-init: not PID 1" >&2; exit 1; fi
if [ -e /lifsea-standin-initramfs ]; then stage0
elif [ -e /sysroot/ostree ]; then stage1
else direct
fi
