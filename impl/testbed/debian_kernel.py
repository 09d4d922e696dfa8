"""An unmodified Debian kernel for the test guest: downloaded, unpacked, never installed.

Debian's `linux-image-amd64` depends on one versioned package, `linux-image-<release>`; that
package is fetched with `apt-get download` into a cache under `build/`, unpacked with
`dpkg-deb -x`, and given a `modules.dep` by `depmod -b` (the package ships none: its
postinst runs depmod on an installed system). A second call reuses the cache.

    python -m impl.testbed.debian_kernel     # fetch and unpack; prints the kernel's paths
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPOSITORY_ROOT / "build" / "testbed" / "kernel"
META_PACKAGE = "linux-image-amd64"
UNPACKED_STAMP = ".unpacked"


class KernelFetchError(Exception):
    """The Debian kernel package cannot be resolved, downloaded or unpacked."""


@dataclass(frozen=True)
class DebianKernel:
    """One unpacked `linux-image-<release>` package."""

    package: str  # e.g. linux-image-6.1.0-56-amd64
    version: str  # the Debian package version, e.g. 6.1.192-2
    release: str  # the kernel's `uname -r`, e.g. 6.1.0-56-amd64
    deb_sha256: str
    root: Path  # the unpacked package tree

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a packaging tool; turn any failure into a KernelFetchError that says what failed."""
    if shutil.which(argv[0]) is None:
        raise KernelFetchError(f"{what}: `{argv[0]}` is not installed; run `make setup`")
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise KernelFetchError(f"{what}: `{' '.join(argv)}` failed:\n{result.stderr.strip()}")
    return result.stdout


def resolve_image_package() -> str:
    """The versioned image package that `linux-image-amd64` currently depends on."""
    depends = _run(["apt-cache", "depends", META_PACKAGE], f"cannot resolve {META_PACKAGE}")
    match = re.search(r"^\s*Depends:\s*(linux-image-\S+-amd64)\s*$", depends, re.MULTILINE)
    if match is None:
        raise KernelFetchError(
            f"{META_PACKAGE} depends on no linux-image-<release>-amd64 package; is `apt-get update` done?\n{depends}"
        )
    return match.group(1)


def _package_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field], f"cannot read {deb.name}").strip()


def download_package(package: str, cache_dir: Path = CACHE_DIR) -> Path:
    """The package's .deb in the cache, downloaded when no version of it is there yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = sorted(cache_dir.glob(f"{package}_*_amd64.deb"))
    if cached:
        return cached[-1]
    _run(["apt-get", "download", "-q", package], f"cannot download the Debian kernel {package}", cwd=cache_dir)
    cached = sorted(cache_dir.glob(f"{package}_*_amd64.deb"))
    if not cached:
        raise KernelFetchError(f"apt-get download {package} reported success but left no .deb in {cache_dir}")
    return cached[-1]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(deb: Path) -> DebianKernel:
    """Unpack `deb` beside itself (once) and generate its modules.dep."""
    package = _package_field(deb, "Package")
    version = _package_field(deb, "Version")
    root = deb.parent / f"{package}_{version}"
    if not (root / UNPACKED_STAMP).is_file():
        shutil.rmtree(root, ignore_errors=True)
        # A private staging folder, renamed into place when complete: concurrent unpacks cannot mix.
        staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", suffix=".partial", dir=deb.parent))
        staging.chmod(0o755)
        _run(["dpkg-deb", "-x", str(deb), str(staging)], f"cannot unpack {deb.name}")
        release = _single_release(staging)
        # depmod -b reads <base>/lib/modules/<release> and writes modules.dep there; no root needed.
        _run(["depmod", "-b", str(staging), release], f"depmod failed on {deb.name}")
        (staging / UNPACKED_STAMP).write_text(_sha256_file(deb) + "\n")
        try:
            staging.rename(root)
        except OSError:
            # Another unpack of the same package finished first.
            shutil.rmtree(staging)
    return DebianKernel(
        package=package,
        version=version,
        release=_single_release(root),
        deb_sha256=(root / UNPACKED_STAMP).read_text().strip(),
        root=root,
    )


def _single_release(root: Path) -> str:
    releases = [entry.name for entry in (root / "lib" / "modules").iterdir() if entry.is_dir()]
    if len(releases) != 1:
        raise KernelFetchError(f"expected one kernel release under {root}/lib/modules, found {releases}")
    return releases[0]


def fetch_kernel(cache_dir: Path = CACHE_DIR) -> DebianKernel:
    """The Debian kernel that `linux-image-amd64` points at, unpacked in the cache."""
    kernel = unpack(download_package(resolve_image_package(), cache_dir))
    if not kernel.vmlinuz.is_file():
        raise KernelFetchError(f"{kernel.package} {kernel.version} contains no {kernel.vmlinuz.name}")
    return kernel


def main() -> int:
    try:
        kernel = fetch_kernel()
    except KernelFetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{kernel.package} {kernel.version} (uname -r {kernel.release})")
    print(f"kernel:  {kernel.vmlinuz}")
    print(f"modules: {kernel.modules_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
