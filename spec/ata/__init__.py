"""The ATA disk behind a PIIX IDE channel, register by register. Start with spec/ata/README.md."""

from spec.ata.device import AtaChannel
from spec.ata.errors import CannotHappen, InvariantViolation
from spec.ata.invariants import INVARIANTS, broken_invariants, check_invariants
from spec.ata.prd import FlatMemory, GuestMemory
from spec.ata.state import Observation, Phase

__all__ = [
    "INVARIANTS",
    "AtaChannel",
    "CannotHappen",
    "FlatMemory",
    "GuestMemory",
    "InvariantViolation",
    "Observation",
    "Phase",
    "broken_invariants",
    "check_invariants",
]
