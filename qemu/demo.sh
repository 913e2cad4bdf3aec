#!/bin/bash
# The main job: build lifsea-init and a Debian ostree image (containerd, runc, ostree), boot it in
# QEMU (TCG, direct mode: no initramfs, root on NVMe) to a ready node (eth0 leased by the init's
# DHCP client, containerd running a container), show the console live, then the boot timeline. The guest's checker unit waits for containerd, asks it for its version, prints
# `initctl list` and `initctl analyze` on the console and powers the node off in order.
#
#   bash qemu/demo.sh [--mode direct|initramfs] [--timeout SEC]
#
# Everything downloaded or built is cached under target/lifsea-cache/ (LIFSEA_CACHE): a second run
# only boots.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=direct timeout_s=300
while [ $# -gt 0 ]; do
    case $1 in
        --mode) mode=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $1" >&2; exit 2 ;;
    esac
done

bash tests/setup.sh
cargo build --release
dir=$(bash qemu/build-image.sh --variant debian --mode "$mode")
work=target/lifsea-demo
mkdir -p "$work"
# Boots write to the disk (the /var marker, logs): boot a copy so the cached image stays pristine.
cp --sparse=always "$dir/disk.img" "$work/disk.img"
log="$work/console.log"
echo "== booting $dir/disk.img ($mode mode); console follows, also in $log" >&2
status=0
bash qemu/boot.sh --show --timeout "$timeout_s" --log "$log" "$work/disk.img" || status=$?

echo
echo "== boot milestones (guest uptime, from the init's console lines)"
grep -E 'lifsea-init: (\[|boot complete|stage|root|machine|initramfs|supervise)' "$log" | sed 's/^\[ *[0-9.]*\] //' || true
echo
echo "== boot timeline (initctl analyze, run inside the guest once containerd was ready)"
sed -n '/^---- initctl analyze ----/,/^---- end ----/p' "$log" | sed '1d;$d'
echo
echo "== checks"
grep -E '^CHECK (containerd|control-api|ostree-status|usr-readonly|net-[a-z-]*|node-prep|ctr-[a-z-]*|dev-disk-by-label|devices-fact)|^CHECKS-DONE' "$log" || true
if ! grep -q '^CHECK containerd: PASS' "$log"; then
    echo "demo: containerd did not answer; see $log" >&2
    exit 1
fi
exit "$status"
