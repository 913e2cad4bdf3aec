#!/bin/bash
# Boots a disk image in QEMU (TCG) the way a bootloader would: reads the newest BLS entry from the
# image (with boot counting when entries carry `+LEFT-DONE` counters: the spec's choice, the
# counter decremented inside the image before booting), takes its kernel, initrd and options from
# the image itself, and boots them with a hard timeout. The serial console goes to a log file (and to stdout with --show).
#
#   qemu/boot.sh [options] DISK
#
#   --log FILE         console log (default DISK.console.log)
#   --timeout SEC      hard limit on the whole QEMU run (default 120); exit status 124 when hit
#   --append ARGS      extra kernel arguments after the entry's options (the last init= wins)
#   --ostree PATH      replace the entry's ostree= argument (to test a wrong one)
#   --bus nvme|virtio  how the disk is attached; default: virtio when the entry has an initrd
#                      (modules reach it), NVMe otherwise (built into the Debian cloud kernel)
#   --no-disk          boot without the root disk attached (the missing-root test)
#   --microvm          -M microvm,pcie=on (same PCI devices, fewer emulated ones). EXPERIMENTAL: with
#                      the Debian cloud kernel under TCG it currently stalls after "tsc: Marking TSC
#                      unstable" (no PIT/HPET reference); no test uses it
#   --show             copy the console to stdout as well
#   --monitor SOCKET   QEMU monitor on a unix socket (server, no wait), and a free PCIe root port
#                      `hotport` for device_add ...,bus=hotport
#   --until REGEX      end QEMU as soon as a console line printed after the kernel started init
#                      matches REGEX (extended regex; the kernel's own command-line echo is earlier)
#
# Prints `console: FILE` and `qemu-exit: N` (and `wall-ms: N`, the wall time of the run) on stderr;
# exits with QEMU's status (0 after a guest poweroff; -no-reboot turns a reboot into an exit too).
set -euo pipefail
# shellcheck source=qemu/lib.sh
source "$(dirname "$0")/lib.sh"

log_file='' timeout_s=120 append='' ostree_arg='' bus='' no_disk=0 microvm=0 show=0 until_re='' monitor=''
while [ $# -gt 0 ]; do
    case $1 in
        --log) log_file=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --append) append="$append $2"; shift 2 ;;
        --ostree) ostree_arg=$2; shift 2 ;;
        --bus) bus=$2; shift 2 ;;
        --no-disk) no_disk=1; shift ;;
        --microvm) microvm=1; shift ;;
        --show) show=1; shift ;;
        --until) until_re=$2; shift 2 ;;
        --monitor) monitor=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || die "usage: qemu/boot.sh [options] DISK"
disk=$1
[ -f "$disk" ] || die "no disk image $disk"
log_file=${log_file:-$disk.console.log}

# The bootloader's half of boot counting (counted entries only; see choose_entry in lib.sh).
entry=$(choose_entry "$disk" "${LIFSEA_BIN:-$LIFSEA_ROOT/target/x86_64-unknown-linux-musl/release/lifsea-init}")
linux=$(entry_key linux <<<"$entry")
initrd=$(entry_key initrd <<<"$entry")
options=$(entry_key options <<<"$entry")
[ -n "$linux" ] || die "the newest entry has no linux line"
if [ -n "$ostree_arg" ]; then
    options=$(tr ' ' '\n' <<<"$options" | sed "s|^ostree=.*|ostree=$ostree_arg|" | tr '\n' ' ')
fi

# Dump kernel and initrd out of the image: /boot/ostree/... on the physical root (BLS paths are
# relative to the /boot partition, which here is the /boot directory of the root filesystem).
work=$(mktemp -d "${TMPDIR:-/tmp}/lifsea-boot.XXXXXX")
trap 'rm -rf "$work"' EXIT
debugfs -R "dump /boot$linux $work/vmlinuz" "$disk" 2>/dev/null
[ -s "$work/vmlinuz" ] || die "cannot read /boot$linux from $disk"
initrd_args=()
if [ -n "$initrd" ]; then
    debugfs -R "dump /boot$initrd $work/initrd" "$disk" 2>/dev/null
    [ -s "$work/initrd" ] || die "cannot read /boot$initrd from $disk"
    initrd_args=(-initrd "$work/initrd")
fi
if [ -z "$bus" ]; then
    if [ -n "$initrd" ]; then bus=virtio; else bus=nvme; fi
fi

machine=(-M q35)
if [ "$microvm" = 1 ]; then
    # microvm with its PCIe host bridge keeps the same devices (NVMe, virtio-pci); no firmware
    # tables beyond ACPI, no legacy devices: a faster kernel start.
    machine=(-M 'microvm,pcie=on')
fi
dev_suffix=pci
disk_args=()
if [ "$no_disk" = 0 ]; then
    disk_args=(-drive "file=$disk,if=none,id=d0,format=raw,cache=unsafe")
    case $bus in
        nvme) disk_args+=(-device 'nvme,drive=d0,serial=lifsea') ;;
        virtio) disk_args+=(-device "virtio-blk-$dev_suffix,drive=d0") ;;
        *) die "--bus must be nvme or virtio" ;;
    esac
fi
net_args=(-netdev 'user,id=n0,restrict=on' -device "virtio-net-$dev_suffix,netdev=n0")
monitor_args=(-monitor none)
if [ -n "$monitor" ]; then
    monitor_args=(-monitor "unix:$monitor,server=on,wait=off" -device 'pcie-root-port,id=hotport,chassis=9,slot=9')
fi

# panic=-1 with -no-reboot turns a kernel panic into a QEMU exit instead of a hang until the timeout.
cmdline="$options panic=-1$append"
echo "[lifsea-qemu] kernel ${linux##*/} ${initrd:+initrd ${initrd##*/} }bus ${bus} cmdline: $cmdline" >&2
: >"$log_file"
start_ns=$(date +%s%N)
set +e
qemu=(timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 -accel tcg "${machine[@]}" -m 1024 -smp 2
    -nographic -no-reboot -serial "file:$log_file" "${monitor_args[@]}" -display none
    -kernel "$work/vmlinuz" "${initrd_args[@]}" -append "$cmdline" "${disk_args[@]}" "${net_args[@]}")
"${qemu[@]}" </dev/null >/dev/null 2>"$work/qemu.err" &
qpid=$!
tpid=
if [ "$show" = 1 ]; then
    tail -n +1 -F "$log_file" 2>/dev/null &
    tpid=$!
fi
if [ -n "$until_re" ]; then
    # Stop QEMU as soon as the console shows the awaited line.
    while kill -0 "$qpid" 2>/dev/null; do
        if sed -n '/as init process/,$p' "$log_file" | grep -Eq -- "$until_re"; then
            echo "until-ms: $((($(date +%s%N) - start_ns) / 1000000))" >&2
            kill "$qpid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
fi
wait "$qpid"
rc=$?
if [ -n "$tpid" ]; then
    sleep 0.2
    kill "$tpid" 2>/dev/null
    wait "$tpid" 2>/dev/null
fi
set -e
end_ns=$(date +%s%N)
if [ -s "$work/qemu.err" ]; then sed 's/^/[qemu] /' "$work/qemu.err" >&2; fi
echo "console: $log_file" >&2
echo "wall-ms: $(((end_ns - start_ns) / 1000000))" >&2
echo "qemu-exit: $rc" >&2
exit "$rc"
