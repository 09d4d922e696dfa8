"""The disk-image builder: layout, cache, initramfs contents and module order, cpio format."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.testbed import cpio_newc, disk_image, initramfs
from impl.testbed.debian_kernel import KernelFetchError, download_package, fetch_kernel

MIB = 1 << 20


def _mtools(*argv: str) -> str:
    environment = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=environment).stdout


def _cpio_list(archive: bytes) -> list[str]:
    """The member names GNU cpio reads from `archive`, in order."""
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=archive, check=True, capture_output=True)
    return listing.stdout.decode().split()


def _cpio_extract(archive: bytes, directory: Path, *patterns: str) -> None:
    """Unpack the members of `archive` that match `patterns` (all when none) with GNU cpio."""
    directory.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", *patterns], input=archive, cwd=directory,
        check=True, capture_output=True,
    )


# Layout


def test_mbr_has_an_active_fat_partition_then_the_data_partition(linux_disk):
    boot, data = disk_image.read_partitions(linux_disk.path)
    assert (boot.active, boot.partition_type, boot.offset) == (True, disk_image.PARTITION_TYPE_FAT16_LBA, MIB)
    assert (data.active, data.partition_type) == (False, disk_image.PARTITION_TYPE_DATA)
    assert data.first_lba == boot.first_lba + boot.sectors
    assert (data.offset, data.size) == (linux_disk.data_offset, linux_disk.data_bytes)
    assert linux_disk.path.stat().st_size == data.offset + data.size


def test_mbr_carries_syslinux_boot_code(linux_disk):
    mbr = linux_disk.path.read_bytes()[:512]
    assert mbr[:disk_image.MBR_BOOT_CODE_BYTES] == disk_image.SYSLINUX_MBR.read_bytes()[:disk_image.MBR_BOOT_CODE_BYTES]
    assert mbr[510:] == b"\x55\xaa"


def test_boot_partition_is_a_syslinux_fat_that_knows_where_it_starts(linux_disk):
    with linux_disk.path.open("rb") as image:
        image.seek(MIB)
        boot_sector = image.read(512)
    assert boot_sector[3:11] == b"SYSLINUX"
    hidden_sectors = struct.unpack_from("<I", boot_sector, 0x1C)[0]
    assert hidden_sectors == MIB // 512
    listing = _mtools("mdir", "-a", "-b", "-i", f"{linux_disk.path}@@{MIB}", "::/")
    names = {Path(line).name.lower() for line in listing.split()}
    assert {"ldlinux.sys", "ldlinux.c32", "vmlinuz", "initrd.img", "syslinux.cfg"} <= names


def test_boot_partition_holds_the_unmodified_debian_kernel(linux_disk, tmp_path):
    copied = tmp_path / "vmlinuz"
    _mtools("mcopy", "-i", f"{linux_disk.path}@@{MIB}", "::/vmlinuz", str(copied))
    assert copied.read_bytes() == fetch_kernel().vmlinuz.read_bytes()


def test_syslinux_boots_the_kernel_with_its_command_line_on_com1(linux_disk, tmp_path):
    copied = tmp_path / "syslinux.cfg"
    _mtools("mcopy", "-i", f"{linux_disk.path}@@{MIB}", "::/syslinux.cfg", str(copied))
    config = copied.read_text()
    assert "KERNEL /vmlinuz" in config and "INITRD /initrd.img" in config
    assert f"APPEND {linux_disk.kernel_cmdline}" in config
    assert "console=ttyS0" in linux_disk.kernel_cmdline


def test_data_partition_is_the_seeded_pattern(linux_disk):
    expected = hashlib.sha256(disk_image.data_pattern(linux_disk.data_bytes, disk_image.DEFAULT_DATA_SEED))
    assert linux_disk.data_sha256 == expected.hexdigest()


def test_a_file_without_an_mbr_is_refused(tmp_path):
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 4096)
    with pytest.raises(disk_image.DiskImageError, match="no MBR"):
        disk_image.data_partition_sha256(blank)


def test_an_empty_data_partition_is_refused():
    with pytest.raises(disk_image.DiskImageError, match="at least 1 MiB"):
        disk_image.build_linux_disk(data_mib=0)


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_chs_entries_follow_the_255_head_63_sector_geometry(lba):
    head, sector_and_cylinder_high, cylinder_low = disk_image._chs(lba)
    cylinder = ((sector_and_cylinder_high & 0xC0) << 2) | cylinder_low
    sector = sector_and_cylinder_high & 0x3F
    if lba >= 1024 * 255 * 63:
        assert (head, sector, cylinder) == (254, 63, 1023)
    else:
        assert (cylinder * 255 + head) * 63 + sector - 1 == lba


# Cache


def test_a_second_build_reuses_the_cached_image(linux_disk):
    before = linux_disk.path.stat().st_mtime_ns
    again = disk_image.build_linux_disk()
    assert again == linux_disk
    assert linux_disk.path.stat().st_mtime_ns == before


def test_a_changed_input_gives_another_image(linux_disk, tmp_path):
    other = disk_image.build_linux_disk(data_mib=1, data_seed="another seed", images_dir=tmp_path)
    assert other.path.parent.parent == tmp_path
    assert other.data_bytes == MIB
    assert other.data_sha256 != linux_disk.data_sha256
    assert disk_image.data_partition_sha256(other.path) == (other.data_sha256, other.data_bytes)


def test_a_damaged_cached_image_is_rebuilt(tmp_path):
    built = disk_image.build_linux_disk(data_mib=1, images_dir=tmp_path)
    with built.path.open("r+b") as image:
        image.seek(built.data_offset)
        image.write(b"damage")
    rebuilt = disk_image.build_linux_disk(data_mib=1, images_dir=tmp_path)
    assert rebuilt == built
    assert disk_image.data_partition_sha256(rebuilt.path) == (built.data_sha256, built.data_bytes)


# Initramfs


def test_initramfs_holds_busybox_init_and_the_ide_modules(tmp_path):
    kernel = fetch_kernel()
    archive = gzip.decompress(initramfs.build_initramfs(kernel, "sda2"))
    members = _cpio_list(archive)
    _cpio_extract(archive, tmp_path / "root", "init", "bin/busybox")
    assert {"init", "bin/busybox", "dev/console"} <= set(members)
    modules = [name for name in members if name.endswith(".ko")]
    names = [initramfs.module_name(name) for name in modules]
    assert {"ata_piix", "libata", "scsi_mod", "sd_mod"} <= set(names)
    init = (tmp_path / "root" / "init").read_text()
    assert "@" not in init.replace("$@", "")
    assert init.index("libata.ko") < init.index("ata_piix.ko")
    assert (tmp_path / "root" / "bin" / "busybox").read_bytes() == initramfs.BUSYBOX.read_bytes()


def test_initramfs_is_reproducible():
    kernel = fetch_kernel()
    assert initramfs.build_initramfs(kernel, "sda2") == initramfs.build_initramfs(kernel, "sda2")


def test_modules_dep_lines_parse_into_dependencies():
    text = "kernel/a.ko: kernel/b.ko.xz kernel/c.ko\nkernel/b.ko.xz:\n\nkernel/c.ko: kernel/b.ko.xz\n"
    assert initramfs.parse_modules_dep(text) == {
        "kernel/a.ko": ["kernel/b.ko.xz", "kernel/c.ko"],
        "kernel/b.ko.xz": [],
        "kernel/c.ko": ["kernel/b.ko.xz"],
    }


def test_a_malformed_modules_dep_line_is_refused():
    with pytest.raises(initramfs.InitramfsError, match="line 2"):
        initramfs.parse_modules_dep("kernel/a.ko:\nkernel/b.ko kernel/c.ko\n")


def test_an_unknown_module_is_refused():
    with pytest.raises(initramfs.InitramfsError, match="no module named ata_piix"):
        initramfs.load_order({"kernel/sd_mod.ko": []}, ("ata_piix",))


def test_a_dependency_cycle_is_refused():
    with pytest.raises(initramfs.InitramfsError, match="cycle"):
        initramfs.load_order({"kernel/a.ko": ["kernel/b.ko"], "kernel/b.ko": ["kernel/a.ko"]}, ("a",))


@pytest.mark.parametrize("suffix", [".xz", ".gz", ".zst"])
def test_compressed_modules_are_unpacked_on_the_host(tmp_path, suffix):
    original = fetch_kernel().modules_dir / "kernel/drivers/ata/ata_piix.ko"
    compressed = tmp_path / f"ata_piix.ko{suffix}"
    if suffix == ".xz":
        compressed.write_bytes(lzma.compress(original.read_bytes(), format=lzma.FORMAT_XZ))
    elif suffix == ".gz":
        compressed.write_bytes(gzip.compress(original.read_bytes()))
    else:
        subprocess.run(["zstd", "-q", "-o", str(compressed), str(original)], check=True)
    assert initramfs.read_module(compressed) == original.read_bytes()


def test_module_names_drop_directories_and_compression():
    assert initramfs.module_name("kernel/lib/crc64-rocksoft.ko.xz") == "crc64_rocksoft"
    assert initramfs.guest_module_path("kernel/drivers/ata/libata.ko.zst") == "kernel/drivers/ata/libata.ko"


@st.composite
def _dependency_graphs(draw):
    """Acyclic modules.dep contents: module i may depend only on modules numbered below i."""
    count = draw(st.integers(min_value=1, max_value=12))
    paths = [f"kernel/m{index}.ko" for index in range(count)]
    return {
        path: draw(st.lists(st.sampled_from(paths[:index]), unique=True)) if index else []
        for index, path in enumerate(paths)
    }


@given(_dependency_graphs(), st.data())
def test_load_order_loads_exactly_the_closure_with_dependencies_first(dependencies, data):
    roots = tuple(data.draw(st.lists(st.sampled_from(sorted(dependencies)), min_size=1, unique=True)))
    order = initramfs.load_order(dependencies, tuple(initramfs.module_name(root) for root in roots))
    closure, pending = set(), list(roots)
    while pending:
        path = pending.pop()
        if path not in closure:
            closure.add(path)
            pending.extend(dependencies[path])
    assert sorted(order) == sorted(closure)
    for position, path in enumerate(order):
        assert set(dependencies[path]) <= set(order[:position])


# cpio writer, checked against GNU cpio

_member_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12).filter(
    lambda name: name not in (".", "..")
)


@given(st.dictionaries(_member_names, st.binary(max_size=300), min_size=1, max_size=6))
def test_gnu_cpio_unpacks_what_the_writer_packs(files):
    import tempfile

    entries = [cpio_newc.directory("top")]
    entries += [cpio_newc.regular_file(f"top/{name}", data) for name, data in files.items()]
    entries.append(cpio_newc.symlink("link", "top"))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "root"
        archive = cpio_newc.archive(entries)
        assert _cpio_list(archive) == [entry.name for entry in entries]
        _cpio_extract(archive, root)
        for name, data in files.items():
            assert (root / "top" / name).read_bytes() == data
        assert os.readlink(root / "link") == "top"


def test_duplicate_cpio_members_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        cpio_newc.archive([cpio_newc.directory("a"), cpio_newc.directory("a")])


# Kernel download


def test_a_kernel_package_that_cannot_be_downloaded_is_a_clear_error(tmp_path):
    with pytest.raises(KernelFetchError, match="cannot download the Debian kernel linux-image-0.0.0-0-none-amd64"):
        download_package("linux-image-0.0.0-0-none-amd64", tmp_path)


def test_the_kernel_is_the_package_linux_image_amd64_depends_on():
    kernel = fetch_kernel()
    assert kernel.package == f"linux-image-{kernel.release}"
    assert kernel.vmlinuz.is_file()
    assert (kernel.modules_dir / "modules.dep").is_file()
