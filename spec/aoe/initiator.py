"""The AoE initiator: what the VMM's AoE client does between the storage manager and the wire.

The storage manager submits reads, writes and flushes; the initiator turns them
into AoE frames, matches responses by tag, retransmits lost frames under a new
tag, and reports each request's completion once. It performs no I/O and reads
no clock: the caller hands in received frames and the time (`now`, integer
ticks) and collects outgoing frames and completions. A submission only queues:
frames leave from `tick` and `receive`, the calls that carry the time, so every
transmission's timers and write fence start at the time it is sent (a write sent
at a stale time would fence its sectors too briefly, and a duplicate of it could
then land after the next write to them). `next_timer` says `now` while a queued
frame may go.

Ordering rules that make the result equal to running the requests one by one
in submission order:

- requests touching a common sector, at least one of them a write, are sent in
  submission order (a later one waits until the earlier one has finished);
- a flush is a barrier: it waits for everything submitted before it, and
  everything submitted after it waits for the flush;
- at most one write per sector is in flight, counting copies that may still be
  travelling: a write's sectors stay fenced until more than `max_frame_age`
  after its last transmission (a copy may arrive at exactly that age), because a retransmitted or duplicated old write that
  arrives late would otherwise overwrite newer data.

Optionally (`epoch_token`), a flush also proves that the target did not restart
since it took the writes the flush covers: AoE itself cannot tell (README).
"""

from dataclasses import dataclass, field
from enum import Enum

from spec import invariants
from spec.aoe.constants import (
    MAX_SECTOR_COUNT_FIELD,
    AOE_VERSION,
    BROADCAST_MAC,
    CONFIG_STRING_MAX,
    DEFAULT_MAX_SECTORS,
    SECTOR_BYTES,
    AoeCommand,
    AtaErrorBit,
    AtaFlag,
    AtaStatus,
    ConfigCommand,
    HeaderFlag,
    sectors_per_frame,
)
from spec.aoe.frames import (
    AoeHeader,
    AtaArgument,
    ConfigArgument,
    EthernetHeader,
    Frame,
    MalformedFrame,
    decode_frame,
    encode_frame,
)
from spec.aoe.rtt import RttEstimator
from spec.aoe.target import FLUSH_CACHE, READ_SECTORS_EXT, WRITE_SECTORS_EXT

TAG_MODULUS = 1 << 32
LBA48_LIMIT = 1 << 48
ATA_ERROR_TARGET_SILENT = AtaErrorBit.ABRT  # the request failed without an ATA answer: aborted, not a media error


@dataclass(frozen=True)
class Timing:
    """Timer settings in ticks (the defaults read ticks as microseconds)."""

    initial_rto: int = 200_000  # before the first round-trip sample
    min_rto: int = 10_000
    max_rto: int = 2_000_000  # backoff doubles a frame's timeout up to here
    deadline: int = 20_000_000  # a request with no progress for this long fails; below a guest's command timeout
    max_frame_age: int = 10_000  # no frame outlives this in a LAN: how long a sent write fences its sectors


@dataclass(frozen=True)
class InitiatorConfig:
    mac: bytes  # our address
    major: int  # the target's shelf
    minor: int  # the target's slot
    mtu: int = 1500
    target_mac: bytes = BROADCAST_MAC  # broadcast: learn it from the Query Config answer
    max_window: int = 64  # never more frames in flight than this, whatever the target advertises
    timing: Timing = field(default_factory=Timing)
    epoch_token: bytes = b""  # non-empty: claim the target's config string with it and check it after each flush


@dataclass(frozen=True)
class Completion:
    request_id: int
    ok: bool
    data: bytes = b""  # the sectors, for a successful read
    ata_error: int = 0  # ATA Error register bits when not ok
    aoe_error: int = 0  # the AoE error code when the target answered with the E flag


class Kind(Enum):
    READ = "read"
    WRITE = "write"
    FLUSH = "flush"
    DISCOVER = "discover"
    VERIFY = "verify"  # a flush's second step: is our epoch token still the target's config string?
    RECLAIM = "reclaim"  # a flush's third step after a restart was seen: set the token again


@dataclass
class Request:
    request_id: int
    kind: Kind
    lba: int
    count: int
    data: bytes
    progress_at: int  # submission, a first transmission or an answer of one of its fragments
    fragments: list["Fragment"] = field(default_factory=list)
    pieces: dict[int, bytes] = field(default_factory=dict)  # lba -> sectors read


@dataclass
class Fragment:
    """One frame's worth of a request; retransmissions reuse it with a new tag."""

    request: Request
    kind: Kind
    lba: int
    count: int
    data: bytes = b""
    tag: int | None = None  # the tag of the live transmission; None while queued
    sent_at: int = 0
    rto: int = 0
    last_sent: int | None = None  # the latest transmission of any tag: ghosts may live until + max_frame_age

    def sectors(self) -> range:
        return range(self.lba, self.lba + self.count)

    def overlaps(self, other: "Fragment") -> bool:
        return self.lba < other.lba + other.count and other.lba < self.lba + self.count


@dataclass
class AoeInitiator:
    config: InitiatorConfig
    now: int = 0  # the latest time handed in
    target_mac: bytes = b""
    buffer_count: int | None = None  # None until Query Config has answered
    max_sectors: int = 0
    next_tag: int = 0
    next_request_id: int = 1
    estimator: RttEstimator = None  # type: ignore[assignment]
    discovery: Fragment | None = None
    requests: dict[int, Request] = field(default_factory=dict)
    pending: list[Fragment] = field(default_factory=list)  # unfinished fragments in submission order
    outstanding: dict[int, Fragment] = field(default_factory=dict)  # tag -> fragment in flight
    write_fences: dict[int, int] = field(default_factory=dict)  # lba -> time before which no new write may go
    outgoing: list[bytes] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    ignored_frames: int = 0  # malformed, stale or foreign frames seen by `receive`
    target_restarts: int = 0  # restarts the epoch token revealed

    def __post_init__(self):
        if len(self.config.epoch_token) > CONFIG_STRING_MAX:
            raise ValueError("the epoch token must fit the 1024-byte config string")
        t = self.config.timing
        self.estimator = RttEstimator(t.initial_rto, t.min_rto, t.max_rto)
        self.target_mac = self.config.target_mac
        discovery_request = Request(0, Kind.DISCOVER, 0, 0, b"", self.now)
        self.discovery = Fragment(discovery_request, Kind.DISCOVER, 0, 0)
        self.transmit(self.discovery)

    # The storage manager's side.

    def submit_read(self, lba: int, count: int) -> int:
        """Read `count` sectors from `lba`; the completion carries the data."""
        check_range(lba, count)
        return self.submit(Kind.READ, lba, count, b"")

    def submit_write(self, lba: int, data: bytes) -> int:
        """Write whole sectors at `lba`."""
        if len(data) == 0 or len(data) % SECTOR_BYTES:
            raise ValueError("write data must be a positive whole number of 512-byte sectors")
        check_range(lba, len(data) // SECTOR_BYTES)
        return self.submit(Kind.WRITE, lba, len(data) // SECTOR_BYTES, bytes(data))

    def submit_flush(self) -> int:
        """Make every write completed before this request durable on the target (FLUSH CACHE)."""
        return self.submit(Kind.FLUSH, 0, 0, b"")

    def take_outgoing(self) -> list[bytes]:
        frames, self.outgoing = self.outgoing, []
        return frames

    def take_completions(self) -> list[Completion]:
        done, self.completions = self.completions, []
        return done

    def in_flight(self) -> list[tuple[int, Kind, int, int]]:
        """(tag, kind, lba, count) of every transmission awaiting an answer."""
        return [(tag, f.kind, f.lba, f.count) for tag, f in sorted(self.outstanding.items())]

    def next_timer(self) -> int | None:
        """The earliest time at which `tick` has something to do (a retransmission, a deadline, a fence
        running out), or None; a caller may sleep until then, or until a frame arrives."""
        times = [f.sent_at + f.rto for f in self.outstanding.values()]
        times += [r.progress_at + self.config.timing.deadline for r in self.requests.values()]
        times += [t for t in self.write_fences.values() if t > self.now]
        if self.has_sendable():
            times.append(self.now)
        return min(times, default=None)

    def window(self) -> int:
        """How many frames may be in flight: the target's buffer count, capped by our own limit."""
        return max(1, min(self.buffer_count or 1, self.config.max_window))

    # The network's side.

    def receive(self, frame: bytes, now: int) -> None:
        """Match one received frame to the transmission it answers; anything else changes nothing."""
        self.advance(now)
        try:
            response = decode_frame(frame)
        except MalformedFrame:
            self.ignored_frames += 1  # not an AoE frame, or a broken one
            return
        header = response.header
        fragment = self.outstanding.get(header.tag)
        if not header.flags & HeaderFlag.RESPONSE or response.ethernet.destination != self.config.mac:
            self.ignored_frames += 1  # a request, or a frame for another station
        elif fragment is None:
            self.ignored_frames += 1  # stale: a duplicate, or the answer to a transmission already retransmitted
        elif self.target_mac != BROADCAST_MAC and response.ethernet.source != self.target_mac:
            self.ignored_frames += 1  # another station answering with our tag
        elif (header.major, header.minor) != (self.config.major, self.config.minor):
            self.ignored_frames += 1  # another shelf or slot
        elif header.command != command_of(fragment.kind):
            self.ignored_frames += 1  # an answer to a different kind of request
        elif fragment.kind is Kind.DISCOVER:
            self.process_config_response(response, fragment)
        elif fragment.kind in (Kind.VERIFY, Kind.RECLAIM):
            self.process_epoch_response(response, fragment)
        else:
            self.process_ata_response(response, fragment)
        self.dispatch()

    def tick(self, now: int) -> None:
        """Let time pass: retransmit what timed out, fail requests past their deadline, send what may go."""
        self.advance(now)
        for fragment in [f for f in self.outstanding.values() if now >= f.sent_at + f.rto]:
            del self.outstanding[fragment.tag]  # its answer is stale from now on
            fragment.rto = min(2 * fragment.rto, self.config.timing.max_rto)  # exponential backoff
            self.transmit(fragment, fresh_timer=False)
        deadline = self.config.timing.deadline
        for request in [r for r in self.requests.values() if now - r.progress_at >= deadline]:
            self.fail(request, ATA_ERROR_TARGET_SILENT, 0)  # the target is silent: the guest's command fails
        self.write_fences = {s: t for s, t in self.write_fences.items() if t > now}  # expired fences
        self.dispatch()

    # Internals.

    def advance(self, now: int) -> None:
        assert now >= self.now, "time never runs backwards"
        self.now = now

    def submit(self, kind: Kind, lba: int, count: int, data: bytes) -> int:
        request = Request(self.next_request_id, kind, lba, count, data, self.now)
        self.next_request_id += 1
        self.requests[request.request_id] = request
        if self.buffer_count is not None:
            self.split(request)  # its frames leave on the next tick or receive (module docstring)
        return request.request_id

    def split(self, request: Request) -> None:
        """Cut a request into frames of at most `max_sectors` sectors each (AoEr11 §3.1)."""
        if request.kind is Kind.FLUSH:
            request.fragments = [Fragment(request, Kind.FLUSH, 0, 0)]
        for offset in range(0, request.count, self.max_sectors):
            count = min(self.max_sectors, request.count - offset)
            piece = request.data[offset * SECTOR_BYTES : (offset + count) * SECTOR_BYTES]
            request.fragments.append(Fragment(request, request.kind, request.lba + offset, count, piece))
        self.pending.extend(request.fragments)

    def has_sendable(self) -> bool:
        """Whether `dispatch` would send a queued fragment now."""
        if self.buffer_count is None or len(self.outstanding) >= self.window():
            return False
        return any(f.tag is None and self.may_send(f, self.pending[:i]) for i, f in enumerate(self.pending))

    def dispatch(self) -> None:
        """Send queued fragments in submission order while the window and the ordering rules allow."""
        if self.buffer_count is None:
            return  # the target's limits are not known yet
        for index, fragment in enumerate(self.pending):
            if len(self.outstanding) >= self.window():
                return
            if fragment.tag is None and self.may_send(fragment, self.pending[:index]):
                self.transmit(fragment)
                fragment.request.progress_at = self.now

    def may_send(self, fragment: Fragment, earlier: list[Fragment]) -> bool:
        if fragment.request.kind is Kind.FLUSH:
            return not earlier  # a flush waits for everything before it
        for other in earlier:
            if other.request.kind is Kind.FLUSH:
                return False  # nothing passes a flush, in any of its steps
            if (fragment.kind is Kind.WRITE or other.kind is Kind.WRITE) and fragment.overlaps(other):
                return False  # same sectors, one a write: keep submission order
        if fragment.kind is Kind.WRITE:
            return all(self.write_fences.get(s, self.now) <= self.now for s in fragment.sectors())
        return True

    def transmit(self, fragment: Fragment, fresh_timer: bool = True) -> None:
        """Send (or resend) a fragment under a tag no transmission in flight uses."""
        while self.next_tag in self.outstanding:
            self.next_tag = (self.next_tag + 1) % TAG_MODULUS
        fragment.tag, self.next_tag = self.next_tag, (self.next_tag + 1) % TAG_MODULUS
        fragment.sent_at = fragment.last_sent = self.now
        if fresh_timer:
            fragment.rto = self.estimator.rto()
        self.outstanding[fragment.tag] = fragment
        if fragment.kind is Kind.WRITE:
            fence = self.now + self.config.timing.max_frame_age + 1  # a copy may still land at exactly max_frame_age
            for sector in fragment.sectors():
                self.write_fences[sector] = max(self.write_fences.get(sector, 0), fence)
        self.outgoing.append(self.encode(fragment))

    def encode(self, fragment: Fragment) -> bytes:
        c = self.config
        header = AoeHeader(AOE_VERSION, 0, 0, c.major, c.minor, command_of(fragment.kind), fragment.tag)
        ethernet = EthernetHeader(self.target_mac, c.mac)
        match fragment.kind:
            case Kind.DISCOVER if c.epoch_token:
                argument = ConfigArgument(0, 0, 0, AOE_VERSION, ConfigCommand.FORCE_SET, c.epoch_token)
            case Kind.DISCOVER | Kind.VERIFY:
                argument = ConfigArgument(0, 0, 0, AOE_VERSION, ConfigCommand.READ)
            case Kind.RECLAIM:
                argument = ConfigArgument(0, 0, 0, AOE_VERSION, ConfigCommand.FORCE_SET, c.epoch_token)
            case Kind.READ:
                argument = AtaArgument(AtaFlag.EXTENDED, 0, fragment.count, READ_SECTORS_EXT, fragment.lba)
            case Kind.WRITE:
                aflags = AtaFlag.EXTENDED | AtaFlag.WRITE
                argument = AtaArgument(aflags, 0, fragment.count, WRITE_SECTORS_EXT, fragment.lba, data=fragment.data)
            case Kind.FLUSH:
                argument = AtaArgument(0, 0, 0, FLUSH_CACHE, 0)  # FLUSH CACHE: vblade aborts the EXT form
        return encode_frame(Frame(ethernet, header, argument))

    def process_config_response(self, response: Frame, fragment: Fragment) -> None:
        if response.header.flags & HeaderFlag.ERROR:
            self.ignored_frames += 1  # a refusal teaches nothing: ask again when the timer runs out
            return
        del self.outstanding[fragment.tag]
        self.estimator.sample(self.now - fragment.sent_at)
        advertised = response.argument.sector_count or DEFAULT_MAX_SECTORS  # AoEr11 §3.2: 0 means 2
        self.max_sectors = max(1, min(advertised, sectors_per_frame(self.config.mtu), MAX_SECTOR_COUNT_FIELD))
        self.buffer_count = response.argument.buffer_count
        self.target_mac = response.ethernet.source
        self.discovery = None
        for request in sorted(self.requests.values(), key=lambda r: r.request_id):
            self.split(request)  # requests submitted before discovery, in submission order

    def process_ata_response(self, response: Frame, fragment: Fragment) -> None:
        request, a = fragment.request, response.argument
        if response.header.flags & HeaderFlag.ERROR:
            self.fail(request, AtaErrorBit.ABRT, response.header.error)  # the target refused the AoE message
            return
        if a.cmd_status & (AtaStatus.ERR | AtaStatus.DF):
            self.fail(request, a.err_feature or AtaErrorBit.ABRT, 0)  # the ATA command failed (IDNF, ABRT, UNC)
            return
        if fragment.kind is Kind.READ and len(a.data) < fragment.count * SECTOR_BYTES:
            self.ignored_frames += 1  # a read answer without its sectors: wait for the retransmission
            return
        self.answered(fragment)
        if fragment.kind is Kind.FLUSH and self.config.epoch_token:
            self.next_step(fragment, Kind.VERIFY)  # durable only if the target that flushed took the writes
            return
        if fragment.kind is Kind.READ:
            request.pieces[fragment.lba] = a.data[: fragment.count * SECTOR_BYTES]
        self.fragment_done(fragment)

    def process_epoch_response(self, response: Frame, fragment: Fragment) -> None:
        """A flush's check that the target has not restarted since it was claimed (see the README)."""
        if response.header.flags & HeaderFlag.ERROR:
            self.ignored_frames += 1  # a refusal teaches nothing: ask again when the timer runs out
            return
        self.answered(fragment)
        if fragment.kind is Kind.RECLAIM:
            self.fail(fragment.request, AtaErrorBit.ABRT, 0)  # writes acknowledged before the restart may be lost
        elif response.argument.config == self.config.epoch_token:
            self.fragment_done(fragment)  # same incarnation since the claim: the flush covered every write
        else:
            self.target_restarts += 1  # the target restarted and forgot our token, and any unflushed write
            self.next_step(fragment, Kind.RECLAIM)

    def answered(self, fragment: Fragment) -> None:
        """The live transmission of `fragment` got its answer."""
        del self.outstanding[fragment.tag]
        self.estimator.sample(self.now - fragment.sent_at)
        fragment.request.progress_at = self.now

    def next_step(self, fragment: Fragment, kind: Kind) -> None:
        """Send the next step of a multi-step request; it keeps its place (and its barrier) in `pending`."""
        fragment.kind = kind
        self.transmit(fragment)

    def fragment_done(self, fragment: Fragment) -> None:
        request = fragment.request
        self.pending.remove(fragment)
        request.fragments.remove(fragment)
        if not request.fragments:
            data = b"".join(request.pieces[lba] for lba in sorted(request.pieces))
            self.finish(request, Completion(request.request_id, True, data))

    def fail(self, request: Request, ata_error: int, aoe_error: int) -> None:
        """Abandon every fragment of a request; copies already sent stay fenced until they age out."""
        for fragment in request.fragments:
            if fragment.tag is not None:
                self.outstanding.pop(fragment.tag, None)
            self.pending.remove(fragment)
        request.fragments.clear()
        self.finish(request, Completion(request.request_id, False, ata_error=int(ata_error), aoe_error=int(aoe_error)))

    def finish(self, request: Request, completion: Completion) -> None:
        del self.requests[request.request_id]
        self.completions.append(completion)


def one_write_in_flight_per_sector(initiator: AoeInitiator) -> bool:
    """The catalogue's `one_write_in_flight_per_sector` over the writes this initiator has awaiting an answer."""
    return invariants.one_write_in_flight_per_sector(
        (lba, count) for _, kind, lba, count in initiator.in_flight() if kind is Kind.WRITE
    )


def window_respected(initiator: AoeInitiator) -> bool:
    """No more transmissions await an answer than the target's buffer count allows."""
    return len(initiator.in_flight()) <= initiator.window()


def command_of(kind: Kind) -> int:
    return AoeCommand.QUERY_CONFIG if kind in (Kind.DISCOVER, Kind.VERIFY, Kind.RECLAIM) else AoeCommand.ATA


def check_range(lba: int, count: int) -> None:
    if count <= 0:
        raise ValueError("a request covers at least one sector")
    if lba < 0 or lba + count > LBA48_LIMIT:
        raise ValueError("the sectors must lie within the 48-bit address space")
