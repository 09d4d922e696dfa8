"""The data path under AddressSanitizer and UndefinedBehaviorSanitizer, driven by the server's tests.

Python itself is not instrumented, so the run is a subprocess with gcc's libasan preloaded and
STORVISOR_DATAPATH_LIB naming the sanitized build (make sanitized); a sanitizer report aborts it.
It runs every other tests/server/test_datapath*.py (answers, overlay map, CRC, batch loop,
lifetime of routes), the fuzz tests, the overlay's recovery tests, the commit's copy and the UDP
transport's MAC table and batch loop (with its Hypothesis bursts).
Deliberately broken callers show the sanitizers are live; a commit copying in its own thread
while writes go on (and make and free map leaves) is checked here too.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from impl.server.datapath import LIBRARY_ENV, build_sanitized
from tests.server.conftest import ROOT

HERE = Path(__file__).resolve().parent
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(os.environ.get(LIBRARY_ENV)), reason="already running on another data path build")]


def sanitized_environment() -> dict[str, str]:
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True).stdout.strip()
    return {
        **os.environ,
        LIBRARY_ENV: str(build_sanitized()),
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # the interpreter's own allocations are not leaks of the data path
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "STORVISOR_HYPOTHESIS": "ci",
    }


ALSO_SANITIZED = ["tests/server/test_fuzz.py", "tests/server/test_overlay.py", "tests/server/test_commit_while_writing.py",
                  "tests/server/test_mac_ownership.py", "tests/server/test_udp_link.py"]


def test_the_server_tests_pass_on_the_sanitized_data_path():
    tests = sorted(str(p.relative_to(ROOT)) for p in HERE.glob("test_datapath*.py") if p.name != Path(__file__).name)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *ALSO_SANITIZED],
        cwd=ROOT,
        env=sanitized_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout and not any(report in output for report in SANITIZER_REPORTS), output[-4000:]


def test_the_sanitizers_catch_a_read_past_a_buffer():
    # A frame shorter than the ATA header it is taken to have: counting it as a request reads the
    # header's 36 bytes; AddressSanitizer must stop the process there.
    code = """
import ctypes
from impl.server.datapath import library
from impl.server.disks import ClientCounters
short = ctypes.cast(ctypes.create_string_buffer(1024), ctypes.POINTER(ctypes.c_char * 1024))  # a malloc block with redzones
frame = ctypes.cast(ctypes.addressof(short.contents) + 1000, ctypes.c_char_p)  # its last 24 bytes
library().dp_saw_request(ClientCounters(), frame)
print("not caught")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=sanitized_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "heap-buffer-overflow" in result.stderr and "dp_saw_request" in result.stderr, result.stderr[-3000:]


def test_the_sanitizers_catch_a_route_to_a_closed_overlay(tmp_path, images):
    # What DiskRegistry.closing prevents: an overlay closed while a route still points at it.
    # The next plain read through that route must be reported as a use after free.
    code = f"""
import pathlib
from impl.server.initiator import ata_body, request_frame
from spec.aoe.constants import AoeCommand
from spec.aoe.target import READ_SECTORS_EXT, WRITE_SECTORS_EXT
from tests.server.conftest import SERVER_MAC, make_target
target = make_target(pathlib.Path({str(tmp_path)!r}), pathlib.Path({str(images)!r}))
client = bytes.fromhex("020000000001")
def ask(body):
    return target.process_frame(request_frame(SERVER_MAC, client, 0, 0, AoeCommand.ATA, 1, body))
ask(ata_body(WRITE_SECTORS_EXT, 0, 1, b"w" * 512, write=True))  # the checked path creates the overlay and registers the route
disk = next(iter(target.disks.disks.values()))
disk.overlay.close()  # bypassing DiskRegistry.forget: the route is not cleared
ask(ata_body(READ_SECTORS_EXT, 0, 1))
print("not caught")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=sanitized_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "heap-use-after-free" in result.stderr and "datapath/answer.c" in result.stderr, result.stderr[-3000:]


def test_commits_while_writes_allocate_read_no_freed_memory(tmp_path):
    # As the control socket runs a commit: it starts in the serving loop (start_commit), the copy
    # runs in a thread of its own while the loop goes on answering writes, which copy their chunk
    # first when the copy has not reached it and make new leaves of the allocation map; the map
    # is emptied (its leaves freed) between passes.
    code = f"""
import pathlib, threading, time
from impl.server.config import TargetConfig
from impl.server.initiator import ata_body, request_frame
from impl.server.operations import Operations
from spec.aoe.constants import AoeCommand
from spec.aoe.target import READ_SECTORS_EXT, WRITE_SECTORS_EXT
from tests.server.conftest import SERVER_MAC, make_target
root = pathlib.Path({str(tmp_path)!r})
(root / "images").mkdir()
sectors = 1 << 17  # four leaves of the allocation map, 64 chunks of a commit
with open(root / "images" / "big.img", "wb") as f:
    f.truncate(sectors * 512)
target = make_target(root, root / "images", targets=[TargetConfig(0, 0, "big", None)], mtu=9000)
ops = Operations(target.catalogue, target.disks, set())
client = bytes.fromhex("020000000001")
data = bytes(17 * 512)
def write(lba):
    target.process_frame(request_frame(SERVER_MAC, client, 0, 0, AoeCommand.ATA, lba, ata_body(WRITE_SECTORS_EXT, lba, 17, data, write=True)))
write(0)  # the checked path creates the overlay; the data path answers the writes below
overlay = next(iter(target.disks.disks.values())).overlay
deadline, commits = time.monotonic() + 5, 0
while time.monotonic() < deadline:
    copy = ops.start_commit("02:00:00:00:00:01", f"copy{{commits}}")  # in the loop, as the control socket runs it
    thread = threading.Thread(target=copy)
    thread.start()
    for lba in range(0, sectors - 17, 17 * 61):
        write(lba)
    thread.join()
    commits += 1
    overlay.reset()  # storvisor reset: the next pass makes the map's leaves again
print("no sanitizer report", commits)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=sanitized_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "no sanitizer report" in result.stdout, result.stderr[-3000:]
    assert not any(report in result.stderr for report in SANITIZER_REPORTS), result.stderr[-3000:]
