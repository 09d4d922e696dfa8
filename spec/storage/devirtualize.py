"""De-virtualization: when the VMM may stop intercepting the disk, and how.

The predicate (`is_devirtualizable`) is the invariant
`devirtualize_only_when_quiescent` seen from the storage manager: every block
is present, the persisted map says so durably, and nothing is in flight. The
storage manager answers it; the VMM asks only between two guest commands,
when the virtual device is neither busy nor transferring data.

The sequence below then makes the physical device look to the guest exactly
as the virtual one did, and only then stops interception. The storage part of
it (steps 1-2) is done by the manager before the predicate holds; steps 3-6
are the VMM shell's, on the physical channel.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from spec.storage.block_state import BlockState
from spec.storage.parameters import BlockIndex


@dataclass(frozen=True)
class DevirtualizeStep:
    name: str
    why: str


DEVIRTUALIZE_SEQUENCE: tuple[DevirtualizeStep, ...] = (
    DevirtualizeStep("fill every block", "after interception stops no sector can come from the server"),
    DevirtualizeStep(
        "commit the complete map",
        "flush, write the map marking every block present, flush: a restart finds the install complete",
    ),
    DevirtualizeStep(
        "set max address to the guest's capacity",
        "SET MAX ADDRESS (ATA/ATAPI-7 V1 §6.49, volatile) hides the reserved region, so the physical IDENTIFY "
        "reports the capacity the virtual one did and the guest can never overwrite the map",
    ),
    DevirtualizeStep(
        "replay the guest's device settings",
        "SET MULTIPLE MODE and SET FEATURES (transfer mode, write cache) with the values the guest gave the "
        "virtual device, so the next command behaves as the guest expects",
    ),
    DevirtualizeStep(
        "load the guest's visible registers",
        "write the task-file registers and the device control register (nIEN) with the virtual device's values; "
        "the status the guest reads next is DRDY with no BSY, DRQ or ERR, as the idle virtual device showed",
    ),
    DevirtualizeStep(
        "stop intercepting",
        "clear the IOPM bits of the command block, control block and bus-master ports; the guest owns the channel",
    ),
)


class DevirtualizeError(Exception):
    """De-virtualization asked for while the predicate does not hold; nothing changed."""


def devirtualize_blockers(
    states: Iterable[BlockState],
    persisted: frozenset[BlockIndex],
    block_count: int,
    requests_in_flight: int,
    guest_outstanding: bool,
    commit_pending: bool,
    install: bool,
) -> list[str]:
    """Every reason de-virtualization must wait; empty when it may happen."""
    reasons = []
    # Only the install policy ends in passthrough (policy.POLICY_TRANSITIONS).
    if not install:
        reasons.append("policy is not install")
    # A block still absent would have to come from the server.
    if any(state is not BlockState.PRESENT for state in states):
        reasons.append("a block is not present")
    # A restart must find the install complete, or it would fetch over the guest's writes.
    if persisted != frozenset(range(block_count)):
        reasons.append("the persisted map does not mark every block present")
    # The physical device must see no command the virtual device started.
    if requests_in_flight or guest_outstanding or commit_pending:
        reasons.append("requests are in flight")
    return reasons


def is_devirtualizable(*args, **kwargs) -> bool:
    return not devirtualize_blockers(*args, **kwargs)
