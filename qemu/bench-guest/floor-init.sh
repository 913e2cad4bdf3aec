#!/bin/busybox sh
# Variant C of the boot benchmark, the floor: the kernel runs this as init and it prints the marker
# at once, so its time is the kernel's (and the VMM's) alone.
/bin/busybox mount -t proc proc /proc
rss=
while read -r key value _; do
    case $key in VmRSS:) rss=$value ;; esac
done </proc/1/status
read -r up _ </proc/uptime
echo "BENCH-MARKER uptime=$up rss_kb=$rss pid1=floor cond=none" >/dev/console
while :; do /bin/busybox sleep 3600; done
