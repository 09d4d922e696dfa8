"""Generates ata/ata_commands.h, the C view of the ATA command table in spec/ata/commands.py.

The spec's table is the one source of truth; the header is committed so the VMM builds
without Python, and tests/vmm checks that the committed header equals this output.
Run from the repository root: python -m impl.vmm.tools.gen_ata_commands [--check]
"""

import sys
from pathlib import Path

from impl.vmm.tools.generated_header import c_identifier, write_or_check
from spec.ata.commands import COMMANDS, WRITE_COMMANDS, Addressing, Protocol

HEADER_PATH = Path(__file__).resolve().parents[1] / "ata" / "ata_commands.h"


def render() -> str:
    """The header's full text."""
    lines = [
        "/* GENERATED from spec/ata/commands.py by impl/vmm/tools/gen_ata_commands.py: do not edit. */",
        "#ifndef STORVISOR_ATA_COMMANDS_H",
        "#define STORVISOR_ATA_COMMANDS_H",
        "",
        "#include <stdbool.h>",
        "#include <stdint.h>",
        "",
        "/* The protocol classes of ATA/ATAPI-7 V2 §11. */",
        "enum ata_protocol {",
    ]
    lines += [f"    ATA_PROTOCOL_{c_identifier(p.value)}," for p in Protocol]
    lines += ["};", "", "/* How a command names sectors. */", "enum ata_addressing {"]
    lines += [f"    ATA_ADDRESSING_{c_identifier(a.value)}," for a in Addressing]
    lines += [
        "};",
        "",
        "struct ata_command {",
        "    uint8_t code;",
        "    const char *name; /* the standard's name */",
        "    enum ata_protocol protocol;",
        "    enum ata_addressing addressing;",
        "    bool multiple; /* DRQ blocks are the SET MULTIPLE MODE size */",
        "    bool writes; /* data flows from host to device (WRITE_COMMANDS) */",
        "};",
        "",
    ]
    lines += [f"#define ATA_CMD_{c_identifier(c.name)} 0x{c.code:02X}" for c in COMMANDS]
    lines += ["", f"#define ATA_COMMAND_COUNT {len(COMMANDS)}", ""]
    lines += ["static const struct ata_command ata_commands[ATA_COMMAND_COUNT] = {"]
    for c in COMMANDS:
        lines.append(
            f'    {{ ATA_CMD_{c_identifier(c.name)}, "{c.name}", ATA_PROTOCOL_{c_identifier(c.protocol.value)}, '
            f"ATA_ADDRESSING_{c_identifier(c.addressing.value)}, {'true' if c.multiple else 'false'}, "
            f"{'true' if c.code in WRITE_COMMANDS else 'false'} }},"
        )
    lines += ["};", "", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return write_or_check(HEADER_PATH, render(), "spec/ata/commands.py", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
