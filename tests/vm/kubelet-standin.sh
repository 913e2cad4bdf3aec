#!/bin/sh
# kubelet stand-in for the VM test (installed in the test image only, never shipped): check.sh runs
# it through the shipped kubelet unit with only the exec path swapped. Records its arguments, its
# cgroup and when it started (guest uptime), then serves /healthz with 200 on kubelet's port.
out=/run/lifsea-test/kubelet
mkdir -p "$out/www"
printf '%s\n' "$@" >"$out/argv"
cat /proc/self/cgroup >"$out/cgroup"
cut -d' ' -f1 /proc/uptime >"$out/started"
echo ok >"$out/www/healthz"
exec /usr/lib/lifsea/toolbox/bin/busybox httpd -f -p 127.0.0.1:10248 -h "$out/www"
