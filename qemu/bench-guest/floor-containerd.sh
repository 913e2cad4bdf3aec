#!/bin/sh
# Variant D of the boot benchmark, floor + containerd: booted as init= on the systemd image's disk
# (direct, no initramfs), it mounts only what containerd needs, starts it and runs the marker, which
# waits until `ctr version` answers. What is left is containerd's own start-up on this VMM: the
# physical limit of "containerd ready" for any init.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o nosuid,nodev tmpfs /tmp
containerd </dev/null >/dev/null 2>&1 &
/usr/local/lib/bench/marker.sh
# PID 1 must not exit (the kernel would panic); the host ends QEMU once it saw the marker.
while :; do sleep 3600; done
