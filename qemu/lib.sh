# shellcheck shell=bash
# Shared helpers for the QEMU harness: cache layout, the Debian cloud kernel, ostree sysroots,
# BLS entries read back from a disk image. Sourced by the scripts beside it; sets no shell options
# of its own (the callers run with `set -euo pipefail`).
#
# Everything downloaded or built lands under $LIFSEA_CACHE (default target/lifsea-cache/ in the
# repository), keyed by content where a rebuild is expensive, so reruns are quick.

LIFSEA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIFSEA_CACHE=${LIFSEA_CACHE:-$LIFSEA_ROOT/target/lifsea-cache}
LIFSEA_OS=${LIFSEA_OS:-lifsea}
LIFSEA_REF=${LIFSEA_REF:-lifsea/x86_64/base}
LIFSEA_MIRROR=${LIFSEA_MIRROR:-http://deb.debian.org/debian}
LIFSEA_SUITE=bookworm
# Packages the Debian image needs on top of debootstrap's minbase.
LIFSEA_DEBIAN_PACKAGES=containerd,runc,ostree,ca-certificates,iproute2
export LIFSEA_ROOT LIFSEA_CACHE

log() { printf '[lifsea-qemu] %s\n' "$*" >&2; }
die() { printf '[lifsea-qemu] error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages the harness uses, when missing. Idempotent and quiet.
ensure_host_tools() {
    local p need=()
    for p in qemu-system-x86 ostree busybox-static e2fsprogs debootstrap cpio kmod; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# Runs a command holding an exclusive lock on $LIFSEA_CACHE/.NAME.lock, so that parallel test
# threads (or scripts) fetching or building the same cached thing wait for one another.
with_lock() { # NAME CMD...
    local name=$1 fd
    shift
    mkdir -p "$LIFSEA_CACHE"
    exec {fd}>"$LIFSEA_CACHE/.$name.lock"
    flock "$fd"
    "$@"
    local rc=$?
    exec {fd}>&-
    return $rc
}

# sha256 of stdin, first 16 hex digits: cache keys.
short_hash() { sha256sum | cut -c1-16; }

# Removes a directory that may hold an ostree sysroot (whose deployment dirs are immutable).
rm_tree() {
    local d=$1
    [ -e "$d" ] || return 0
    chattr -R -i "$d" 2>/dev/null || true
    rm -rf "$d"
}

# --- Kernel -----------------------------------------------------------------------------------

# Makes sure the Debian cloud kernel is extracted in the cache (boot/vmlinuz-KVER and
# lib/modules/KVER with depmod's indexes), fetching it on first use. Sets KERNEL_DIR and KVER.
ensure_kernel() {
    with_lock kernel ensure_kernel_locked
}

ensure_kernel_locked() {
    KERNEL_DIR="$LIFSEA_CACHE/kernel"
    if [ -f "$KERNEL_DIR/.done" ]; then
        KVER=$(cat "$KERNEL_DIR/KVER")
        return 0
    fi
    mkdir -p "$LIFSEA_CACHE"
    apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq
    # The metapackage only depends on the versioned image package; that one holds the kernel.
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 to a versioned kernel package"
    log "fetching $pkg"
    rm_tree "$KERNEL_DIR"
    mkdir -p "$KERNEL_DIR/deb" "$KERNEL_DIR/root"
    (cd "$KERNEL_DIR/deb" && apt-get download -q "$pkg" >/dev/null) || die "apt-get download $pkg failed"
    dpkg-deb -x "$KERNEL_DIR"/deb/*.deb "$KERNEL_DIR/root"
    KVER=$(basename "$(ls -d "$KERNEL_DIR"/root/lib/modules/*)")
    # modules.dep and modules.alias are generated at install time, not shipped in the .deb.
    depmod -b "$KERNEL_DIR/root" "$KVER"
    echo "$KVER" >"$KERNEL_DIR/KVER"
    touch "$KERNEL_DIR/.done"
}

# --- Debian base tree ---------------------------------------------------------------------------

# Prints the path of a debootstrapped bookworm tree (minbase + LIFSEA_DEBIAN_PACKAGES), building it
# on first use. Keyed by suite and package list; built into a temporary dir and renamed when
# complete, so an interrupted run never leaves a half tree that looks finished.
debian_base_dir() {
    with_lock debian-base debian_base_dir_locked
}

debian_base_dir_locked() {
    debootstrap_cached debian-base "$LIFSEA_DEBIAN_PACKAGES"
}

# Prints the path of a debootstrapped tree `$LIFSEA_CACHE/PREFIX-KEY` (minbase plus PACKAGES,
# comma-separated), keyed by suite, packages and mirror, building it on first use into a temporary
# dir renamed when complete. Callers hold their lock.
debootstrap_cached() { # PREFIX PACKAGES
    local key dir
    key=$(printf '%s %s %s v1' "$LIFSEA_SUITE" "$2" "$LIFSEA_MIRROR" | short_hash)
    dir="$LIFSEA_CACHE/$1-$key"
    if [ ! -d "$dir" ]; then
        log "debootstrap $LIFSEA_SUITE into $dir (several minutes, once)"
        mkdir -p "$LIFSEA_CACHE"
        rm_tree "$dir.tmp"
        debootstrap --variant=minbase --include="$2" \
            "$LIFSEA_SUITE" "$dir.tmp" "$LIFSEA_MIRROR" >"$LIFSEA_CACHE/debootstrap-$1.log" 2>&1 \
            || die "debootstrap failed: see $LIFSEA_CACHE/debootstrap-$1.log"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

# --- The init binary ------------------------------------------------------------------------------

# Builds the release (static musl) binary and prints its path; LIFSEA_BIN overrides.
lifsea_binary() {
    if [ -n "${LIFSEA_BIN:-}" ]; then
        echo "$LIFSEA_BIN"
        return 0
    fi
    (cd "$LIFSEA_ROOT" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
    local bin="$LIFSEA_ROOT/target/x86_64-unknown-linux-musl/release/lifsea-init"
    [ -x "$bin" ] || die "no binary at $bin"
    echo "$bin"
}

# --- Root filesystem staging ----------------------------------------------------------------------

# A busybox userland with merged /usr: every applet a symlink to /usr/bin/busybox.
stage_tiny_rootfs() {
    local R=$1 a
    mkdir -p "$R"/usr/bin "$R"/usr/sbin "$R"/usr/lib "$R"/etc
    ln -s usr/bin "$R/bin"
    ln -s usr/sbin "$R/sbin"
    ln -s usr/lib "$R/lib"
    cp /bin/busybox "$R/usr/bin/busybox"
    busybox --list-full | while read -r a; do
        case $a in sbin/init|linuxrc|"") continue ;; esac
        a=${a#usr/}
        [ -e "$R/usr/$a" ] || ln -s /usr/bin/busybox "$R/usr/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
    printf 'root:x:0:\n' >"$R/etc/group"
    echo lifsea >"$R/etc/hostname"
    # Only what the tiny image's hardware needs: virtio-net (coldplugged by modalias), virtio-blk,
    # the ACPI power button and evdev (its /dev/input node). depmod then indexes just these. Plus
    # overlay (the kernel's module request in check.sh) and qemu_fw_cfg (blacklisted below).
    local kmods="virtio_net virtio_pci virtio_blk button evdev overlay qemu_fw_cfg"
    install_modules "$KERNEL_DIR/root/lib/modules/$KVER" "$R/usr/lib/modules/$KVER" "$kmods"
}

# A copy of the debootstrapped tree, trimmed of what a node never reads.
stage_debian_rootfs() {
    local R=$1 base=$2
    cp -a "$base" "$R"
    rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/* \
        "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/var/log/* "$R"/lib/modules
    echo lifsea >"$R/etc/hostname"
    # debootstrap writes no /etc/hosts; tools (and ctr's --net-host bind mount) expect one.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
    # No kubelet binary is packaged for bookworm or reachable here: ship the vendor unit (checked by
    # `lifsea-init check`) but disable it in this image, the way an admin would (initctl disable).
    mkdir -p "$R/etc/lifsea/units"
    touch "$R/etc/lifsea/units/kubelet.disabled"
    # Every module: containerd wants overlay, br_netfilter, netfilter; depmod indexes them.
    mkdir -p "$R/usr/lib/modules"
    cp -a "$KERNEL_DIR/root/lib/modules/$KVER" "$R/usr/lib/modules/$KVER"
}

# The ops toolbox: busybox-static with every applet, read-only in /usr (runc needs only the
# mount points to exist; `initctl ops` puts tmpfs on /tmp, /run and /root). About 2 MB.
stage_toolbox() { # DIR
    local T=$1 a
    mkdir -p "$T/bin" "$T/etc"
    for a in proc dev sys tmp run root host; do mkdir -p "$T/$a"; done
    cp /bin/busybox "$T/bin/busybox"
    for a in $(busybox --list); do [ -e "$T/bin/$a" ] || ln -s busybox "$T/bin/$a"; done
    ln -s bin "$T/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$T/etc/passwd"
    printf 'root:x:0:\n' >"$T/etc/group"
    # Mount points of ctr's --net-host bind mounts.
    : >"$T/etc/hosts"
    : >"$T/etc/resolv.conf"
}

# Prints the modules.dep closure of the given module names, dependencies first, as paths relative
# to the module tree.
module_closure() { # MODDIR "names..."
    local moddir=$1 name path deps d
    for name in $2; do
        path=$(awk -v n="$name" -F: '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f) }
                                   f == n { print $1; exit }' "$moddir/modules.dep")
        [ -n "$path" ] || die "module $name not in $moddir/modules.dep"
        deps=$(grep "^$path:" "$moddir/modules.dep" | cut -d: -f2)
        # modules.dep lists the deepest dependency last: load in reverse order.
        for d in $(echo "$deps" | tr ' ' '\n' | tac); do echo "$d"; done
        echo "$path"
    done | awk '!seen[$0]++'
}

# Copies modules and their closure into a module tree and indexes it with depmod.
install_modules() { # SRC DST "names..."
    local src=$1 dst=$2 m
    mkdir -p "$dst"
    for m in $(module_closure "$src" "$3"); do
        mkdir -p "$dst/$(dirname "$m")"
        cp "$src/$m" "$dst/$m"
    done
    cp "$src"/modules.order "$src"/modules.builtin "$src"/modules.builtin.modinfo "$dst/" 2>/dev/null || true
    local root=${dst%/lib/modules/*}
    depmod -b "$root" "$KVER"
}

# What both variants share: the init, kernel, os-release, units, the checker.
stage_common() { # R BIN VARIANT
    local R=$1 bin=$2 variant=$3
    mkdir -p "$R/usr/lib/lifsea/units" "$R/usr/lib/lifsea/tests" "$R/usr/lib/ostree" "$R/usr/sbin"
    if [ -n "$bin" ]; then
        install -m 755 "$bin" "$R/usr/lib/lifsea/lifsea-init"
        # ostree writes init=.../usr/lib/ostree/ostree-prepare-root when there is no initramfs. A real
        # copy, not a symlink: the kernel resolves init= from the physical root, where an absolute
        # link target does not exist (ostree stores both as one object anyway).
        install -m 755 "$bin" "$R/usr/lib/ostree/ostree-prepare-root"
        rm -f "$R/usr/sbin/init"
        ln -s ../lib/lifsea/lifsea-init "$R/usr/sbin/init"
        ln -sf ../lib/lifsea/lifsea-init "$R/usr/sbin/initctl"
        # The kernel's module requests go to the init's modprobe (docs/devices.md).
        ln -sf lifsea-init "$R/usr/lib/lifsea/modprobe"
    fi
    # A coldplug candidate (QEMU's fw_cfg device matches it) that must stay unloaded.
    mkdir -p "$R/etc/modprobe.d"
    printf '# lifsea VM test: coldplug must not load this\nblacklist qemu_fw_cfg\n' >"$R/etc/modprobe.d/lifsea-test.conf"
    install -m 755 "$LIFSEA_ROOT/qemu/standin-init.sh" "$R/usr/lib/lifsea/standin-init"
    install -m 755 "$LIFSEA_ROOT"/tests/vm/*.sh "$R/usr/lib/lifsea/tests/"
    install -m 644 "$LIFSEA_ROOT"/tests/vm/units/*.toml "$R/usr/lib/lifsea/units/"
    # The init's network configuration; /etc/resolv.conf is the init's symlink, not a file copied
    # from the build host (an administrator's regular file would be left in place).
    mkdir -p "$R/etc/lifsea"
    install -m 644 "$LIFSEA_ROOT/tests/vm/network.toml" "$R/etc/lifsea/network.toml"
    rm -f "$R/etc/resolv.conf"
    if [ "$variant" = debian ] && [ -d "$LIFSEA_ROOT/units" ]; then
        cp "$LIFSEA_ROOT"/units/*.toml "$R/usr/lib/lifsea/units/" 2>/dev/null || true
        # A Kubernetes node's vendor files (node.toml, modules-load.d, sysctl.d): docs/node.md.
        cp -r "$LIFSEA_ROOT"/image/. "$R/"
        # The ops container's root filesystem (`initctl ops`, docs/node.md): shipped, not a test.
        stage_toolbox "$R/usr/lib/lifsea/toolbox"
        # Test only: the kubelet stand-in check.sh runs through the shipped unit (exec path swapped).
        install -m 755 "$LIFSEA_ROOT/tests/vm/kubelet-standin.sh" "$R/usr/lib/lifsea/tests/kubelet-standin"
        # Test only: a busybox root filesystem for `ctr run --rootfs` (no registry); check.sh copies
        # it to /var, because runc needs a writable rootfs for its mount points.
        local c="$R/usr/lib/lifsea/tests/ctr-rootfs"
        mkdir -p "$c/bin" "$c/proc" "$c/dev" "$c/sys" "$c/tmp" "$c/etc"
        cp /bin/busybox "$c/bin/busybox"
        for a in sh cat echo sleep; do ln -sf busybox "$c/bin/$a"; done
    fi
    mkdir -p "$R/usr/lib/modules/$KVER"
    cp "$KERNEL_DIR/root/boot/vmlinuz-$KVER" "$R/usr/lib/modules/$KVER/vmlinuz"
    rm -f "$R/etc/os-release" "$R/usr/lib/os-release"
    cat >"$R/usr/lib/os-release" <<OSR
NAME="lifsea ($variant)"
ID=lifsea
ID_LIKE=debian
VERSION_ID=0
PRETTY_NAME="lifsea-init $variant test image"
OSR
    ln -s ../usr/lib/os-release "$R/etc/os-release"
}

# ostree's layout rules: /etc moves to /usr/etc (deploy merges it into the deployment's /etc),
# /sysroot exists, /ostree points into it, the kernel's mount points exist.
finish_ostree_layout() {
    local R=$1 d
    rm -rf "$R/usr/etc"
    mv "$R/etc" "$R/usr/etc"
    for d in sysroot proc sys dev run tmp var boot root home mnt; do
        rm -rf "${R:?}/$d"
        mkdir -p "$R/$d"
    done
    ln -sfn sysroot/ostree "$R/ostree"
}

# --- ostree sysroot and disk -----------------------------------------------------------------------

# The kernel alone cannot resolve root=LABEL= (only an initramfs can): in direct mode the entry names
# the NVMe disk, which the kernel has built in; rootwait covers its asynchronous probe.
# DEPLOYS > 1 deploys the commit that many times (each deploy flips the boot links and makes the
# newest deployment the default), tagging each entry with vmtest.deploy=I.
make_sysroot() { # ROOTFS SYSROOT MODE [DEPLOYS]
    local R=$1 S=$2 deploys=${4:-1} i root=(--karg=root=LABEL=lifsea-root)
    [ "$3" = initramfs ] || root=(--karg=root=/dev/nvme0n1 --karg=rootwait)
    mkdir -p "$S"
    ostree admin init-fs "$S" >/dev/null
    ostree admin os-init --sysroot="$S" "$LIFSEA_OS" >/dev/null
    ostree --repo="$S/ostree/repo" config set sysroot.bootloader none
    ostree --repo="$S/ostree/repo" commit --branch="$LIFSEA_REF" --tree=dir="$R" \
        --subject="lifsea test image" >/dev/null
    for i in $(seq 1 "$deploys"); do
        ostree admin deploy --sysroot="$S" --os="$LIFSEA_OS" \
            "${root[@]}" --karg=rw --karg=console=ttyS0 --karg="vmtest.deploy=$i" "$LIFSEA_REF" >/dev/null
    done
}

make_disk() { # SYSROOT IMG SIZE
    local S=$1 img=$2 size=$3
    rm -f "$img"
    mkfs.ext4 -q -L lifsea-root -d "$S" "$img" "$size"
}

# --- Reading the boot entry back (the harness plays the bootloader) ---------------------------------

# Prints the newest BLS entry on a disk image: the highest `version` (ostree numbers them so the
# default deployment has the highest), the file name breaking ties.
newest_entry() { # IMG
    local img=$1 f best='' bestv=-1 v
    for f in $(debugfs -R 'ls -l /boot/loader/entries' "$img" 2>/dev/null | awk '$NF ~ /\.conf$/ { print $NF }'); do
        v=$(debugfs -R "cat /boot/loader/entries/$f" "$img" 2>/dev/null | awk '$1 == "version" { print $2 }')
        if [ "${v:-0}" -gt "$bestv" ]; then bestv=${v:-0}; best=$f; fi
    done
    [ -n "$best" ] || die "no BLS entry in $img:/boot/loader/entries"
    debugfs -R "cat /boot/loader/entries/$best" "$img" 2>/dev/null
}

# The bootloader's half of boot counting (Boot Loader Specification): when any entry carries a
# counter (`NAME+LEFT[-DONE].conf`), asks `lifsea-init bootloader` (the same rules as the init's
# half) which entry boots, renames it inside the image (debugfs ln + unlink: the inode keeps one
# link) to decrement its counter before booting, and prints the entry's text. Without counters it
# is `newest_entry`. The console log gets a `bootloader:` line on stderr.
choose_entry() { # IMG BIN
    local img=$1 bin=$2 d plan from to
    if ! debugfs -R 'ls -l /boot/loader/entries' "$img" 2>/dev/null | awk '$NF ~ /\+[0-9]+(-[0-9]+)?\.conf$/ { found = 1 } END { exit !found }'; then
        newest_entry "$img"
        return
    fi
    d=$(mktemp -d "${TMPDIR:-/tmp}/lifsea-entries.XXXXXX")
    debugfs -R "rdump /boot/loader/entries $d" "$img" 2>/dev/null
    plan=$("$bin" bootloader "$d/entries") || { rm -rf "$d"; die "no bootable entry in $img"; }
    rm -rf "$d"
    from=$(sed -n 1p <<<"$plan")
    to=$(sed -n 2p <<<"$plan")
    if [ -n "$to" ]; then
        printf 'ln /boot/loader/entries/%s /boot/loader/entries/%s\nunlink /boot/loader/entries/%s\n' \
            "$from" "$to" "$from" | debugfs -w -f - "$img" >/dev/null 2>&1
        echo "bootloader: booting $from as $to" >&2
        from=$to
    else
        echo "bootloader: booting $from" >&2
    fi
    debugfs -R "cat /boot/loader/entries/$from" "$img" 2>/dev/null
}

# Value of one key of a BLS entry given on stdin.
entry_key() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }'; }

# --- Stand-in initramfs (the real one comes from `lifsea-init mkinitramfs`) --------------------------

make_standin_initramfs() { # OUT
    local out=$1 d a m
    d=$(mktemp -d)
    mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/sysroot" "$d/modules"
    cp /bin/busybox "$d/bin/busybox"
    for a in $(busybox --list); do [ -e "$d/bin/$a" ] || ln -s busybox "$d/bin/$a"; done
    sed '1s|.*|#!/bin/sh|' "$LIFSEA_ROOT/qemu/standin-init.sh" >"$d/init"
    chmod 755 "$d/init"
    : >"$d/lifsea-standin-initramfs"
    local moddir="$KERNEL_DIR/root/lib/modules/$KVER"
    for m in $(module_closure "$moddir" "virtio_pci virtio_blk"); do
        cp "$moddir/$m" "$d/modules/"
        basename "$m" >>"$d/modules/order"
    done
    (cd "$d" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
    rm -rf "$d"
}

# The real initramfs, written by the init itself.
make_real_initramfs() { # BIN OUT
    "$1" mkinitramfs --kernel-modules "$KERNEL_DIR/root/lib/modules/$KVER" --modules virtio_pci,virtio_blk \
        --binary "$1" -o "$2" \
        || die "lifsea-init mkinitramfs failed"
}
