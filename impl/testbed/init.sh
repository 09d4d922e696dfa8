#!/bin/busybox sh
# The test guest's /init: load the IDE driver stack, read the data partition through the
# kernel's block layer (ata_piix: bus-master DMA, IRQ 14), print its checksum, power off.
# Words between at-signs are filled in by initramfs.py.
@PROLOGUE@

# The disk appears asynchronously, once libata has probed the channel and sd has read the table.
tries=0
until [ -b /dev/@DATA_DEVICE@ ]; do
    tries=$((tries + 1))
    [ "$tries" -le @WAIT_TENTHS@ ] || fail "/dev/@DATA_DEVICE@ did not appear"
    sleep 0.1
done

sectors=$(cat /sys/class/block/@DATA_DEVICE@/size) || fail "cannot read the size of @DATA_DEVICE@"
digest=$(dd if=/dev/@DATA_DEVICE@ bs=1M 2>/dev/null | sha256sum) || fail "reading /dev/@DATA_DEVICE@ failed"

# Evidence of how the data was read: libata's probe lines, the transfer mode each device is
# set to (libata prints "configured for" only on a hard reset, so ask sysfs), the IDE IRQ counts.
dmesg | grep -E 'ata[0-9]+(\.[0-9]+)?: '
for device in /sys/class/ata_device/*; do
    echo "@ATA_TAG@ ${device##*/} class=$(cat "$device/class") xfer_mode=$(cat "$device/xfer_mode")"
done
grep ata_piix /proc/interrupts

echo "@CHECKSUM_TAG@ sha256=${digest%% *} bytes=$((sectors * 512))"
poweroff -f
