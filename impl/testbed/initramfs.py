"""The test guest's initramfs: busybox-static, the IDE driver modules of the Debian kernel, `init.sh`.

The modules are ata_piix and sd_mod with everything modules.dep says they need (libata,
scsi_mod, …), loaded dependencies first. Compressed modules (.ko.xz, .ko.gz, .ko.zst) are
decompressed on the host, so the guest's busybox insmod only ever sees plain ELF objects.
The archive is gzip-compressed and reproducible: the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
import subprocess
from pathlib import Path

from impl.testbed import cpio_newc, guest_report
from impl.testbed.debian_kernel import DebianKernel

BUSYBOX = Path("/bin/busybox")  # from busybox-static: a static binary needs no libraries in the guest
INIT_TEMPLATE = Path(__file__).with_name("init.sh")
PROLOGUE = Path(__file__).with_name("guest_prologue.sh")  # what every test guest's init starts with
# ata_piix drives QEMU's PIIX3 IDE function; sd_mod gives /dev/sda and its partitions.
ROOT_MODULES = ("ata_piix", "sd_mod")
DATA_DEVICE_WAIT_TENTHS = 300
# The directories busybox --install -s fills with applet links, and the mount points init uses.
GUEST_DIRECTORIES = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")


class InitramfsError(Exception):
    """The initramfs cannot be built from these inputs."""


def module_name(path: str) -> str:
    """kernel/drivers/ata/ata_piix.ko.xz -> ata_piix (modprobe treats '-' and '_' alike)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep as {module path: [dependency paths]} (format: depmod(8), modules.dep(5))."""
    dependencies: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        module, separator, needs = line.partition(":")
        if not separator:
            raise InitramfsError(f"modules.dep line {number} has no ':': {line!r}")
        dependencies[module.strip()] = needs.split()
    return dependencies


def load_order(dependencies: dict[str, list[str]], roots: tuple[str, ...]) -> list[str]:
    """Module paths to insmod so that each comes after everything it depends on."""
    by_name = {module_name(path): path for path in dependencies}
    missing = [name for name in roots if name not in by_name]
    if missing:
        raise InitramfsError(f"modules.dep lists no module named {', '.join(missing)}")
    order: list[str] = []
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in order:
            return
        if path in visiting:
            raise InitramfsError(f"modules.dep has a dependency cycle through {path}")
        if path not in dependencies:
            raise InitramfsError(f"modules.dep names {path} as a dependency but has no entry for it")
        visiting.add(path)
        for needed in dependencies[path]:
            visit(needed)
        visiting.discard(path)
        order.append(path)

    for name in roots:
        visit(by_name[name])
    return order


def read_module(path: Path) -> bytes:
    """A module's ELF object, decompressed if the package ships it compressed."""
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zst":
        if shutil.which("zstd") is None:
            raise InitramfsError(f"{path.name} is zstd-compressed and the zstd tool is not installed")
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def guest_module_path(path: str) -> str:
    """Where a module lives in the guest: its path under lib/modules, without compression suffix."""
    return path.split(".ko")[0] + ".ko"


FIELD = re.compile(r"@[A-Z_]+@")


def render_template(template: Path, modules: list[str], fields: dict[str, str]) -> str:
    """An init template with the shared prologue in place and every @NAME@ field filled in."""
    script = template.read_text().replace("@PROLOGUE@", PROLOGUE.read_text().rstrip("\n"))
    for field, value in {"@MODULES@": " ".join(guest_module_path(path) for path in modules), **fields}.items():
        script = script.replace(field, value)
    unfilled = FIELD.search(script)
    if unfilled:
        raise InitramfsError(f"{template.name} has a field its builder does not fill in: {unfilled.group()}")
    return script


def render_init(modules: list[str], data_device: str) -> str:
    """init.sh with its @NAME@ fields filled in."""
    return render_template(
        INIT_TEMPLATE,
        modules,
        {
            "@DATA_DEVICE@": data_device,
            "@WAIT_TENTHS@": str(DATA_DEVICE_WAIT_TENTHS),
            "@CHECKSUM_TAG@": guest_report.CHECKSUM_TAG,
            "@ERROR_TAG@": guest_report.ERROR_TAG,
            "@ATA_TAG@": guest_report.ATA_DEVICE_TAG,
        },
    )


def guest_modules(kernel: DebianKernel, roots: tuple[str, ...]) -> list[str]:
    """The modules a guest must load for `roots`, dependencies first, from the kernel's modules.dep."""
    modules_dep = kernel.modules_dir / "modules.dep"
    if not modules_dep.is_file():
        raise InitramfsError(f"{modules_dep} is missing; the kernel was not unpacked by debian_kernel.py")
    return load_order(parse_modules_dep(modules_dep.read_text()), roots)


def pack_initramfs(kernel: DebianKernel, modules: list[str], init: str) -> bytes:
    """The gzip-compressed newc archive: busybox, the console node, `init`, and the modules."""
    if not BUSYBOX.is_file():
        raise InitramfsError(f"{BUSYBOX} is missing; run `make setup` (Debian package busybox-static)")
    entries = [cpio_newc.directory(name) for name in GUEST_DIRECTORIES]
    # The kernel opens /dev/console for init's stdin/stdout before devtmpfs is mounted.
    entries.append(cpio_newc.char_device("dev/console", 5, 1))
    entries.append(cpio_newc.regular_file("bin/busybox", BUSYBOX.read_bytes(), executable=True))
    entries.append(cpio_newc.regular_file("init", init.encode(), executable=True))
    module_files = [f"lib/modules/{guest_module_path(path)}" for path in modules]
    module_directories = {str(parent) for name in module_files for parent in Path(name).parents}
    for name in sorted(module_directories - {".", *GUEST_DIRECTORIES}):
        entries.append(cpio_newc.directory(name))
    for path, name in zip(modules, module_files):
        entries.append(cpio_newc.regular_file(name, read_module(kernel.modules_dir / path)))
    return gzip.compress(cpio_newc.archive(entries), compresslevel=6, mtime=0)


def build_initramfs(kernel: DebianKernel, data_device: str) -> bytes:
    """The Linux test disk's initramfs: the IDE driver stack and init.sh."""
    modules = guest_modules(kernel, ROOT_MODULES)
    return pack_initramfs(kernel, modules, render_init(modules, data_device))
