"""Generates ata_constants.h, the C view of spec/ata/constants.py and of the spec's protocol phases.

The spec is the one source of truth for every number the device uses; the header is committed so
the VMM builds without Python, and difftest/test_ata_generated.py checks it equals this output.
Run from the repository root: python -m impl.vmm.core.ata.gen_ata_constants [--check]
"""

import sys
from enum import IntEnum
from pathlib import Path

from spec.ata import constants, identify
from impl.vmm.tools.generated_header import c_identifier, write_or_check
from spec.ata.state import Phase, PowerMode

HEADER_PATH = Path(__file__).resolve().parent / "ata_constants.h"


def integer_constants(module=constants) -> list[tuple[str, int]]:
    """Every module-level integer of a spec module, in definition order."""
    return [
        (name, value)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
    ]


def identify_constants() -> list[str]:
    """The words and strings of spec/ata/identify.py that are not already spec/ata/constants.py's."""
    shared = set(vars(constants))
    numbers = [f"#define ATA_{n} 0x{v:X}" for n, v in integer_constants(identify) if n not in shared]
    strings = [f'#define ATA_{n} "{v}"' for n, v in vars(identify).items() if n.isupper() and isinstance(v, str)]
    return numbers + strings


def enum_constants() -> list[tuple[str, int]]:
    """The register offsets of the spec's IntEnums, as ATA_<ENUM>_<MEMBER>."""
    enums = [v for v in vars(constants).values() if isinstance(v, type) and issubclass(v, IntEnum) and v is not IntEnum]
    return [(f"{c_identifier(e.__name__)}_{m.name}", int(m)) for e in enums for m in e]


def render() -> str:
    """The header's full text."""
    lines = [
        "/* GENERATED from spec/ata/constants.py, identify.py and state.py by",
        " * impl/vmm/core/ata/gen_ata_constants.py: do not edit. The comments beside each",
        " * value, with their manual sections, are in those files. */",
        "#ifndef STORVISOR_ATA_CONSTANTS_H",
        "#define STORVISOR_ATA_CONSTANTS_H",
        "",
    ]
    lines += [f"#define ATA_{name} 0x{value:X}" for name, value in integer_constants()]
    lines += [""]
    lines += [f"#define ATA_{name} 0x{value:X}" for name, value in enum_constants()]
    lines += ["", "/* IDENTIFY DEVICE (spec/ata/identify.py). */"]
    lines += identify_constants()
    lines += ["", "/* The protocol phases of spec/ata/state.py, Phase, in the spec's order. */", "enum ata_protocol_phase {"]
    lines += [f"    ATA_{c_identifier(p.value)}," for p in Phase]
    lines += ["};", "", f"#define ATA_PHASE_COUNT {len(Phase)}", ""]
    lines += ["/* The power modes of spec/ata/state.py, PowerMode, in the spec's order. */", "enum ata_power_mode {"]
    lines += [f"    ATA_POWER_{c_identifier(m.value)}," for m in PowerMode]
    lines += ["};", ""]
    lines += ["static const char *const ata_phase_names[ATA_PHASE_COUNT] = {"]
    lines += [f'    "{p.value}",' for p in Phase]
    lines += ["};", "", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return write_or_check(HEADER_PATH, render(), "spec/ata", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
