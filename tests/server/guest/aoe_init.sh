#!/bin/busybox sh
# The AoE test guest's /init: Linux's own AoE initiator (the aoe driver over e1000) reads the
# server's disk, writes 4 KiB and reads them back, prints checksums on COM1, powers off.
# Words between at-signs are filled in by linux_aoe_guest.py.
@PROLOGUE@

tries=0
until ip link set eth0 up 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail "eth0 did not appear"
    sleep 0.1
done

# AoEr11 §3.2: the driver broadcasts Query Config on every write to discover; the target answers.
disk=/dev/etherd/e@SHELF@.@SLOT@
tries=0
until [ -b "$disk" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 300 ] || fail "$disk did not appear"
    [ -c /dev/etherd/discover ] && echo > /dev/etherd/discover
    sleep 0.1
done
tries=0
until [ "$(cat /sys/block/etherd!e@SHELF@.@SLOT@/size 2>/dev/null)" -gt 0 ] 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 300 ] || fail "$disk has no size"
    sleep 0.1
done

echo "AOE-GUEST-SIZE sectors=$(cat /sys/block/etherd!e@SHELF@.@SLOT@/size)"
digest=$(dd if="$disk" bs=64k 2>/dev/null | sha256sum) || fail "reading $disk failed"
echo "AOE-GUEST-READ sha256=${digest%% *}"
dd if=/dev/zero bs=4096 count=1 2>/dev/null | tr '\000' 'A' | dd of="$disk" bs=4096 seek=@WRITE_BLOCK@ conv=fsync 2>/dev/null || fail "writing $disk failed"
echo 3 > /proc/sys/vm/drop_caches
digest=$(dd if="$disk" bs=4096 skip=@WRITE_BLOCK@ count=1 2>/dev/null | sha256sum) || fail "reading back failed"
echo "AOE-GUEST-READBACK sha256=${digest%% *}"
poweroff -f
