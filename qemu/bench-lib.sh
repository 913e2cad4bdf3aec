# shellcheck shell=bash
# Image recipes for the boot benchmark (qemu/bench), on top of qemu/lib.sh: the systemd comparison
# image (variant B, also booted by the floor + containerd variant D) and the floor image (variant C).
# The lifsea-init images come from qemu/build-image.sh --bench. Sourced; every result is cached
# under $LIFSEA_CACHE and keyed by its recipe, like the images of build-image.sh.

# shellcheck source=qemu/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What Debian itself needs to boot the way a Debian cloud image does, on top of the package set the
# lifsea image is made of (LIFSEA_DEBIAN_PACKAGES): systemd as PID 1, udev, initramfs-tools (zstd is
# its default compressor), dbus (every Debian system with systemd has it).
BENCH_SYSTEMD_EXTRA=systemd,systemd-sysv,udev,initramfs-tools,zstd,dbus
# A fixed filesystem UUID: root=UUID= the Debian way, and a stable image key.
BENCH_SYSTEMD_UUID=5eb0c0de-1f5e-4a11-9b00-0000000000b1
BENCH_GUEST="$LIFSEA_ROOT/qemu/bench-guest"

# Prints the path of a debootstrapped bookworm tree with the lifsea package set plus systemd's boot
# packages, building it on first use (keyed by suite, package lists and mirror).
bench_systemd_base_dir() {
    with_lock bench-systemd-base bench_systemd_base_dir_locked
}

bench_systemd_base_dir_locked() {
    debootstrap_cached debian-systemd-base "$LIFSEA_DEBIAN_PACKAGES,$BENCH_SYSTEMD_EXTRA"
}

# The files a recipe's key covers besides its own inputs: this file, lib.sh and the guest side.
bench_recipe_hash() {
    cat "$LIFSEA_ROOT/qemu/lib.sh" "$LIFSEA_ROOT/qemu/bench-lib.sh" "$BENCH_GUEST"/*
}

# Removes older builds of one kind once a new one is complete (keys are 16 hex digits).
bench_prune() { # KIND KEEP
    local old
    for old in "$LIFSEA_CACHE/images/$1-"????????????????; do
        [ "$old" = "$2" ] || rm_tree "$old"
    done
}

# --- Variant C: the floor -------------------------------------------------------------------------

# Prints the directory of the floor image: a small ext4 disk holding static busybox and an /init
# that prints the marker at once (no modules, nothing else).
bench_floor_image() {
    ensure_kernel
    local key out
    key=$( { bench_recipe_hash; sha256sum </bin/busybox; echo "$KVER floor"; } | short_hash)
    out="$LIFSEA_CACHE/images/bench-floor-$key"
    mkdir -p "$LIFSEA_CACHE/images"
    with_lock bench-floor bench_floor_image_locked "$out" >&2
    echo "$out"
}

bench_floor_image_locked() { # OUT
    local out=$1 R
    [ -f "$out/disk.img" ] && return 0
    log "building the floor image in $out"
    rm_tree "$out.tmp"
    R="$out.tmp/rootfs"
    mkdir -p "$R/bin" "$R/proc" "$R/dev"
    cp /bin/busybox "$R/bin/busybox"
    install -m 755 "$BENCH_GUEST/floor-init.sh" "$R/init"
    # The cloud kernel does not mount devtmpfs by itself: init's console comes from this node.
    mknod -m 600 "$R/dev/console" c 5 1
    mkfs.ext4 -q -L bench-floor -d "$R" "$out.tmp/disk.img" 32M
    rm_tree "$R"
    mv "$out.tmp" "$out"
    bench_prune bench-floor "$out"
}

# --- Variant B: Debian booted by systemd (and D, its disk booted with a shell-script init) ------

# Prints the directory of the systemd image: disk.img (ext4, root=UUID=), and beside it the kernel's
# initramfs-tools initrd (initrd.img) made in the image by Debian's own mkinitramfs.
bench_systemd_image() {
    ensure_kernel
    local base key out
    base=$(bench_systemd_base_dir)
    key=$( { bench_recipe_hash; echo "$KVER $base systemd"; } | short_hash)
    out="$LIFSEA_CACHE/images/bench-systemd-$key"
    mkdir -p "$LIFSEA_CACHE/images"
    with_lock bench-systemd bench_systemd_image_locked "$out" "$base" >&2
    echo "$out"
}

bench_systemd_image_locked() { # OUT BASE
    local out=$1 base=$2 R
    [ -f "$out/disk.img" ] && return 0
    log "building the systemd image in $out"
    rm_tree "$out.tmp"
    mkdir -p "$out.tmp"
    R="$out.tmp/rootfs"
    cp -a "$base" "$R"
    rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/* \
        "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/var/log/*
    echo bench-systemd >"$R/etc/hostname"
    # A machine that has booted before: no first-boot work (presets, machine-id) in the measurement.
    echo 0b1e5eb0c0de4a119b00000000000b1a >"$R/etc/machine-id"
    echo "UUID=$BENCH_SYSTEMD_UUID / ext4 errors=remount-ro 0 1" >"$R/etc/fstab"
    # The kernel the way its package installs it: modules, config (mkinitramfs reads it), image.
    mkdir -p "$R/lib/modules" "$R/boot"
    rm -rf "$R/lib/modules/$KVER"
    cp -a "$KERNEL_DIR/root/lib/modules/$KVER" "$R/lib/modules/$KVER"
    cp "$KERNEL_DIR/root/boot/config-$KVER" "$KERNEL_DIR/root/boot/System.map-$KVER" "$R/boot/" 2>/dev/null || true
    cp "$KERNEL_DIR/root/boot/vmlinuz-$KVER" "$R/boot/"
    # DHCP on the NIC with systemd-networkd; network-online.target waits for it.
    install -m 644 "$BENCH_GUEST/20-dhcp.network" "$R/etc/systemd/network/20-dhcp.network"
    mkdir -p "$R/usr/local/lib/bench" "$R/etc/systemd/system/multi-user.target.wants" \
        "$R/etc/systemd/system/network-online.target.wants" "$R/etc/systemd/system/sockets.target.wants"
    install -m 755 "$BENCH_GUEST/marker.sh" "$BENCH_GUEST/floor-containerd.sh" "$R/usr/local/lib/bench/"
    install -m 644 "$BENCH_GUEST/bench-marker.service" "$R/etc/systemd/system/"
    # `systemctl enable` without a running systemd: the symlinks it would make.
    ln -sf /etc/systemd/system/bench-marker.service "$R/etc/systemd/system/multi-user.target.wants/"
    ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/"
    ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
        "$R/etc/systemd/system/network-online.target.wants/"
    ln -sf /lib/systemd/system/systemd-networkd.socket "$R/etc/systemd/system/sockets.target.wants/"
    [ -e "$R/etc/systemd/system/multi-user.target.wants/containerd.service" ] \
        || ln -sf /lib/systemd/system/containerd.service "$R/etc/systemd/system/multi-user.target.wants/"
    # Debian's own initrd for this kernel (MODULES=most, udev, zstd), made inside the image.
    chroot "$R" mkinitramfs -o "/boot/initrd.img-$KVER" "$KVER" >"$out.tmp/mkinitramfs.log" 2>&1 \
        || die "mkinitramfs in the systemd image failed: see $out.tmp/mkinitramfs.log"
    cp "$R/boot/initrd.img-$KVER" "$out.tmp/initrd.img"
    mkfs.ext4 -q -L bench-systemd -U "$BENCH_SYSTEMD_UUID" -d "$R" "$out.tmp/disk.img" 3G
    rm_tree "$R"
    mv "$out.tmp" "$out"
    bench_prune bench-systemd "$out"
}

# --- Variant A: the lifsea-init images (qemu/build-image.sh --bench) -----------------------------

# Replaces the VM checker with the benchmark's marker unit in a staged lifsea rootfs.
stage_bench_marker() { # R
    local R=$1
    rm -f "$R/usr/lib/lifsea/units/vm-check.toml"
    install -m 644 "$BENCH_GUEST/bench-marker.toml" "$R/usr/lib/lifsea/units/"
    install -D -m 755 "$BENCH_GUEST/marker.sh" "$R/usr/lib/lifsea/bench/marker.sh"
}
