#!/bin/bash
# Builds a bootable ostree disk image with the real ostree CLI and `mkfs.ext4 -d` (no loop mounts)
# and prints the directory holding it (disk.img is the pristine image: copy it before booting).
#
#   qemu/build-image.sh [--variant tiny|debian] [--mode direct|initramfs] [--init real|standin]
#
#   --variant tiny     busybox userland, a few kernel modules: fast tests (default)
#   --variant debian   debootstrap bookworm minbase + containerd, runc, ostree, iproute2
#   --mode direct      no initramfs: the root disk goes on NVMe (built into the cloud kernel) (default)
#   --mode initramfs   /usr/lib/modules/KVER/initramfs.img in the commit, so deploy writes an initrd line
#   --init real        lifsea-init from `cargo build --release` is the init (default)
#   --deploys N        deploy the commit N times (default 1): the newest deployment is the default
#   --bench            the boot benchmark's marker unit (qemu/bench-guest/) replaces the VM checker
#   --init standin     qemu/standin-init.sh (busybox sh) plays the init: proves the harness on its own;
#                      boot it with qemu/boot.sh --append init=/lifsea-standin/init in direct mode
#
# Images are cached in $LIFSEA_CACHE/images/ under a key over the recipe, the init binary, the
# kernel version and the options; a rerun with nothing changed prints the cached directory at once.
set -euo pipefail
# shellcheck source=qemu/lib.sh
source "$(dirname "$0")/lib.sh"
# Tools chatter on stdout; only the image directory goes there (fd 3).
exec 3>&1 1>&2

variant=tiny mode=direct init=real deploys=1 bench=0
while [ $# -gt 0 ]; do
    case $1 in
        --variant) variant=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --init) init=$2; shift 2 ;;
        --deploys) deploys=$2; shift 2 ;;
        --bench) bench=1; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&3; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done
case $variant in tiny|debian) ;; *) die "--variant must be tiny or debian" ;; esac
case $mode in direct|initramfs) ;; *) die "--mode must be direct or initramfs" ;; esac
case $init in real|standin) ;; *) die "--init must be real or standin" ;; esac

ensure_host_tools
ensure_kernel
BIN=
if [ "$init" = real ]; then
    BIN=$(lifsea_binary)
fi
base=
if [ "$variant" = debian ]; then
    base=$(debian_base_dir)
fi

key=$( {
    cat "$LIFSEA_ROOT"/qemu/lib.sh "$LIFSEA_ROOT"/qemu/build-image.sh "$LIFSEA_ROOT"/qemu/standin-init.sh
    cat "$LIFSEA_ROOT"/tests/vm/*.sh "$LIFSEA_ROOT"/tests/vm/units/*.toml "$LIFSEA_ROOT"/tests/vm/network.toml
    if [ -d "$LIFSEA_ROOT/units" ]; then cat "$LIFSEA_ROOT"/units/*.toml 2>/dev/null || true; fi
    if [ -d "$LIFSEA_ROOT/image" ]; then find "$LIFSEA_ROOT/image" -type f | sort | xargs cat; fi
    [ -z "$BIN" ] || sha256sum <"$BIN"
    echo "$KVER $variant $mode $init $base $deploys"
    if [ "$bench" = 1 ]; then cat "$LIFSEA_ROOT"/qemu/bench-lib.sh "$LIFSEA_ROOT"/qemu/bench-guest/*; fi
} | short_hash)
kind=$variant-$mode-$init
[ "$bench" = 0 ] || kind=$kind-bench
[ "$deploys" = 1 ] || kind=$kind-x$deploys
out="$LIFSEA_CACHE/images/$kind-$key"
# One builder per kind of image at a time; a second one finds the first one's result.
mkdir -p "$LIFSEA_CACHE/images"
exec {lockfd}>"$LIFSEA_CACHE/images/.$kind.lock"
flock "$lockfd"
if [ -f "$out/disk.img" ]; then
    echo "$out" >&3
    exit 0
fi

log "building $variant image ($mode mode, $init init, $deploys deploys) in $out"
rm_tree "$out.tmp"
mkdir -p "$out.tmp"
R="$out.tmp/rootfs"
S="$out.tmp/sysroot"

if [ "$variant" = tiny ]; then
    stage_tiny_rootfs "$R"
else
    stage_debian_rootfs "$R" "$base"
fi
stage_common "$R" "$BIN" "$variant"
if [ "$bench" = 1 ]; then
    # shellcheck source=qemu/bench-lib.sh
    source "$LIFSEA_ROOT/qemu/bench-lib.sh"
    stage_bench_marker "$R"
fi
if [ "$mode" = initramfs ]; then
    if [ "$init" = real ]; then
        make_real_initramfs "$BIN" "$R/usr/lib/modules/$KVER/initramfs.img"
    else
        make_standin_initramfs "$R/usr/lib/modules/$KVER/initramfs.img"
    fi
fi
finish_ostree_layout "$R"
make_sysroot "$R" "$S" "$mode" "$deploys"
if [ "$init" = standin ]; then
    # The kernel execs init= from the physical root in direct mode, where no /bin/sh exists: give
    # the stand-in a busybox of its own there.
    mkdir -p "$S/lifsea-standin"
    mkdir -p "$S/lifsea-standin/bin"
    cp /bin/busybox "$S/lifsea-standin/busybox"
    for a in $(busybox --list); do ln -s ../busybox "$S/lifsea-standin/bin/$a"; done
    sed '1s|.*|#!/lifsea-standin/busybox sh|' "$LIFSEA_ROOT/qemu/standin-init.sh" >"$S/lifsea-standin/init"
    chmod 755 "$S/lifsea-standin/init"
fi
size=512M
[ "$variant" = tiny ] || size=3G
make_disk "$S" "$out.tmp/disk.img" "$size"
newest_entry "$out.tmp/disk.img" >"$out.tmp/entry.conf"
# The rootfs and sysroot trees are only needed to build the disk.
rm_tree "$R"
rm_tree "$S"
mv "$out.tmp" "$out"
# Older builds of the same kind are stale now: keep the cache from growing without bound.
# (The key is 16 hex digits: the pattern does not reach other kinds such as KIND-x2-KEY.)
for old in "$LIFSEA_CACHE/images/$kind-"????????????????; do
    [ "$old" = "$out" ] || rm_tree "$old"
done
log "image ready: $out/disk.img"
echo "$out" >&3
