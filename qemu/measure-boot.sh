#!/bin/bash
# Boots an image (tiny by default) N times in each mode, interleaved (direct, initramfs, direct, ...; load on the
# machine shifts every figure, so variants are only compared within one run), and prints per boot
# and as medians:
#   kernel->init   guest uptime when the kernel ran init ("Run ... as init process")
#   root           guest uptime when the ostree root was assembled (lifsea-init's console milestone
#                  "[T] initramfs root assembled" or "[T] root Ready"; the stand-in's "root assembled at T")
#   first-unit     guest uptime when the first unit (the checker) started
#   wall           wall time from QEMU start until the console showed the first unit's line
#
#   qemu/measure-boot.sh [-n N] [--variant tiny|debian] [--init real|standin]
#                        [--modes "direct initramfs"] [--microvm]
set -euo pipefail
# shellcheck source=qemu/lib.sh
source "$(dirname "$0")/lib.sh"

n=3 variant=tiny init=real modes="direct initramfs" extra=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) n=$2; shift 2 ;;
        --init) init=$2; shift 2 ;;
        --variant) variant=$2; shift 2 ;;
        --modes) modes=$2; shift 2 ;;
        --microvm) extra+=(--microvm); shift ;; # experimental: see qemu/boot.sh --help
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done

declare -A img
for mode in $modes; do
    img[$mode]=$(bash "$LIFSEA_ROOT/qemu/build-image.sh" --variant "$variant" --mode "$mode" --init "$init")
done
work=$(mktemp -d "${TMPDIR:-/tmp}/lifsea-measure.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Seconds of guest uptime at the kernel timestamp of the first console line matching a regex.
kstamp() { # LOG REGEX
    grep -a -m1 -E "$2" "$1" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-10s %4s %14s %8s %11s %8s\n' mode run kernel-\>init root first-unit wall
for i in $(seq 1 "$n"); do
    for mode in $modes; do
        disk="$work/$mode.img"
        cp --sparse=always "${img[$mode]}/disk.img" "$disk"
        args=(--timeout 240 --log "$work/$mode-$i.log" --until '^CHECK-START' "${extra[@]}")
        if [ "$init" = standin ] && [ "$mode" = direct ]; then args+=(--append init=/lifsea-standin/init); fi
        bash "$LIFSEA_ROOT/qemu/boot.sh" "${args[@]}" "$disk" 2>"$work/$mode-$i.err" || true
        log_f="$work/$mode-$i.log"
        t_init=$(kstamp "$log_f" 'as init process')
        # lifsea-init prints its milestones as "lifsea-init: [UPTIME] NAME EVENT"; stage 0 says
        # "initramfs root assembled", stage 1 "root Ready". The first of them is the assembled root.
        t_root=$(sed -n 's/^lifsea-init: \[\([0-9.]*\)\] \(initramfs root assembled\|root Ready\).*/\1/p' "$log_f" | head -n1)
        if [ -z "$t_root" ]; then
            t_root=$(sed -n 's/.*root assembled at \([0-9.]*\).*/\1/p' "$log_f" | head -n1)
        fi
        t_unit=$(sed -n 's/^CHECK-START uptime=\([0-9.]*\).*/\1/p' "$log_f" | head -n1)
        wall=$(sed -n 's/^until-ms: //p' "$work/$mode-$i.err")
        wall_s=-
        [ -z "$wall" ] || wall_s=$(awk -v m="$wall" 'BEGIN { printf "%.2f", m / 1000 }')
        printf '%-10s %4s %14s %8s %11s %8s\n' "$mode" "$i" "${t_init:--}" "${t_root:--}" "${t_unit:--}" "$wall_s"
        echo "$mode ${t_init:-} ${t_root:-} ${t_unit:-} ${wall_s}" >>"$work/results"
    done
done
echo "medians (seconds; guest uptime except wall):"
for mode in $modes; do
    row=()
    for col in 2 3 4 5; do
        row+=("$(awk -v m="$mode" -v c="$col" '$1 == m && $c != "" && $c != "-" { print $c }' "$work/results" | median)")
    done
    printf '%-10s %4s %14s %8s %11s %8s\n' "$mode" med "${row[@]}"
done
