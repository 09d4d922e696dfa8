"""The C ATA device is built from the spec's tables and compiles for the VMM without libc."""

import ctypes
import re
import subprocess
from pathlib import Path

from difftest.binding import CORE_DIR, load_core
from difftest.binding.ata import CChannelState, declare
from impl.vmm.core.ata import gen_ata_constants
from spec.ata.commands import COMMANDS
from spec.ata.state import Phase

VMM_MAKEFILE = CORE_DIR.parent / "Makefile"


def test_committed_constants_header_equals_generator_output():
    assert gen_ata_constants.HEADER_PATH.read_text() == gen_ata_constants.render(), (
        "impl/vmm/core/ata/ata_constants.h is stale: run python -m impl.vmm.core.ata.gen_ata_constants"
    )


def test_check_mode_reports_a_stale_constants_header(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "ata_constants.h"
    stale.write_text(gen_ata_constants.render().replace("0x80", "0x81", 1))
    monkeypatch.setattr(gen_ata_constants, "HEADER_PATH", stale)
    assert gen_ata_constants.main(["--check"]) == 1
    assert "regenerate" in capsys.readouterr().err


def test_the_c_phases_are_the_spec_phases_in_order():
    header = gen_ata_constants.HEADER_PATH.read_text()
    names = re.search(r"ata_phase_names\[ATA_PHASE_COUNT\] = \{(.*?)\};", header, re.S).group(1)
    assert re.findall(r'"([^"]+)"', names) == [p.value for p in Phase]


def test_every_command_of_the_table_has_a_c_handler_and_nothing_else_does():
    core = declare(load_core())
    codes = {c.code for c in COMMANDS}
    for code in range(256):
        assert bool(core.ata_handler_for(code)) == (code in codes), f"command {code:#04x}"


def test_the_binding_mirrors_the_c_state_layout():
    assert load_core().ata_channel_state_size() == ctypes.sizeof(CChannelState)


def test_the_core_is_compiled_with_the_vmm_flags():
    def flags(makefile: Path, variable: str) -> list[str]:
        text = makefile.read_text().replace("\\\n", " ")
        return re.search(rf"^{variable} :=(.*)$", text, re.M).group(1).split()

    assert flags(CORE_DIR / "Makefile", "VMM_CFLAGS") == flags(VMM_MAKEFILE, "CFLAGS")


def test_the_freestanding_core_calls_no_library(tmp_path):
    result = subprocess.run(
        ["make", "-s", "-C", str(CORE_DIR), f"BUILD={tmp_path}", "check-freestanding"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_mk_lists_every_core_source():
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "-", "show"],
        input=f"CORE_DIR := {CORE_DIR}\ninclude {CORE_DIR}/core.mk\nshow:\n\t@echo $(CORE_SOURCES)\n",
        capture_output=True,
        text=True,
    )
    listed = {Path(p).resolve() for p in result.stdout.split()}
    on_disk = {p.resolve() for part in ("ata", "storage", "aoe") for p in (CORE_DIR / part).glob("*.c")}
    assert listed == on_disk and listed
