"""The QEMU launcher: the machine it builds, what it captures, how it stops, how it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from impl.testbed.qemu import CPU_MODEL, MachineError, qemu_command, run_machine

HELLO_LINE = "storvisor-serial-hello"
# serial_hello.asm writes 0x10 to isa-debug-exit; QEMU exits with (0x10 << 1) | 1.
DEBUG_EXIT_STATUS = (0x10 << 1) | 1
DEBUG_EXIT_DEVICE = ("-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")


def _qemu_processes_using(path: Path) -> list[int]:
    """Ids of live processes whose command line mentions `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_command_is_the_agreed_machine():
    argv = qemu_command(Path("disk.img"), serial_log=Path("com1.log"))
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-machine") + 1] == "pc"
    assert argv[argv.index("-cpu") + 1] == CPU_MODEL == "qemu64,+svm,+npt"
    assert argv[argv.index("-drive") + 1] == "file=disk.img,format=raw,if=ide,index=0"
    assert argv[argv.index("-display") + 1] == "none"
    assert argv[argv.index("-m") + 1] == "256"
    assert "-no-reboot" in argv
    assert "-kernel" not in argv and "-append" not in argv


def test_command_loads_the_vmm_as_multiboot_kernel_with_its_command_line():
    argv = qemu_command(Path("disk.img"), vmm=Path("vmm.elf"), vmm_cmdline="log=serial fill=on", memory_mb=512)
    assert argv[argv.index("-kernel") + 1] == "vmm.elf"
    assert argv[argv.index("-append") + 1] == "log=serial fill=on"
    assert argv[argv.index("-m") + 1] == "512"


def test_command_appends_extra_args_last():
    extra = ("-netdev", "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=1", "-device", "e1000,netdev=n0")
    argv = qemu_command(Path("disk.img"), extra_args=extra)
    assert tuple(argv[-len(extra):]) == extra


def test_command_escapes_commas_in_paths():
    argv = qemu_command(Path("a,b.img"), serial_log=Path("c,d.log"))
    assert argv[argv.index("-drive") + 1].startswith("file=a,,b.img,format=raw")
    assert argv[argv.index("-chardev") + 1] == "file,id=com1,path=c,,d.log"


def test_command_refuses_a_vmm_command_line_without_a_vmm():
    with pytest.raises(MachineError, match="vmm_cmdline"):
        qemu_command(Path("disk.img"), vmm_cmdline="fill=on")


def test_missing_disk_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-disk.img"
    with pytest.raises(MachineError, match=f"disk image {missing} does not exist"):
        run_machine(missing)


def test_missing_vmm_is_a_clear_error(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 512)
    missing = tmp_path / "no-such-vmm.elf"
    with pytest.raises(MachineError, match=f"VMM image {missing} does not exist"):
        run_machine(disk, vmm=missing)


@pytest.mark.parametrize("settings", [{"timeout_s": 0}, {"timeout_s": -1.5}, {"memory_mb": 0}])
def test_impossible_settings_are_a_clear_error(tmp_path, settings):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 512)
    with pytest.raises(MachineError, match=f"{next(iter(settings))} must be positive"):
        run_machine(disk, **settings)


@pytest.mark.qemu
def test_serial_is_captured_and_a_guest_reset_ends_the_run(boot_sector_disk):
    run = run_machine(boot_sector_disk("serial_hello"), timeout_s=30)
    assert not run.timed_out
    assert run.exit_code == 0, run.qemu_stderr
    assert HELLO_LINE in run.serial.splitlines()[0]
    assert 0 < run.wall_seconds < 30


@pytest.mark.qemu
def test_extra_args_reach_qemu_and_its_exit_status_is_reported(boot_sector_disk):
    run = run_machine(boot_sector_disk("serial_hello"), timeout_s=30, extra_args=DEBUG_EXIT_DEVICE)
    assert not run.timed_out
    assert run.exit_code == DEBUG_EXIT_STATUS, run.qemu_stderr
    assert HELLO_LINE in run.serial


@pytest.mark.qemu
def test_serial_goes_live_to_the_terminal_when_asked(boot_sector_disk, capsys):
    run = run_machine(boot_sector_disk("serial_hello"), timeout_s=30, serial_to_terminal=True)
    assert HELLO_LINE in run.serial
    assert HELLO_LINE in capsys.readouterr().out


@pytest.mark.qemu
def test_timeout_stops_a_hung_machine(boot_sector_disk):
    disk = boot_sector_disk("serial_hello", "HANG")
    run = run_machine(disk, timeout_s=2)
    assert run.timed_out
    assert run.exit_code is None
    assert 2 <= run.wall_seconds < 2 + 5
    assert run.serial == ""
    assert _qemu_processes_using(disk) == []
