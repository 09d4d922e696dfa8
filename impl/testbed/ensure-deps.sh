#!/usr/bin/env bash
# Installs what storvisor needs on a Debian 12 machine, and nothing that is already there.
# Debian packages (as root, with apt-get), then a virtual environment with pyproject.toml's
# dependencies. A second run installs nothing. Fails with a clear message when it cannot.
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PACKAGES=(
  qemu-system-x86 qemu-utils      # the emulated PC, with SeaBIOS
  gcc binutils nasm make          # the VMM and the probe guest
  zlib1g-dev                      # the server's data path: zlib's CRC-32, as the overlay format stores it
  syslinux syslinux-common mtools # bootable FAT disk images without root
  busybox-static cpio xz-utils    # the guest's initramfs
  kmod zstd                       # the Debian kernel's modules.dep (depmod), compressed modules
  vblade aoetools                 # the reference AoE target and tools
  iproute2                        # network namespaces and veth pairs
  python3 python3-venv
)

fail() { echo "ensure-deps: $*" >&2; exit 1; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || fail "missing Debian packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}"
  echo "ensure-deps: installing ${missing[*]}"
  apt-get update -q || fail "apt-get update failed; is the Debian mirror reachable?"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]} failed"
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "ensure-deps: creating the virtual environment .venv"
  "$PYTHON" -m venv .venv || fail "cannot create a virtual environment with $PYTHON (is python3-venv installed?)"
  .venv/bin/python -m pip install -q --upgrade pip || fail "cannot upgrade pip in .venv"
  .venv/bin/python -m pip install -q -e '.[dev]' || fail "pip could not install the dependencies of pyproject.toml"
  echo "$want" > "$stamp"
fi

# The test guest's unmodified Debian kernel: downloaded and unpacked under build/, never installed.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || fail "apt knows no linux-image-amd64; run apt-get update as root"
  apt-get update -q || fail "apt-get update failed; is the Debian mirror reachable?"
fi
.venv/bin/python -m impl.testbed.debian_kernel >/dev/null \
  || fail "cannot fetch the Debian kernel for the test guest (the reason is above)"
