#!/bin/sh
# Guest-side driver of the OS update VM tests (tests/vm_os.rs, docs/os.md). check.sh hands over to
# it when the kernel command line has `vmtest.os=STEP[,STEP...]`; the host picks the steps of each
# boot and reads the console:
#
#   upgrade:KIND  write /etc/lifsea/os.toml, commit lifsea/x86_64/KIND into the node's own ostree
#                 repo (the base commit plus a marker file; `bad`: containerd's unit points at a
#                 missing binary; `hung`: the init is the fault-injection build the host put in
#                 /var/lib/lifsea-test/init-fault) and `initctl os upgrade REF --reboot`
#   report        wait (bounded) until containerd answers (OS-HEALTHY) and this boot is no longer
#                 counting (blessed, or never counted), then print `initctl os status`
#   rollback      `initctl os rollback --reboot`
#   off           orderly poweroff
#
# os.toml settings come from `vmtest.os.tries=`, `vmtest.os.watchdog=` (defaults 3 and 60s).
# Every line the host reads starts with `OS-`.

if [ -w /dev/console ]; then exec >/dev/console 2>&1; fi

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
up() { cut -d' ' -f1 /proc/uptime; }
base=lifsea/x86_64/base
repo=/sysroot/ostree/repo
marker=/usr/lib/lifsea/os-test-marker

echo "OS-BOOT uptime=$(up) deployment=$(awk '$5 == "/" { r = $4 } END { print r }' /proc/self/mountinfo) marker=$(cat $marker 2>/dev/null || echo none)"

show_status() {
    echo "---- initctl os ----"
    initctl os status 2>&1
    echo "---- end ----"
}

# Waits (bounded) for the update job to end; the job's own --reboot then follows.
wait_job() {
    i=0
    while initctl os status 2>/dev/null | grep -q '^running:' && [ $i -lt 3000 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    show_status
}

make_commit() { # KIND
    kind=$1 ov=/run/lifsea-os/$1
    rm -rf "$ov"
    mkdir -p "$ov/usr/lib/lifsea"
    echo "$kind" >"$ov$marker"
    case $kind in
        bad)
            mkdir -p "$ov/usr/lib/lifsea/units"
            sed 's|^exec = .*|exec = ["/usr/bin/containerd-is-missing"]|' \
                /usr/lib/lifsea/units/containerd.toml >"$ov/usr/lib/lifsea/units/containerd.toml"
            ;;
        hung)
            mkdir -p "$ov/usr/lib/ostree"
            install -m 755 /var/lib/lifsea-test/init-fault "$ov/usr/lib/lifsea/lifsea-init"
            install -m 755 /var/lib/lifsea-test/init-fault "$ov/usr/lib/ostree/ostree-prepare-root"
            ;;
    esac
    # The node's repo lives on /sysroot, read-only for everyone but a short window: open one in a
    # mount namespace of this command only.
    unshare -m sh -c "mount -o remount,bind,rw /sysroot && ostree --repo=$repo commit \
        --branch=lifsea/x86_64/$kind --tree=ref=$base --tree=dir=$ov --subject='lifsea test: $kind'" 2>&1
}

for step in $(arg vmtest.os | tr ',' ' '); do
    case $step in
        upgrade:*)
            kind=${step#upgrade:}
            mkdir -p /etc/lifsea
            cat >/etc/lifsea/os.toml <<EOF
healthy-for = "3s"
deadline = "5m"
tries = $(arg vmtest.os.tries | grep . || echo 3)
watchdog = "$(arg vmtest.os.watchdog | grep . || echo 60s)"
EOF
            if csum=$(make_commit "$kind"); then
                echo "OS-COMMIT $kind $csum"
            else
                echo "OS-FAIL commit $kind: $(echo "$csum" | tr '\n' '|')"
                kill -USR2 1
                exit 0
            fi
            echo "OS-UPGRADE $(initctl os upgrade "lifsea/x86_64/$kind" --reboot 2>&1 | tr '\n' '|')"
            wait_job
            # The job reboots on success: still here means it failed.
            sleep 30
            echo "OS-FAIL upgrade did not reboot"
            kill -USR2 1
            exit 0
            ;;
        report)
            healthy=
            i=0
            while [ $i -lt 2400 ]; do
                if [ -z "$healthy" ] && timeout 10 ctr version >/dev/null 2>&1; then
                    healthy=$(up)
                    echo "OS-HEALTHY uptime=$healthy"
                fi
                if [ -n "$healthy" ] && ! initctl os status 2>/dev/null | grep -q '^counting:'; then
                    break
                fi
                sleep 0.1
                i=$((i + 1))
            done
            echo "OS-SETTLED uptime=$(up)"
            show_status
            echo "---- os timeline ----"
            initctl analyze 2>&1 | grep -E ' os |watchdog' || true
            echo "---- end ----"
            ;;
        rollback)
            echo "OS-ROLLBACK $(initctl os rollback --reboot 2>&1 | tr '\n' '|')"
            wait_job
            sleep 30
            echo "OS-FAIL rollback did not reboot"
            kill -USR2 1
            exit 0
            ;;
        off)
            sync
            kill -USR2 1
            exit 0
            ;;
        *) echo "OS-FAIL unknown step $step" ;;
    esac
done
exit 0
