#!/bin/bash
# Installs what the build and the tests need on a fresh Debian machine. Idempotent and quiet.
# python3 in full (not -minimal): qemu/bench and the kubelet stand-in use json, http.server, argparse.
set -euo pipefail
need=()
for p in qemu-system-x86 ostree busybox-static e2fsprogs debootstrap cpio kmod dnsmasq containerd runc \
         systemd file iproute2 util-linux xz-utils gdisk python3; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
