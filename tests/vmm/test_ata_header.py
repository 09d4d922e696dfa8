"""The C command table is generated from spec/ata/commands.py, and the committed copy is current."""

from impl.vmm.tools import gen_ata_commands
from spec.ata.commands import COMMANDS


def test_committed_header_equals_generator_output():
    committed = gen_ata_commands.HEADER_PATH.read_text()
    assert committed == gen_ata_commands.render(), (
        "impl/vmm/ata/ata_commands.h is stale: run python -m impl.vmm.tools.gen_ata_commands"
    )


def test_header_lists_every_command_of_the_spec_once():
    text = gen_ata_commands.render()
    for command in COMMANDS:
        assert text.count(f'"{command.name}"') == 1, command.name
    assert f"#define ATA_COMMAND_COUNT {len(COMMANDS)}" in text


def test_write_commands_are_marked_as_writes():
    text = gen_ata_commands.render()
    assert '{ ATA_CMD_WRITE_DMA, "WRITE DMA", ATA_PROTOCOL_DMA, ATA_ADDRESSING_LBA28, false, true },' in text
    assert '{ ATA_CMD_READ_DMA, "READ DMA", ATA_PROTOCOL_DMA, ATA_ADDRESSING_LBA28, false, false },' in text


def test_check_mode_reports_a_stale_header(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "ata_commands.h"
    stale.write_text(gen_ata_commands.render().replace("READ DMA", "READ DMB", 1))
    monkeypatch.setattr(gen_ata_commands, "HEADER_PATH", stale)
    assert gen_ata_commands.main(["--check"]) == 1
    assert "regenerate" in capsys.readouterr().err
