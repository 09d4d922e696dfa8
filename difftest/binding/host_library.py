"""Build and load the C core's storage and AoE parts as a host shared library.

The same sources the VMM links (impl/vmm/core/core.mk) are compiled for the host with -fPIC; with
`sanitize=True` they are instrumented with AddressSanitizer and UndefinedBehaviorSanitizer, and any
report aborts the process (the caller runs that variant in a subprocess with libasan preloaded).
"""

import ctypes
import functools
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "impl" / "vmm" / "core"
PARTS = ("aoe", "storage")
BUILD = ROOT / "build" / "core-host"
CFLAGS = ["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fno-strict-aliasing"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZE_VARIABLE = "STORVISOR_CORE_SANITIZE"  # set to 1 in a process whose libasan is preloaded


def sources() -> list[Path]:
    return sorted(p for part in PARTS if (CORE / part).is_dir() for p in (CORE / part).glob("*.[ch]"))


def include_flags() -> list[str]:
    folders = [CORE / part for part in PARTS] + [CORE / "include"]
    return [f"-I{folder}" for folder in folders if folder.is_dir()]


def build_library(sanitize: bool = False) -> Path:
    """The shared library, rebuilt when a source is newer than it."""
    target = BUILD / ("libcore_storage_asan.so" if sanitize else "libcore_storage.so")
    files = sources()
    if target.exists() and all(f.stat().st_mtime <= target.stat().st_mtime for f in files):
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    command = ["gcc", *CFLAGS, *(SANITIZE if sanitize else []), *include_flags()]
    command += [str(f) for f in files if f.suffix == ".c"]
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run([*command, "-o", str(temporary)], check=True)
    temporary.replace(target)
    return target


def asan_runtime() -> str:
    """The path of gcc's libasan, which must be preloaded before a sanitized library is loaded."""
    return subprocess.run(["gcc", "-print-file-name=libasan.so"], check=True, capture_output=True, text=True).stdout.strip()


@functools.cache
def load_core_library() -> ctypes.CDLL:
    """Built and loaded once per process: a rebuild while tests run must not change the code under test."""
    return ctypes.CDLL(str(build_library(sanitize=os.environ.get(SANITIZE_VARIABLE) == "1")))
