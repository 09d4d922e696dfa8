"""Bad input to the VMM (its command line, too little memory) gets a clear message on COM1 and a
clean stop (ACPI power-off)."""

from __future__ import annotations

import pytest

from impl.testbed.qemu import run_machine

pytestmark = pytest.mark.qemu

STOP_TIMEOUT_S = 30


@pytest.mark.parametrize(
    ("cmdline", "message"),
    [
        ("bogus=1", "command line: unknown option 'bogus=1' (known: log=, status=, stats=, pio=, pio_blocks=)"),
        ("log=loud", "command line: bad value 'loud' for option 'log' (expected error, warn, info, debug or trace)"),
        ("log=info status", "command line: option 'status' needs a value (forwarded or served)"),
        ("stats=on log=", "command line: bad value '' for option 'log'"),
        ("pio=sometimes", "command line: bad value 'sometimes' for option 'pio' (expected direct or intercepted)"),
        ("pio_blocks=16", "command line: bad value '16' for option 'pio_blocks' (expected multiple or single)"),
    ],
)
def test_bad_command_line_stops_cleanly_with_a_message(vmm_image, probe_disk, cmdline, message):
    run = run_machine(probe_disk(["e820"]), vmm=vmm_image, vmm_cmdline=cmdline, timeout_s=STOP_TIMEOUT_S)
    assert not run.timed_out, run.serial
    assert run.exit_code == 0, run.qemu_stderr
    assert f"storvisor: error: {message}" in run.serial
    assert "storvisor: stop: bad command line" in run.serial
    assert "probe: start" not in run.serial, "the guest must not run after a bad command line"


def test_good_command_line_is_accepted_and_sets_the_log_level(vmm_image, probe_disk):
    run = run_machine(
        probe_disk(["power-off"]), vmm=vmm_image, vmm_cmdline="log=debug status=served stats=off pio_blocks=single",
        timeout_s=STOP_TIMEOUT_S,
    )
    assert run.exit_code == 0 and not run.timed_out, run.serial
    assert "status=served stats=off pio=direct pio_blocks=single" in run.serial
    assert "storvisor: debug: ata: command 20 READ SECTORS lba 0 count 1" in run.serial
    assert "storvisor-stats begin" not in run.serial


def test_quiet_log_level_keeps_info_lines_off_the_console(vmm_image, probe_disk):
    run = run_machine(probe_disk(["power-off"]), vmm=vmm_image, vmm_cmdline="log=error", timeout_s=STOP_TIMEOUT_S)
    assert run.exit_code == 0 and not run.timed_out, run.serial
    assert "storvisor: info:" not in run.serial.split("probe: start")[-1]
    assert "probe: power-off" in run.serial


def test_too_little_memory_for_the_window_stops_cleanly_with_a_message(vmm_image, probe_disk):
    run = run_machine(probe_disk(["e820"]), vmm=vmm_image, memory_mb=130, timeout_s=STOP_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial
    assert "storvisor: stop: memory 8000000-8400000 is not RAM: the machine needs more than 132 MiB of RAM" in run.serial
    assert "probe: start" not in run.serial
