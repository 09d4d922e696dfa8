"""The C storage manager and AoE initiator under AddressSanitizer and UndefinedBehaviorSanitizer.

As for the ATA device (test_ata_sanitizers.py): a subprocess with gcc's libasan preloaded and
STORVISOR_CORE_LIB pointing at the sanitized build runs the AoE difftest and the storage difftest's
fixed sequences; a sanitizer report aborts it. A caller that lies about a buffer shows they are live.
"""

import subprocess
import sys

import pytest

from difftest.binding import REPOSITORY
from difftest.test_ata_sanitizers import run_python, sanitized_environment

pytestmark = pytest.mark.slow


def test_the_storage_and_aoe_difftests_pass_on_the_sanitized_core(tmp_path):
    tests = ["difftest/test_aoe_initiator.py", "difftest/test_storage_manager.py::test_every_policy_serves_reads_writes_and_flushes_as_the_spec"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=REPOSITORY,
        env=sanitized_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout


def test_the_sanitizers_catch_a_read_past_a_short_buffer(tmp_path):
    # The initiator trusts the caller's buffer size: a 1 KiB buffer given for a read of 4 sectors is
    # overrun when the answer arrives, and AddressSanitizer must stop the process there.
    code = """
import ctypes
from difftest.binding.aoe import CoreAoeInitiator
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.initiator import InitiatorConfig
from spec.aoe.target import AoeTarget, Port, TargetConfig
mac, target_mac = bytes.fromhex("020000000001"), bytes.fromhex("0200000000aa")
core = CoreAoeInitiator(InitiatorConfig(mac, 5, 1, mtu=9000))
target = AoeTarget(TargetConfig(5, 1), MemoryDurableStore(16))
small = ctypes.create_string_buffer(1024)
def exchange():
    core.tick(0)
    for frame in core.take_outgoing():
        for answer in target.process_frame(frame, Port(target_mac, 9000)):
            core.receive(answer, 0)
exchange()
core.lib.aoe_submit_read(core.state, 0, 4, small)
exchange()
print("not caught")
"""
    result = run_python(code, sanitized_environment(tmp_path))
    assert result.returncode != 0 and "not caught" not in result.stdout
    assert "heap-buffer-overflow" in result.stderr, result.stderr[-3000:]
