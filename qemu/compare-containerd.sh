#!/bin/bash
# Boots two images (e.g. the Debian image built from main and from a branch) alternately, N rounds,
# and prints per boot what the guest checker's `initctl analyze` shows: kernel-runs-init (console),
# containerd started and ready, the coldplug stage and the `devices` fact (guest uptime, seconds).
# Load on the machine shifts every figure: compare the two only within one run.
#
#   qemu/compare-containerd.sh [-n ROUNDS] BEFORE_IMAGE_DIR AFTER_IMAGE_DIR
#
# Image directories are what qemu/build-image.sh --variant debian prints (they hold disk.img).
set -euo pipefail
rounds=2
if [ "${1:-}" = -n ]; then rounds=$2; shift 2; fi
[ $# -eq 2 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lifsea-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
for r in $(seq 1 "$rounds"); do
    for v in before after; do
        if [ $v = before ]; then dir=$1; else dir=$2; fi
        cp --sparse=always "$dir/disk.img" "$work/disk.img"
        bash "$here/boot.sh" --timeout 360 --log "$work/console.log" "$work/disk.img" >/dev/null 2>"$work/boot.err" || true
        kinit=$(grep -m1 'as init process' "$work/console.log" | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
        an=$(sed -n '/---- initctl analyze/,/---- end/p' "$work/console.log")
        field() { echo "$an" | awk -v k="$1" -v n="$2" -v c="$3" '$1 == k && $2 == n { print $c }'; }
        cs=$(field unit containerd 3) cr=$(field unit containerd 4)
        spawn_after=$(awk -v a="${cs%s}" -v b="$kinit" 'BEGIN { if (a != "" && b != "") printf "%.3fs", a - b; else print "?" }')
        echo "round $r $v: kernel->init ${kinit}s; containerd started $cs (init+$spawn_after), ready $cr;" \
            "coldplug $(field stage coldplug 3)..$(field stage coldplug 4); devices $(field fact devices 4)"
    done
done
