"""The invariant catalogue: one named predicate per invariant (ARCHITECTURE.md).

Each predicate takes plain values (block states, request ranges, sets of
allowed sector values), so the spec's own checks, the stateful tests, the
difftests (on the C core's state mapped to these values) and the z3 proofs
use the same definition. `check` turns a false predicate into an
`InvariantViolation` that carries the invariant's name.
"""

from collections.abc import Callable, Iterable, Sequence

from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.block_state import READABLE_LOCALLY, BlockState
from spec.storage.parameters import BlockIndex, Geometry
from spec.storage.persistent_map import recover_map

Range = tuple[int, int]  # (first sector, sector count)


class InvariantViolation(AssertionError):
    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name


def check(name: str, holds: bool, detail: str = "") -> None:
    """Raise with the invariant's name when it does not hold."""
    if not holds:
        raise InvariantViolation(name, detail)


def _sectors(ranges: Iterable[Range]) -> list[int]:
    return [lba for first, count in ranges for lba in range(first, first + count)]


def no_unpopulated_local_read(blocks: Sequence[BlockState], geometry: Geometry, guest_local_reads: Iterable[Range]) -> bool:
    """A guest read is never answered from a local sector that is not present."""
    return all(blocks[geometry.block_of(lba)] in READABLE_LOCALLY for lba in _sectors(guest_local_reads))


def no_fill_clobber(filling: Iterable[BlockIndex], guest_writes: Iterable[Range], geometry: Geometry) -> bool:
    """A background fill never overwrites data the guest wrote: no fill runs on a block a guest write is in flight to.

    The ideal-disk comparison after every read catches a clobber that slips past this structural check.
    """
    written = {geometry.block_of(lba) for lba in _sectors(guest_writes)}
    return not written & set(filling)


def guest_sees_ideal_disk(readable: Callable[[int], frozenset[bytes]], lba: int, data: bytes) -> bool:
    """Every guest read returns the last acknowledged write, or the image's data (model/ideal_disk.py)."""
    return all(
        data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES] in readable(lba + i) for i in range(len(data) // SECTOR_BYTES)
    )


def one_write_in_flight_per_sector(writes_in_flight: Iterable[Range]) -> bool:
    """At most one write per sector is outstanding on a device whose completion order is not fixed."""
    sectors = _sectors(writes_in_flight)
    return len(sectors) == len(set(sectors))


def stale_response_ignored(state_before: object, state_after: object) -> bool:
    """A response whose tag (request id) is not outstanding changes nothing."""
    return state_before == state_after


def view_after_restart(
    local_medium: Callable[[int, int], bytes],
    server_medium: Callable[[int, int], bytes],
    geometry: Geometry,
    identity: bytes,
) -> list[bytes]:
    """What the guest would read after a restart: blocks the recovered map trusts from the local medium, the rest from the server."""
    slots = tuple(local_medium(geometry.slot_lba(s), geometry.slot_sectors) for s in (0, 1))
    present = recover_map(slots, geometry, identity).present
    view = []
    for lba in range(geometry.data_sectors):
        source = local_medium if geometry.block_of(lba) in present else server_medium
        view.append(source(lba, 1))
    return view


def map_crash_safe(
    local_medium: Callable[[int, int], bytes],
    geometry: Geometry,
    identity: bytes,
    may_survive: Callable[[int], frozenset[bytes]],
) -> bool:
    """After power loss at any point, every sector the persisted map marks present holds data it may hold."""
    slots = tuple(local_medium(geometry.slot_lba(s), geometry.slot_sectors) for s in (0, 1))
    present = recover_map(slots, geometry, identity).present
    return all(
        local_medium(lba, 1) in may_survive(lba)
        for block in present
        for lba in range(geometry.first_lba(block), geometry.first_lba(block) + geometry.sectors_per_block)
    )


def flush_is_durable(view: Sequence[bytes], may_survive: Callable[[int], frozenset[bytes]]) -> bool:
    """When FLUSH CACHE completes, every write completed before it survives power loss.

    `view` is `view_after_restart` of the media a power cut left; `may_survive` is the ideal disk's
    durable value plus the writes no flush has covered yet, so a lost flushed write is a violation.
    """
    return all(sector in may_survive(lba) for lba, sector in enumerate(view))


def reserved_region_hidden(sector_count: int, geometry: Geometry, guest_local_requests: Iterable[Range]) -> bool:
    """No guest command can address the sectors the VMM keeps for itself."""
    return sector_count == geometry.data_sectors and all(
        lba < geometry.data_sectors for lba in _sectors(guest_local_requests)
    )


def dma_confined(dma_regions: Iterable[Range], vmm_region: Range) -> bool:
    """No DMA set up on the guest's behalf reaches VMM memory; ranges here are (first byte, byte count)."""
    vmm_first, vmm_bytes = vmm_region
    return all(first + size <= vmm_first or first >= vmm_first + vmm_bytes for first, size in dma_regions)


def devirtualize_only_when_quiescent(devirtualized: bool, blockers_when_devirtualized: Sequence[str]) -> bool:
    """De-virtualization happens only when every block is present, the map is durable and nothing is in flight.

    `blockers_when_devirtualized` is `spec.storage.devirtualize.devirtualize_blockers` at the moment interception
    stopped; the equality of the physical device's visible state is the VMM's part of the sequence.
    """
    return not devirtualized or not blockers_when_devirtualized


CATALOGUE: tuple[str, ...] = (
    "no_unpopulated_local_read",
    "no_fill_clobber",
    "guest_sees_ideal_disk",
    "one_write_in_flight_per_sector",
    "stale_response_ignored",
    "map_crash_safe",
    "flush_is_durable",
    "reserved_region_hidden",
    "dma_confined",
    "devirtualize_only_when_quiescent",
)
