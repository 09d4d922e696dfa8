"""Routing: which device serves each piece of one guest request, decided from the block states alone.

Pure functions of (policy, block states, request): the manager applies what
they return (issues the segments, demands the blocks, moves whole blocks to
WRITING, asks for the dirty map), and the C code and the proofs can use them as
they are. A request either gets all its segments at once or waits as a whole;
`Route.wait` says why.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, WriteSectors
from spec.storage.block_state import BUSY, BlockState
from spec.storage.devices import Completion, RequestId
from spec.storage.parameters import BlockIndex, Geometry, Lba
from spec.storage.policy import Policy


class Device(Enum):
    LOCAL = "local"
    REMOTE = "remote"


@dataclass
class Segment:
    """One request on one device, for a piece of a guest request."""

    device: Device
    kind: type  # ReadSectors, WriteSectors or Flush
    lba: Lba = 0
    count: int = 0
    offset: int = 0  # sectors from the start of the guest request
    data: bytes = b""
    request_id: RequestId | None = None
    completion: Completion | None = None


@dataclass(frozen=True)
class Piece:
    """The part of a sector range that falls in one block."""

    block: BlockIndex
    lba: Lba
    count: int


@dataclass
class Route:
    segments: list[Segment] = field(default_factory=list)
    wait: str | None = None  # why the request cannot be issued yet; None: issue the segments
    demanded: list[BlockIndex] = field(default_factory=list)  # blocks to fetch next (copy-on-read, or for a waiting write)
    whole_blocks: list[BlockIndex] = field(default_factory=list)  # absent blocks a write covers entirely: -> WRITING
    needs_dirty_map: bool = False  # cache: the map on disk must be marked dirty first
    needs_commit: bool = False  # flush: a map commit completes it


def split_by_block(geometry: Geometry, lba: Lba, count: int) -> list[Piece]:
    """The range cut at block boundaries."""
    pieces = []
    while count:
        block = geometry.block_of(lba)
        n = min(count, geometry.first_lba(block) + geometry.sectors_per_block - lba)
        pieces.append(Piece(block, lba, n))
        lba, count = lba + n, count - n
    return pieces


def route_read(policy: Policy, blocks: Sequence[BlockState], geometry: Geometry, lba: Lba, count: int) -> Route:
    if policy is Policy.NETWORK:
        return Route([Segment(Device.REMOTE, ReadSectors, lba, count)])
    if policy is Policy.PASSTHROUGH:
        return Route([Segment(Device.LOCAL, ReadSectors, lba, count)])
    route = Route()
    for piece in split_by_block(geometry, lba, count):
        # Only a present block may answer from the local disk (no_unpopulated_local_read).
        device = Device.LOCAL if blocks[piece.block] is BlockState.PRESENT else Device.REMOTE
        if blocks[piece.block] is BlockState.ABSENT:
            route.demanded.append(piece.block)  # copy-on-read: the guest touched it, fetch it next
        last = route.segments[-1] if route.segments else None
        if last is not None and last.device is device:
            last.count += piece.count
        else:
            route.segments.append(Segment(device, ReadSectors, piece.lba, piece.count, offset=piece.lba - lba))
    return route


def route_write(
    policy: Policy,
    blocks: Sequence[BlockState],
    geometry: Geometry,
    lba: Lba,
    data: bytes,
    map_may_be_clean: bool,
) -> Route:
    """`map_may_be_clean`: the newest map on disk may be a clean cache map, or a commit is under way."""
    count = len(data) // SECTOR_BYTES
    if policy is Policy.NETWORK:
        return Route([Segment(Device.REMOTE, WriteSectors, lba, count, 0, data)])
    if policy is Policy.PASSTHROUGH:
        return Route([Segment(Device.LOCAL, WriteSectors, lba, count, 0, data)])
    pieces = split_by_block(geometry, lba, count)
    # A block being filled or written finishes first, so its local write lands before ours (no_fill_clobber).
    if any(blocks[p.block] in BUSY for p in pieces):
        return Route(wait="a block is being filled or written")
    partial_absent = [p.block for p in pieces if blocks[p.block] is BlockState.ABSENT and p.count < geometry.sectors_per_block]
    if policy is Policy.INSTALL and partial_absent:
        # Wait for the fill: the rest of the block must come from the server first (dm-clone).
        return Route(wait="a partly written block is not present", demanded=partial_absent)
    route = Route()
    if policy is Policy.CACHE:
        # Before the first write after a clean commit, the map on disk is marked dirty (persistent_map.py).
        if map_may_be_clean:
            return Route(wait="the cache map must be marked dirty first", needs_dirty_map=True)
        # The server is authoritative: every write goes there, whatever the local disk does.
        route.segments.append(Segment(Device.REMOTE, WriteSectors, lba, count, 0, data))
    for piece in pieces:
        if piece.block in partial_absent:
            continue  # cache: the server alone has this block
        if blocks[piece.block] is BlockState.ABSENT:
            route.whole_blocks.append(piece.block)  # no fill needed: dm-clone's whole-region shortcut
        start = (piece.lba - lba) * SECTOR_BYTES
        piece_data = data[start : start + piece.count * SECTOR_BYTES]
        route.segments.append(Segment(Device.LOCAL, WriteSectors, piece.lba, piece.count, piece.lba - lba, piece_data))
    return route


def route_flush(policy: Policy) -> Route:
    """FLUSH CACHE per policy (README.md): the server, the local disk, and the map that finds local data."""
    route = Route()
    if policy in (Policy.NETWORK, Policy.CACHE):
        route.segments.append(Segment(Device.REMOTE, Flush))
    if policy is Policy.PASSTHROUGH:
        route.segments.append(Segment(Device.LOCAL, Flush))
    # Local data and the map that makes it findable after a restart (flush_is_durable).
    route.needs_commit = policy in (Policy.CACHE, Policy.INSTALL)
    return route
