# The start every test guest's /init shares (initramfs.py puts it where an init template asks for it):
# busybox applets, /proc, /sys and /dev, a fail() that reports and powers off, the kernel modules.
/bin/busybox --install -s
set -o pipefail

fail() {
    echo "@ERROR_TAG@ $*"
    poweroff -f
}

mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "cannot mount /dev"

# Dependencies first, in the order modules.dep gives.
for module in @MODULES@; do
    insmod "/lib/modules/$module" || fail "insmod $module failed"
done
