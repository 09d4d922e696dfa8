"""The storage manager: the backing store that routes each block to the local disk or the server.

It implements `spec.ata.backing_store.BackingStore` (one guest request at a
time, started with `start`, polled every tick) in front of two request devices
(`devices.py`): the local disk and the AoE initiator. The clock reaches it
through `tick`, completions through `on_local_completion` and
`on_remote_completion` (which `step` feeds from the devices).

Life cycle: STARTING (reading both map slots) -> RUNNING, with SWITCHING while
a policy change drains and commits, and DEVIRTUALIZED once the VMM has stopped
intercepting (the manager then only models the guest driving the disk).

Design choice for a write smaller than a block into a block that is not
present (install): *wait for the fill*, as dm-clone does; a write covering the
whole block skips the fill (dm-clone's whole-region shortcut). A write to a
block being filled waits for that fill, so the fill's local write always lands
before the guest's (no_fill_clobber).

In cache, a guest write goes to the server, then an AoE FLUSH CACHE, and to
the local disk, before it completes: the local copy is never newer than the
server's medium. README.md gives the reasons for every such decision.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, StoreRequest, StoreResult, WriteSectors
from spec.ata.constants import ABRT, IDNF  # ATA/ATAPI-7 V1 §7 Error register: aborted, address not found
from spec.storage.block_state import BlockEvent, BlockState, next_block_state
from spec.storage.devices import Completion, RequestDevice, RequestId
from spec.storage.devirtualize import DEVIRTUALIZE_SEQUENCE, DevirtualizeError, DevirtualizeStep, devirtualize_blockers
from spec.storage.fill_engine import choose_fills, refill_tokens
from spec.storage.parameters import BlockIndex, Lba, Preset
from spec.storage.persistent_map import MapRecord, Recovery, encode_map, recover_map
from spec.storage.policy import (
    FILLS_IN_BACKGROUND,
    FILLS_ON_DEMAND,
    USES_LOCAL_DISK,
    Policy,
    PolicyError,
    boot_policy,
    check_transition,
)
from spec.storage.routing import Device, Piece, Segment, route_flush, route_read, route_write, split_by_block



class Phase(Enum):
    STARTING = "starting"  # reading the persisted map
    RUNNING = "running"
    SWITCHING = "switching"  # a policy change waits for quiescence and its map commit
    DEVIRTUALIZED = "devirtualized"


@dataclass
class GuestOp:
    request: StoreRequest
    segments: list[Segment] = field(default_factory=list)
    issued: bool = False
    commit_ticket: int | None = None  # the map commit this flush waits for
    server_flushed: bool = False  # cache: the write-through was followed by a server flush
    result: StoreResult | None = None


class CommitStep(Enum):
    """The three writes of a map commit, in their order (persistent_map.py)."""

    FLUSH_BEFORE = "flush before"  # the data the map will vouch for becomes durable
    WRITE_MAP = "write map"  # the slot not holding the newest valid map
    FLUSH_AFTER = "flush after"  # the map becomes durable


class FillPhase(Enum):
    READING = "reading"  # the server read is outstanding
    WRITING = "writing"  # the local write of the server's data is outstanding


@dataclass
class Commit:
    """A map commit in progress: flush, write the slot, flush (persistent_map.py)."""

    number: int
    policy: Policy
    clean: bool
    step: CommitStep = CommitStep.FLUSH_BEFORE
    snapshot: frozenset[BlockIndex] = frozenset()


@dataclass(frozen=True)
class Outstanding:
    """One request submitted to a device and not yet completed: why, what and where."""

    purpose: tuple  # ("guest", segment), ("fill read", block), ("fill write", block), ("commit",), ("map read",), ("switch flush",)
    kind: type  # ReadSectors, WriteSectors or Flush
    lba: Lba = 0
    count: int = 0


Observer = Callable[[str, tuple], None]


class StorageManager:
    def __init__(
        self,
        preset: Preset,
        identity: bytes,
        policy: Policy,
        local: RequestDevice | None,
        remote: RequestDevice,
        now: int = 0,
        observer: Observer | None = None,
    ):
        # Without a local disk only the network policy can serve the guest.
        if local is None and policy is not Policy.NETWORK:
            raise ValueError(f"policy {policy.value} needs a local disk")
        # Passthrough is reached only through de-virtualization, which needs a map to start from.
        if policy is Policy.PASSTHROUGH:
            raise ValueError("passthrough is entered only by de-virtualization")
        self.geometry = preset.geometry
        self.fill_parameters = preset.fill
        self.identity = identity
        self.configured_policy = policy
        self.policy = policy
        self.local = local
        self.remote = remote
        self.observer = observer
        self.blocks = [BlockState.ABSENT] * self.geometry.block_count
        self.persisted: frozenset[BlockIndex] = frozenset()  # blocks the durable map marks present
        self.durable_clean = False  # the newest map on disk (perhaps) is a clean cache map
        self.next_slot, self.next_generation = 0, 1
        self.local_purpose: dict[RequestId, Outstanding] = {}
        self.remote_purpose: dict[RequestId, Outstanding] = {}
        self.guest: GuestOp | None = None
        self.fills: dict[BlockIndex, FillPhase] = {}
        self.demanded: list[BlockIndex] = []
        self.now = now
        self.tokens = self.fill_parameters.token_burst
        self.fills_since_commit = 0
        self.commit: Commit | None = None
        self.commit_wanted: tuple[Policy, bool] | None = None
        self.commits_started = 0
        self.commit_ok: dict[int, bool] = {}
        self.recovery: Recovery | None = None
        self.pending_policy: Policy | None = None
        self.switch_flush = False  # leaving network: the server's volatile data must be durable first
        self.switch_commit: tuple[Policy, bool] | None = None  # the map commit a policy change still needs
        self.switch_commit_number: int | None = None  # the commit started for it
        self.phase = Phase.STARTING
        if local is None:
            self.phase = Phase.RUNNING
        else:
            # The map slots are read before anything else touches the local disk.
            self._submit(Device.LOCAL, ("map read",), ReadSectors, self.geometry.slot_lba(0), self.geometry.reserved_sectors)

    # BackingStore interface (spec/ata/backing_store.py)

    def sector_count(self) -> int:
        """The guest's capacity: the local disk minus the reserved region (reserved_region_hidden)."""
        return self.geometry.data_sectors

    def start(self, request: StoreRequest) -> None:
        # The ATA device starts one request at a time.
        assert self.guest is None, "a device starts one request at a time"
        self.guest = GuestOp(request)
        self.guest.result = self._reject(request)

    def poll(self) -> StoreResult | None:
        self.step()
        if self.guest is None or self.guest.result is None:
            return None
        result, self.guest = self.guest.result, None
        return result

    # Other inputs

    def tick(self, now: int) -> None:
        """The clock advanced: the rate limit earns tokens, and everything that can progress does."""
        self.tokens = refill_tokens(self.tokens, now - self.now, self.fill_parameters)
        self.now = max(self.now, now)
        self.step()

    def request_policy(self, wanted: Policy) -> None:
        """Begin a run-time policy change; a change the table refuses raises PolicyError and changes nothing."""
        # One change at a time, and only once the map has been read.
        if self.phase is not Phase.RUNNING:
            raise PolicyError(f"cannot change policy while {self.phase.value}")
        check_transition(self.policy, wanted)
        # Without a local disk only the network policy can serve the guest.
        if self.local is None and wanted in USES_LOCAL_DISK:
            raise PolicyError(f"policy {wanted.value} needs a local disk")
        self.pending_policy = wanted
        self.phase = Phase.SWITCHING

    def may_devirtualize(self) -> bool:
        return self.phase is Phase.RUNNING and not self.devirtualize_blockers()

    def devirtualize_blockers(self) -> list[str]:
        return devirtualize_blockers(
            self.blocks,
            self.persisted,
            self.geometry.block_count,
            len(self.local_purpose) + len(self.remote_purpose),
            self.guest is not None,
            self.commit is not None or self.commit_wanted is not None,
            self.policy is Policy.INSTALL,
        )

    def devirtualize(self) -> tuple[DevirtualizeStep, ...]:
        """Enter passthrough; the VMM shell then performs the physical steps of the sequence."""
        blockers = self.devirtualize_blockers() if self.phase is Phase.RUNNING else [f"manager is {self.phase.value}"]
        if blockers:
            raise DevirtualizeError("; ".join(blockers))
        self._set_policy(Policy.PASSTHROUGH)
        self.phase = Phase.DEVIRTUALIZED
        return DEVIRTUALIZE_SEQUENCE

    def step(self) -> None:
        """Take every completion the devices have, then start whatever may start."""
        if self.local is not None:
            for completion in self.local.take_completions():
                self.on_local_completion(completion)
        for completion in self.remote.take_completions():
            self.on_remote_completion(completion)
        self._advance()

    def on_local_completion(self, completion: Completion) -> None:
        # A completion for a request not outstanding changes nothing (stale_response_ignored).
        outstanding = self.local_purpose.pop(completion.request_id, None)
        if outstanding is None:
            return
        match outstanding.purpose:
            case ("map read",):
                self._recover(completion)
            case ("guest", segment):
                segment.completion = completion
            case ("fill write", block):
                self._finish_fill(block, completion.ok)
            case ("commit",):
                self._continue_commit(completion.ok)

    def on_remote_completion(self, completion: Completion) -> None:
        # A completion for a request not outstanding changes nothing (stale_response_ignored).
        outstanding = self.remote_purpose.pop(completion.request_id, None)
        if outstanding is None:
            return
        match outstanding.purpose:
            case ("guest", segment):
                segment.completion = completion
            case ("fill read", block):
                self._fill_read_done(block, completion)
            case ("switch flush",):
                self.switch_flush = not completion.ok  # a failed flush is retried

    def comparable_state(self) -> tuple:
        """Everything that decides future behaviour, for equality checks (stale_response_ignored)."""
        guest = None
        if self.guest is not None:
            guest = (
                self.guest.request,
                self.guest.issued,
                tuple((s.device, s.request_id, s.completion) for s in self.guest.segments),
                self.guest.result,
            )
        return (
            self.phase,
            self.policy,
            tuple(self.blocks),
            self.persisted,
            self.durable_clean,
            tuple(sorted(self.local_purpose)),
            tuple(sorted(self.remote_purpose)),
            guest,
            tuple(sorted((block, phase.value) for block, phase in self.fills.items())),
            tuple(self.demanded),
            self.commit and (self.commit.number, self.commit.step),
        )

    # Start: recovery of the persisted map

    def _recover(self, completion: Completion) -> None:
        geometry = self.geometry
        slot_bytes = geometry.slot_sectors * SECTOR_BYTES
        if not completion.ok:
            # A read error says nothing about the map: treating it as empty would lose the guest's local writes.
            self._submit(Device.LOCAL, ("map read",), ReadSectors, geometry.slot_lba(0), geometry.reserved_sectors)
            return
        raw = completion.data
        slots = (raw[:slot_bytes], raw[slot_bytes : 2 * slot_bytes])
        recovery = recover_map(slots, geometry, self.identity)
        self.recovery = recovery
        self.next_slot, self.next_generation = recovery.next_slot, recovery.next_generation
        record = recovery.record
        recovered_policy = record.policy if record is not None else None
        self.policy = boot_policy(self.configured_policy, recovered_policy)
        self.persisted = recovery.present
        self.durable_clean = record is not None and record.policy is Policy.CACHE and record.clean
        if self.policy is not Policy.NETWORK:
            self.blocks = [BlockState.PRESENT if b in recovery.present else BlockState.ABSENT for b in range(geometry.block_count)]
        self.phase = Phase.RUNNING
        if recovered_policy is not None and recovered_policy is not self.policy:
            self._begin_switch_commit(recovered_policy, self.policy)

    # Guest requests

    def _reject(self, request: StoreRequest) -> StoreResult | None:
        """The outcome of a malformed or out-of-range request, or None if it is served."""
        match request:
            case ReadSectors(lba, count):
                sectors = count
            case WriteSectors(lba, data):
                # Data is a whole, non-zero number of sectors.
                if not data or len(data) % SECTOR_BYTES:
                    return StoreResult(False, error=ABRT)
                sectors = len(data) // SECTOR_BYTES
            case Flush():
                return None
        # A transfer of no sectors is malformed.
        if sectors < 1 or lba < 0:
            return StoreResult(False, error=ABRT)
        # Sectors beyond the capacity, the reserved region included, do not exist (reserved_region_hidden).
        if lba + sectors > self.geometry.data_sectors:
            return StoreResult(False, error=IDNF)
        return None

    def _pieces(self, lba: Lba, count: int) -> list[Piece]:
        return split_by_block(self.geometry, lba, count)

    def _demand(self, block: BlockIndex) -> None:
        if block not in self.demanded:
            self.demanded.append(block)

    def _plan(self, op: GuestOp) -> list[Segment] | None:
        """The segments that serve the request now, or None if it must wait (routing.py decides)."""
        match op.request:
            case ReadSectors(lba, count):
                route = route_read(self.policy, self.blocks, self.geometry, lba, count)
            case WriteSectors(lba, data):
                map_may_be_clean = self.durable_clean or self.commit is not None
                route = route_write(self.policy, self.blocks, self.geometry, lba, data, map_may_be_clean)
            case Flush():
                route = route_flush(self.policy)
        for block in route.demanded:
            self._demand(block)
        if route.needs_dirty_map and self.commit is None:
            self.commit_wanted = (Policy.CACHE, False)
        if route.wait is not None:
            return None
        for block in route.whole_blocks:
            self._transition(block, BlockEvent.WHOLE_WRITE_STARTED)
        if route.needs_commit:
            self.commit_wanted = (self.policy, True)
            op.commit_ticket = self.commits_started + 1
        return route.segments

    def _issue(self, segment: Segment, purpose: tuple) -> None:
        segment.request_id = self._submit(segment.device, purpose, segment.kind, segment.lba, segment.count, segment.data)

    def _submit(self, device: Device, purpose: tuple, kind: type, lba: Lba = 0, count: int = 0, data: bytes = b"") -> RequestId:
        """Every request to either device goes through here, so `outstanding` knows all of them."""
        target = self.local if device is Device.LOCAL else self.remote
        if kind is ReadSectors:
            request_id = target.submit_read(lba, count)
        elif kind is WriteSectors:
            request_id = target.submit_write(lba, data)
            count = len(data) // SECTOR_BYTES
        else:
            request_id = target.submit_flush()
        table = self.local_purpose if device is Device.LOCAL else self.remote_purpose
        table[request_id] = Outstanding(purpose, kind, lba, count)
        return request_id

    def outstanding(self, device: Device) -> list[Outstanding]:
        """The requests submitted to a device and not completed, for the invariant checks."""
        return list((self.local_purpose if device is Device.LOCAL else self.remote_purpose).values())

    def _advance_guest(self) -> None:
        op = self.guest
        if op is None or op.result is not None:
            return
        if not op.issued:
            if self.phase is not Phase.RUNNING and self.phase is not Phase.DEVIRTUALIZED:
                return
            segments = self._plan(op)
            if segments is None:
                return
            op.segments, op.issued = segments, True
            for segment in segments:
                self._issue(segment, ("guest", segment))
        if any(segment.completion is None for segment in op.segments):
            return
        if self._needs_server_flush(op):
            # Cache write-through is synchronous: the local copy must never be ahead of the server's medium.
            op.server_flushed = True
            segment = Segment(Device.REMOTE, Flush)
            op.segments.append(segment)
            self._issue(segment, ("guest", segment))
            return
        if op.commit_ticket is not None and op.commit_ticket not in self.commit_ok:
            return
        op.result = self._finish_guest(op)

    def _needs_server_flush(self, op: GuestOp) -> bool:
        return (
            self.policy is Policy.CACHE
            and isinstance(op.request, WriteSectors)
            and not op.server_flushed
            and all(s.completion.ok for s in op.segments if s.device is Device.REMOTE)
        )

    def _finish_guest(self, op: GuestOp) -> StoreResult:
        failed = [s.completion for s in op.segments if not s.completion.ok]
        ok = not failed and (op.commit_ticket is None or self.commit_ok[op.commit_ticket])
        if isinstance(op.request, WriteSectors) and self.policy in (Policy.CACHE, Policy.INSTALL):
            self._finish_local_writes(op, ok)
        if not ok:
            error = next((c.ata_error for c in failed if c.ata_error), ABRT)
            return StoreResult(False, error=error)
        if isinstance(op.request, ReadSectors):
            data = bytearray(op.request.count * SECTOR_BYTES)
            for segment in op.segments:
                data[segment.offset * SECTOR_BYTES : (segment.offset + segment.count) * SECTOR_BYTES] = segment.completion.data
            return StoreResult(True, bytes(data))
        return StoreResult(True)

    def _finish_local_writes(self, op: GuestOp, ok: bool) -> None:
        for segment in op.segments:
            if segment.device is not Device.LOCAL:
                continue
            block = self.geometry.block_of(segment.lba)
            event = BlockEvent.WRITE_DONE if segment.completion.ok else BlockEvent.WRITE_FAILED
            self._transition(block, event)
        if self.policy is Policy.CACHE and not ok:
            # The server decides, and may hold the old or the new data: the local copies are dropped.
            for block in {p.block for p in self._pieces(op.request.lba, len(op.request.data) // SECTOR_BYTES)}:
                self._transition(block, BlockEvent.INVALIDATED)

    # The fill engine

    def _guest_write_blocks(self) -> set[BlockIndex]:
        """Blocks an issued guest write covers: no fill may start on them (no_fill_clobber)."""
        op = self.guest
        if op is None or not op.issued or not isinstance(op.request, WriteSectors):
            return set()
        return {p.block for p in self._pieces(op.request.lba, len(op.request.data) // SECTOR_BYTES)}

    def _advance_fills(self) -> None:
        self.demanded = [b for b in self.demanded if self.blocks[b] is BlockState.ABSENT]
        if self.phase is not Phase.RUNNING or self.policy not in FILLS_ON_DEMAND:
            return
        chosen, spent = choose_fills(
            self.blocks,
            self.demanded,
            self._guest_write_blocks(),
            len(self.fills),
            self.tokens,
            self.fill_parameters,
            background=self.policy in FILLS_IN_BACKGROUND,
            guest_active=self.guest is not None,
        )
        self.tokens -= spent
        for block in chosen:
            self._transition(block, BlockEvent.FILL_STARTED)
            self.fills[block] = FillPhase.READING
            first, spb = self.geometry.first_lba(block), self.geometry.sectors_per_block
            self._submit(Device.REMOTE, ("fill read", block), ReadSectors, first, spb)

    def _fill_read_done(self, block: BlockIndex, completion: Completion) -> None:
        if not completion.ok:
            self._finish_fill(block, False)
            return
        self.fills[block] = FillPhase.WRITING
        self._submit(Device.LOCAL, ("fill write", block), WriteSectors, self.geometry.first_lba(block), data=completion.data)

    def _finish_fill(self, block: BlockIndex, ok: bool) -> None:
        del self.fills[block]
        self._transition(block, BlockEvent.FILL_DONE if ok else BlockEvent.FILL_FAILED)
        if ok:
            self.fills_since_commit += 1
        if self.policy is Policy.INSTALL and self.fills_since_commit >= self.fill_parameters.commit_every:
            self.commit_wanted = self.commit_wanted or (Policy.INSTALL, True)

    # Map commits

    def _advance_commit(self) -> None:
        if self.policy is Policy.INSTALL and self.commit is None and self.commit_wanted is None:
            # A complete install is committed at once: a restart then finds it complete.
            if all(state is BlockState.PRESENT for state in self.blocks) and len(self.persisted) < len(self.blocks):
                self.commit_wanted = (Policy.INSTALL, True)
        if self.commit is not None or self.commit_wanted is None or self.phase is Phase.STARTING:
            return
        policy, clean = self.commit_wanted
        self.commit_wanted = None
        self.commits_started += 1
        self.fills_since_commit = 0
        # A cache map is clean only if no guest write is in flight while its data is flushed.
        clean = clean and not self._guest_write_blocks()
        self.commit = Commit(self.commits_started, policy, clean)
        # The snapshot is taken as the first flush is issued: only data written before it is durable after it.
        self.commit.snapshot = frozenset(b for b, s in enumerate(self.blocks) if s is BlockState.PRESENT)
        self._submit(Device.LOCAL, ("commit",), Flush)

    def _continue_commit(self, ok: bool) -> None:
        commit = self.commit
        if ok and commit.step is CommitStep.FLUSH_BEFORE:
            commit.step = CommitStep.WRITE_MAP
            record = MapRecord(self.next_generation, commit.policy, commit.clean, commit.snapshot)
            data = encode_map(record, self.geometry, self.identity)
            lba = self.geometry.slot_lba(self.next_slot)
            self._submit(Device.LOCAL, ("commit",), WriteSectors, lba, data=data)
            return
        if ok and commit.step is CommitStep.WRITE_MAP:
            commit.step = CommitStep.FLUSH_AFTER
            self._submit(Device.LOCAL, ("commit",), Flush)
            return
        if commit.step is not CommitStep.FLUSH_BEFORE:
            # The slot was written, perhaps only partly: its generation is used up either way.
            self.next_generation += 1
            if commit.clean and commit.policy is Policy.CACHE:
                self.durable_clean = True
        if ok:
            self.persisted = commit.snapshot
            self.next_slot = 1 - self.next_slot
            self.durable_clean = commit.policy is Policy.CACHE and commit.clean
        self.commit_ok[commit.number] = ok
        self.commit = None

    # Policy changes

    def _begin_switch_commit(self, old: Policy, new: Policy) -> None:
        """The map commit a change needs, so a restart cannot undo it; the change completes with it."""
        self.phase = Phase.SWITCHING
        self.pending_policy = None
        if old is Policy.NETWORK:
            # Fills and cached copies read the server: what they read must not vanish in a server crash.
            self.switch_flush = True
        if new is Policy.NETWORK and self.local is not None:
            # The local copy is about to go stale: an empty dirty cache map supersedes any clean one.
            self.switch_commit = (Policy.CACHE, False)
        elif new is Policy.INSTALL and old is Policy.CACHE:
            # From now on local data may be newer than the server's: an install map forbids booting into cache.
            self.switch_commit = (Policy.INSTALL, True)

    def _advance_switch_commit(self) -> None:
        """The change's commit is asked for until one succeeds: a failed one may have left the old map in force."""
        if self.switch_commit is None or self.commit is not None or self.commit_wanted is not None:
            return
        if self.switch_commit_number is not None and self.commit_ok.get(self.switch_commit_number):
            self.switch_commit = self.switch_commit_number = None
            return
        self.commit_wanted = self.switch_commit
        self.switch_commit_number = self.commits_started + 1
    def _advance_switch(self) -> None:
        if self.phase is not Phase.SWITCHING:
            return
        wanted = self.pending_policy
        quiescent = self.guest is None or not self.guest.issued
        if wanted is not None:
            if not quiescent or self.fills or self.commit is not None or self.commit_wanted is not None:
                return
            old = self.policy
            self._set_policy(wanted)
            if wanted is Policy.NETWORK:
                for block in range(self.geometry.block_count):
                    self._transition(block, BlockEvent.INVALIDATED)
                self.demanded.clear()
            self._begin_switch_commit(old, wanted)
            return
        if self.switch_flush and all(o.purpose != ("switch flush",) for o in self.remote_purpose.values()):
            self._submit(Device.REMOTE, ("switch flush",), Flush)
        self._advance_switch_commit()
        if self.commit is None and self.commit_wanted is None and not self.switch_flush and self.switch_commit is None:
            self.phase = Phase.RUNNING

    def _set_policy(self, policy: Policy) -> None:
        if self.observer is not None:
            self.observer("policy", (self.policy, policy))
        self.policy = policy

    def _transition(self, block: BlockIndex, event: BlockEvent) -> None:
        old = self.blocks[block]
        self.blocks[block] = next_block_state(old, event)
        if self.observer is not None:
            self.observer("block", (old, event, self.blocks[block]))

    def _advance(self) -> None:
        if self.phase is Phase.STARTING:
            return
        self._advance_switch()
        self._advance_guest()
        self._advance_commit()
        self._advance_fills()
        self._advance_guest()
        self._advance_switch()
