#!/bin/sh
# Variant D of the boot benchmark, floor + containerd: booted as init= on the systemd image's disk
# (direct, no initramfs), it mounts only what containerd needs, starts it and runs the marker, which
# waits until `ctr version` answers and, with bench.marker=containerd,lease, the NIC has its lease.
# What is left is containerd's own start-up (and the NIC's driver and one DHCP exchange beside it)
# on this VMM: the physical limit of that marker for any init.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o nosuid,nodev tmpfs /tmp
# containerd's CRI plugin serves its streaming server on 127.0.0.1 and exits when it cannot bind
# there, which it tries once the node has another address: lo must be up (every init does it).
ip link set lo up
containerd </dev/null >/dev/null 2>&1 &
# When the marker wants the NIC's lease too (bench.marker=containerd,lease: the marker of A and B),
# the least that gets one, beside containerd: the NIC's driver loaded by hand (virtio_pci and
# virtio_net are modules in the cloud kernel), the link set up, and klibc's ipconfig, the DHCP
# client of Debian's initramfs, which sets the address itself. ipconfig starts once the link's
# operstate is UP: started right after the driver, it took 11.6 s to its lease in a test boot
# (0.3 s once UP), the likely cause a DISCOVER sent before the kernel's link watcher attached the
# queueing discipline, which drops it without an error (docs/network.md); lifsea-init resends its
# first message at that moment instead of waiting for it.
cond=containerd
for w in $(cat /proc/cmdline); do
    case $w in bench.marker=*) cond=${w#bench.marker=} ;; esac
done
case ",$cond," in
*,lease,*)
    (
        modprobe -a virtio_pci virtio_net
        ip link set eth0 up
        n=0
        until [ "$(cat /sys/class/net/eth0/operstate)" = up ] || [ $n -ge 500 ]; do
            n=$((n + 1))
            sleep 0.02
        done
        /usr/lib/klibc/bin/ipconfig -t 60 -c dhcp -d eth0
    ) </dev/null >/dev/null 2>&1 &
    ;;
esac
/usr/local/lib/bench/marker.sh
# PID 1 must not exit (the kernel would panic); the host ends QEMU once it saw the marker.
while :; do sleep 3600; done
