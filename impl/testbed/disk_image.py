"""The Linux test disk: MBR, a bootable FAT partition with the Debian kernel, a data partition.

    LBA 0        MBR: syslinux's boot code, two primary partitions
    partition 1  FAT, active: syslinux, vmlinuz (unmodified Debian kernel), initrd.img, syslinux.cfg
    partition 2  deterministic pseudo-random data, read by the guest through ata_piix and sd_mod

Built without root: the FAT is formatted and filled inside the image file with mtools, and
`syslinux --install --offset` writes the boot sector and ldlinux.sys there too. The image is
cached under build/testbed/images/<key>/, where the key hashes every input; a second build
with the same inputs only checks that the cached image is intact. The expected checksum is
read back from the finished image's data partition on the host.

Guests that write to the disk must boot a copy (`copy_disk`): the cached image is shared.

    python -m impl.testbed.disk_image     # build (or reuse) the image and print where it is
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from impl.testbed import initramfs
from impl.testbed.debian_kernel import DebianKernel, KernelFetchError, fetch_kernel

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPOSITORY_ROOT / "build" / "testbed" / "images"
SECTOR_BYTES = 512
MIB = 1 << 20
# Partitions start on 1 MiB boundaries, as fdisk places them.
BOOT_PARTITION_START = 1 * MIB
BOOT_PARTITION_SLACK = 4 * MIB
DEFAULT_DATA_MIB = 4
DEFAULT_DATA_SEED = "storvisor-testbed-data-v1"
# quiet keeps TCG boots short; the guest prints the libata lines itself. panic=-1 turns a panic
# into a reboot, which -no-reboot turns into QEMU's exit instead of a hang until the timeout.
DEFAULT_KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1"
DATA_DEVICE = "sda2"
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
# MBR partition types: FAT16 with LBA addressing; "non-FS data" for the raw data region.
PARTITION_TYPE_FAT16_LBA = 0x0E
PARTITION_TYPE_DATA = 0xDA
MBR_BOOT_CODE_BYTES = 440
MBR_PARTITION_TABLE_OFFSET = 446
MBR_SIGNATURE = b"\x55\xaa"
MBR_DISK_ID = 0x53544F52
# Sources whose text decides the image's contents: a change to any of them rebuilds it.
BUILDER_SOURCES = ("disk_image.py", "initramfs.py", "init.sh", "cpio_newc.py", "guest_report.py")


class DiskImageError(Exception):
    """The disk image cannot be built, or a file is not such a disk image."""


@dataclass(frozen=True)
class LinuxDisk:
    """A built disk image and what the guest must report when it boots it."""

    path: Path
    data_sha256: str  # of the data partition, read back from the image on the host
    data_bytes: int
    data_offset: int  # byte offset of the data partition in the image
    kernel_package: str
    kernel_version: str
    kernel_release: str
    kernel_cmdline: str


@dataclass(frozen=True)
class Partition:
    first_lba: int
    sectors: int
    partition_type: int
    active: bool

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR_BYTES

    @property
    def size(self) -> int:
        return self.sectors * SECTOR_BYTES


def _chs(lba: int) -> bytes:
    """The CHS triple of an MBR entry, for the 255-head 63-sector geometry; 1023/254/63 beyond it."""
    heads, sectors_per_track = 255, 63
    cylinder, rest = divmod(lba, heads * sectors_per_track)
    if cylinder > 1023:
        return bytes((0xFE, 0xFF, 0xFF))
    head, sector = divmod(rest, sectors_per_track)
    return bytes((head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF))


def master_boot_record(boot_code: bytes, partitions: list[Partition]) -> bytes:
    """LBA 0: boot code, disk identifier, four partition entries, 55AA (the classic MBR layout)."""
    if len(partitions) > 4:
        raise DiskImageError("an MBR holds at most four primary partitions")
    entries = b""
    for partition in partitions:
        last_lba = partition.first_lba + partition.sectors - 1
        entries += struct.pack(
            "<B3sB3sII",
            0x80 if partition.active else 0x00,
            _chs(partition.first_lba),
            partition.partition_type,
            _chs(last_lba),
            partition.first_lba,
            partition.sectors,
        )
    entries = entries.ljust(64, b"\0")
    code = boot_code[:MBR_BOOT_CODE_BYTES].ljust(MBR_BOOT_CODE_BYTES, b"\0")
    return code + struct.pack("<IH", MBR_DISK_ID, 0) + entries + MBR_SIGNATURE


def read_partitions(image: Path) -> list[Partition]:
    """The used entries of an image's MBR partition table."""
    with image.open("rb") as disk:
        mbr = disk.read(SECTOR_BYTES)
    if len(mbr) != SECTOR_BYTES or mbr[510:512] != MBR_SIGNATURE:
        raise DiskImageError(f"{image} has no MBR (no 55AA signature in its first sector)")
    partitions = []
    for index in range(4):
        status, _, kind, _, first_lba, sectors = struct.unpack_from(
            "<B3sB3sII", mbr, MBR_PARTITION_TABLE_OFFSET + 16 * index
        )
        if kind != 0:
            partitions.append(Partition(first_lba, sectors, kind, status == 0x80))
    return partitions


def data_partition_sha256(image: Path) -> tuple[str, int]:
    """sha256 and length of the image's data partition, as the guest must read it."""
    data = [partition for partition in read_partitions(image) if partition.partition_type == PARTITION_TYPE_DATA]
    if len(data) != 1:
        raise DiskImageError(f"{image} has {len(data)} data partitions (type {PARTITION_TYPE_DATA:#04x}), not one")
    digest = hashlib.sha256()
    with image.open("rb") as disk:
        disk.seek(data[0].offset)
        remaining = data[0].size
        while remaining:
            block = disk.read(min(remaining, MIB))
            if not block:
                raise DiskImageError(f"{image} ends inside its data partition")
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest(), data[0].size


def data_pattern(length: int, seed: str) -> bytes:
    """Deterministic pseudo-random bytes: SHAKE-256 of the seed, as long as asked."""
    return hashlib.shake_256(seed.encode()).digest(length)


def syslinux_config(kernel_cmdline: str) -> str:
    return (
        "DEFAULT linux\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL linux\n"
        "  KERNEL /vmlinuz\n"
        "  INITRD /initrd.img\n"
        f"  APPEND {kernel_cmdline}\n"
    )


def _tool(argv: list[str], what: str) -> None:
    if shutil.which(argv[0]) is None:
        raise DiskImageError(f"{what}: `{argv[0]}` is not installed; run `make setup`")
    # mtools refuses geometries that do not match a floppy or a whole disk unless told not to check.
    environment = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    result = subprocess.run(argv, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise DiskImageError(f"{what}: `{' '.join(argv)}` failed:\n{result.stderr.strip()}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def _round_up_mib(length: int) -> int:
    return -(-length // MIB) * MIB


def _write_image(image: Path, kernel: DebianKernel, initrd: bytes, data: bytes, kernel_cmdline: str) -> None:
    """Lay out the disk in `image`: MBR, formatted and filled FAT partition, data partition."""
    boot_size = _round_up_mib(kernel.vmlinuz.stat().st_size + len(initrd) + BOOT_PARTITION_SLACK)
    boot = Partition(BOOT_PARTITION_START // SECTOR_BYTES, boot_size // SECTOR_BYTES, PARTITION_TYPE_FAT16_LBA, True)
    data_partition = Partition(
        (boot.offset + boot.size) // SECTOR_BYTES, len(data) // SECTOR_BYTES, PARTITION_TYPE_DATA, False
    )
    with image.open("wb") as disk:
        disk.write(master_boot_record(SYSLINUX_MBR.read_bytes(), [boot, data_partition]))
        disk.seek(data_partition.offset)
        disk.write(data)
    fat = f"{image}@@{boot.offset}"
    # -H: hidden sectors = the partition's first LBA, which the boot sector needs to find itself.
    _tool(
        ["mformat", "-i", fat, "-T", str(boot.sectors), "-H", str(boot.first_lba), "-h", "255", "-s", "63",
         "-N", f"{MBR_DISK_ID:08X}", "-v", "STORVISOR", "::"],
        "cannot format the boot partition",
    )
    staging = image.parent / "boot-files"
    staging.mkdir()
    (staging / "initrd.img").write_bytes(initrd)
    (staging / "syslinux.cfg").write_text(syslinux_config(kernel_cmdline))
    _tool(["mcopy", "-i", fat, str(kernel.vmlinuz), "::/vmlinuz"], "cannot copy the kernel")
    _tool(["mcopy", "-i", fat, str(staging / "initrd.img"), str(staging / "syslinux.cfg"), "::/"],
          "cannot copy the initramfs and syslinux.cfg")
    shutil.rmtree(staging)
    _tool(["syslinux", "--install", "--offset", str(boot.offset), str(image)], "syslinux cannot install")


def _cache_key(kernel: DebianKernel, initrd: bytes, data_bytes: int, data_seed: str, kernel_cmdline: str) -> str:
    here = Path(__file__).parent
    inputs = {
        "builder": {name: _sha256((here / name).read_bytes()) for name in BUILDER_SOURCES},
        "kernel": [kernel.package, kernel.version, kernel.deb_sha256],
        "initrd": _sha256(initrd),
        "syslinux_mbr": _sha256(SYSLINUX_MBR.read_bytes()),
        "syslinux_ldlinux": _sha256(LDLINUX_C32.read_bytes()),
        "data": [data_bytes, data_seed],
        "cmdline": kernel_cmdline,
    }
    return _sha256(json.dumps(inputs, sort_keys=True).encode())[:20]


def _load_cached(directory: Path) -> LinuxDisk | None:
    """The cached image in `directory` if it is complete and unchanged since it was built."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    image = directory / "disk.img"
    if not image.is_file() or _sha256_file(image) != manifest.pop("image_sha256"):
        return None
    return LinuxDisk(**{**manifest, "path": image})


def build_linux_disk(
    *,
    data_mib: int = DEFAULT_DATA_MIB,
    data_seed: str = DEFAULT_DATA_SEED,
    kernel_cmdline: str = DEFAULT_KERNEL_CMDLINE,
    images_dir: Path = IMAGES_DIR,
) -> LinuxDisk:
    """The Linux test disk for these parameters, built once and then taken from the cache."""
    if data_mib < 1:
        raise DiskImageError(f"the data partition needs at least 1 MiB, not {data_mib}")
    for required in (SYSLINUX_MBR, LDLINUX_C32):
        if not required.is_file():
            raise DiskImageError(f"{required} is missing; run `make setup` (Debian packages syslinux, syslinux-common)")
    kernel = fetch_kernel()
    initrd = initramfs.build_initramfs(kernel, DATA_DEVICE)
    data_bytes = data_mib * MIB
    directory = images_dir / _cache_key(kernel, initrd, data_bytes, data_seed, kernel_cmdline)
    cached = _load_cached(directory)
    if cached is not None:
        return cached
    shutil.rmtree(directory, ignore_errors=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    # A private staging folder, renamed into place when complete: concurrent builds cannot mix.
    staging = Path(tempfile.mkdtemp(prefix=f"{directory.name}.", suffix=".partial", dir=images_dir))
    staging.chmod(0o755)
    image = staging / "disk.img"
    _write_image(image, kernel, initrd, data_pattern(data_bytes, data_seed), kernel_cmdline)
    data_sha256, measured_bytes = data_partition_sha256(image)
    disk = LinuxDisk(
        path=directory / "disk.img",
        data_sha256=data_sha256,
        data_bytes=measured_bytes,
        data_offset=[p for p in read_partitions(image) if p.partition_type == PARTITION_TYPE_DATA][0].offset,
        kernel_package=kernel.package,
        kernel_version=kernel.version,
        kernel_release=kernel.release,
        kernel_cmdline=kernel_cmdline,
    )
    manifest = {**asdict(disk), "image_sha256": _sha256_file(image)}
    del manifest["path"]
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        staging.rename(directory)
    except OSError:
        # Another build of the same inputs finished first; its image is the same disk.
        shutil.rmtree(staging)
        cached = _load_cached(directory)
        if cached is None:
            raise DiskImageError(f"cannot move the built image into {directory}") from None
        return cached
    return disk


def copy_disk(disk: LinuxDisk, destination: Path) -> LinuxDisk:
    """A private copy of the image, for a guest (or VMM) that writes to its disk."""
    shutil.copyfile(disk.path, destination)
    return LinuxDisk(**{**asdict(disk), "path": destination})


def main() -> int:
    try:
        disk = build_linux_disk()
    except (DiskImageError, KernelFetchError, initramfs.InitramfsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"image:    {disk.path}")
    print(f"kernel:   {disk.kernel_package} {disk.kernel_version}, command line {disk.kernel_cmdline!r}")
    print(f"expected: sha256={disk.data_sha256} bytes={disk.data_bytes} (data partition at byte {disk.data_offset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
