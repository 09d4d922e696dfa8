"""Each named invariant holds on a fresh channel and names itself when a state breaks it."""

import pytest

from spec.ata.commands import COMMANDS_BY_CODE
from spec.ata.errors import InvariantViolation
from spec.ata.invariants import INVARIANTS, broken_invariants, check_invariants
from spec.ata.state import ChannelState, Phase, Transfer

READ_SECTORS = COMMANDS_BY_CODE[0x20]


def transfer(**fields) -> Transfer:
    return Transfer(READ_SECTORS, lba=0, count=1, block=bytearray(512), **fields)


CORRUPTIONS = {
    "bsy_excludes_drq": lambda s: setattr(s, "status", 0xD8),
    "bsy_only_while_busy": lambda s: setattr(s, "status", 0xD0),
    "drq_only_in_data_phase": lambda s: setattr(s, "status", 0x58),
    "drdy_unless_resetting": lambda s: setattr(s, "status", 0x10),
    "err_only_when_idle": lambda s: (setattr(s, "status", 0x51), setattr(s.registers, "error", 0)),
    "df_never_set": lambda s: setattr(s, "status", 0x70),
    "intrq_only_when_enabled": lambda s: (setattr(s, "intrq", True), setattr(s, "nien", True)),
    "store_busy_only_when_waiting": lambda s: setattr(s, "store_busy", True),
    "transfer_only_during_command": lambda s: setattr(s, "transfer", transfer()),
    "transfer_within_capacity": lambda s: (setattr(s, "phase", Phase.PIO_IN_TRANSFER), setattr(s, "status", 0x58), setattr(s, "transfer", Transfer(READ_SECTORS, lba=100, count=1, block=bytearray(512)))),
    "position_within_block": lambda s: (setattr(s, "phase", Phase.PIO_IN_TRANSFER), setattr(s, "status", 0x58), setattr(s, "transfer", transfer(position=512))),
    "bus_master_active_only_when_started": lambda s: setattr(s.bus_master, "active", True),
    "prd_pointer_aligned": lambda s: setattr(s.bus_master, "prd_pointer", 0x1002),
    "registers_are_bytes": lambda s: setattr(s.registers, "lba_mid", 0x100),
}


def test_every_invariant_has_a_corruption_here():
    assert set(CORRUPTIONS) == set(INVARIANTS)


def test_a_fresh_channel_satisfies_every_invariant():
    assert broken_invariants(ChannelState(), 64) == []


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_broken_invariant_is_reported_by_name(name):
    state = ChannelState()
    CORRUPTIONS[name](state)
    assert name in broken_invariants(state, 64)
    with pytest.raises(InvariantViolation, match="invariant"):
        check_invariants(state, 64)
