"""The C core under AddressSanitizer and UndefinedBehaviorSanitizer, driven by the ATA difftests.

Python itself is not instrumented, so each run is a subprocess with gcc's libasan preloaded and
STORVISOR_CORE_LIB pointing at the sanitized build; a sanitizer report aborts that process.
A deliberately broken caller shows the sanitizers are live, not just linked.
"""

import os
import subprocess
import sys

import pytest

from difftest.binding import LIBRARY_ENV, REPOSITORY, build_library
from difftest.test_ata_stateful import WRITE_CORPUS_ENV

pytestmark = pytest.mark.slow


def sanitized_environment(tmp_path) -> dict[str, str]:
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True).stdout.strip()
    return {
        **os.environ,
        LIBRARY_ENV: str(build_library("sanitized", tmp_path / "build")),
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # the interpreter's own allocations are not leaks of the core
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        WRITE_CORPUS_ENV: "0",
        "STORVISOR_HYPOTHESIS": "ci",
    }


def run_python(code: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600)


def test_the_difftests_pass_on_the_sanitized_core(tmp_path):
    environment = sanitized_environment(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "difftest/test_ata_corpus.py", "difftest/test_ata_stateful.py"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout


def test_the_sanitizers_catch_a_buffer_overrun(tmp_path):
    # A caller that lies about its transfer buffer: 1 KiB said to be 1 MiB; a WRITE DMA of four
    # sectors then clears 2 KiB of it. AddressSanitizer must stop the process at that write.
    code = """
import ctypes
from difftest.binding.ata import CAtaChannel
from spec.ata.backing_store import MemoryStore
from spec.ata.prd import FlatMemory
c = CAtaChannel(MemoryStore(64), FlatMemory(4096))
small = ctypes.create_string_buffer(1024)  # above pymalloc's 512-byte limit: a malloc block with redzones
c._small = small
c.core.ata_channel_init(c._channel, c._store.struct, c._memory.struct, 0x1F0, 0x3F6, 0xC040, small, 1 << 20)
for port, value in ((0x1F6, 0xE0), (0x1F2, 4), (0x1F3, 0), (0x1F7, 0xCA)):
    c.write(port, 1, value)
c.tick()
print("not caught")
"""
    result = run_python(code, sanitized_environment(tmp_path))
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "heap-buffer-overflow" in result.stderr, result.stderr[-3000:]
