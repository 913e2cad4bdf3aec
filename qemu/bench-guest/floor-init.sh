#!/bin/busybox sh
# Variant C of the boot benchmark, the floor: the kernel runs this as init and it prints the marker
# at once, so its time is the kernel's (and the VMM's) alone.
/bin/busybox mount -t proc proc /proc
read -r up _ </proc/uptime
rss=$(/bin/busybox awk '$1 == "VmRSS:" { print $2 }' /proc/1/status)
echo "BENCH-MARKER uptime=$up rss_kb=$rss pid1=floor cond=none" >/dev/console
while :; do /bin/busybox sleep 3600; done
