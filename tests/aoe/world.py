"""One initiator, a faulty network and a crashing server, run tick by tick, with an oracle beside them.

The oracle follows the initiator's promise: requests that touch a common sector
take effect in submission order. From the writes submitted before a read it
derives the values each sector may hold (a failed write may or may not have
landed) and checks every read and every flush against them.
"""

import random
from dataclasses import dataclass, field

from model.aoe_server import AoeServerModel
from model.clock import Clock
from model.network import Faults, FaultyNetwork
from spec.aoe.constants import SECTOR_BYTES
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.initiator import AoeInitiator, InitiatorConfig, Timing, one_write_in_flight_per_sector, window_respected
from spec.aoe.target import Port, TargetConfig
from tests.aoe.target_helpers import HOST_A, SHELF, SLOT, TARGET_MAC

MTU = 1500
FILL = b"\xee" * SECTOR_BYTES


@dataclass(frozen=True)
class Op:
    kind: str  # "read", "write", "flush"
    gap: int  # ticks after the previous submission
    lba: int = 0
    count: int = 0


@dataclass(frozen=True)
class Crash:
    at: int
    down_for: int
    survival: float  # chance that each unflushed cached sector reached the medium anyway


@dataclass
class Record:
    seq: int
    op: Op
    submitted_at: int
    data: bytes = b""
    outcome: bool | None = None  # None until completed
    completed_at: int | None = None


def sector_data(seq: int, lba: int) -> bytes:
    """A sector no other write or sector shares: which write put it there is readable from it."""
    return (seq.to_bytes(4, "big") + lba.to_bytes(4, "big")) * (SECTOR_BYTES // 8)


@dataclass
class World:
    faults: Faults
    rng: random.Random
    buffer_count: int
    service_time: int
    sectors: int = 16
    epoch_token: bytes = b""  # non-empty: the initiator checks after each flush that the server did not restart
    clock: Clock = field(default_factory=Clock)
    records: dict[int, Record] = field(default_factory=dict)  # request id -> record
    crash_times: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.network = FaultyNetwork(self.faults, self.rng, mtu=MTU)
        self.network.attach(HOST_A)
        self.network.attach(TARGET_MAC)
        age = self.faults.max_delay + self.buffer_count * (self.service_time + 1) + 1
        self.timing = Timing(initial_rto=60, min_rto=5, max_rto=400, deadline=3000, max_frame_age=age)
        config = TargetConfig(SHELF, SLOT, buffer_count=self.buffer_count)
        store = MemoryDurableStore(self.sectors, FILL[:1])
        self.server = AoeServerModel(config, Port(TARGET_MAC, MTU), store, self.service_time)
        config = InitiatorConfig(HOST_A, SHELF, SLOT, mtu=MTU, timing=self.timing, epoch_token=self.epoch_token)
        self.initiator = AoeInitiator(config)

    def run(self, ops: list[Op], crashes: list[Crash], limit: int = 200_000) -> None:
        schedule, at = [], 0
        for op in ops:
            at += op.gap
            schedule.append((at, op))
        down_until = None
        while self.clock.now < limit:
            now = self.clock.now
            while schedule and schedule[0][0] <= now:
                self.submit(schedule.pop(0)[1])
            for crash in crashes:
                if crash.at == now and self.server.up:
                    self.server.crash(lambda lba: self.rng.random() < crash.survival)
                    self.crash_times.append(now)
                    down_until = now + crash.down_for
            if down_until is not None and now >= down_until:
                self.server.restart(now)
                down_until = None
            for frame in self.network.receive(TARGET_MAC, now):
                self.server.deliver(frame, now)
            for frame in self.server.poll(now):
                self.network.send(frame, now)
            for frame in self.network.receive(HOST_A, now):
                self.initiator.receive(frame, now)
                self.collect()
            self.initiator.tick(now)
            self.collect()
            self.check_in_flight()
            for frame in self.initiator.take_outgoing():
                self.network.send(frame, now)
            if not schedule and all(r.outcome is not None for r in self.records.values()):
                return
            self.clock.advance_to(self.next_event(schedule, crashes, down_until))
        self.violations.append("requests still open at the time limit")

    def next_event(self, schedule, crashes, down_until) -> int:
        """Skip the ticks in which nothing can happen."""
        now = self.clock.now
        candidates = [
            self.network.next_delivery(),
            self.server.next_completion(),
            self.initiator.next_timer(),
            schedule[0][0] if schedule else None,
            down_until,
        ]
        candidates += [c.at for c in crashes if c.at > now]
        return max(now + 1, min((t for t in candidates if t is not None), default=now + 1))

    def submit(self, op: Op) -> None:
        seq = len(self.records)
        if op.kind == "read":
            rid = self.initiator.submit_read(op.lba, op.count)
            record = Record(seq, op, self.clock.now)
        elif op.kind == "write":
            data = b"".join(sector_data(seq, op.lba + i) for i in range(op.count))
            rid = self.initiator.submit_write(op.lba, data)
            record = Record(seq, op, self.clock.now, data)
        else:
            rid = self.initiator.submit_flush()
            record = Record(seq, op, self.clock.now)
        assert rid not in self.records, "request ids are unique"
        self.records[rid] = record

    def collect(self) -> None:
        for completion in self.initiator.take_completions():
            record = self.records[completion.request_id]
            if record.outcome is not None:
                self.violations.append(f"request {completion.request_id} completed twice")
            record.outcome, record.completed_at = completion.ok, self.clock.now
            if completion.ok and record.op.kind == "read":
                self.check_read(record, completion.data)
            if completion.ok and record.op.kind == "flush":
                self.check_flush(record)

    # The oracle.

    def writes_before(self, seq: int, lba: int) -> list[tuple[Record, bytes]]:
        found = []
        for r in sorted(self.records.values(), key=lambda r: r.seq):
            if r.seq < seq and r.op.kind == "write" and r.op.lba <= lba < r.op.lba + r.op.count:
                offset = (lba - r.op.lba) * SECTOR_BYTES
                found.append((r, r.data[offset : offset + SECTOR_BYTES]))
        return found

    def check_read(self, read: Record, data: bytes) -> None:
        if len(data) != read.op.count * SECTOR_BYTES:
            self.violations.append(f"read {read.seq} returned {len(data)} bytes")
            return
        for i in range(read.op.count):
            lba = read.op.lba + i
            got = data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]
            history = self.writes_before(read.seq, lba)
            possible = {FILL}
            for w, value in history:
                # an acknowledged write replaces; a failed one, or one whose other sectors are still going, may have landed
                possible = {value} if w.outcome else possible | {value}
            if self.crash_times:
                possible = {FILL} | {value for _, value in history}  # a crash may roll unflushed sectors back
            if got not in possible:
                self.violations.append(f"read {read.seq} of sector {lba}: guest_sees_ideal_disk violated")

    def check_flush(self, flush: Record) -> None:
        last_crash = self.crash_times[-1] if self.crash_times else -1
        for lba in range(self.sectors):
            history = self.writes_before(flush.seq, lba)
            acknowledged = [i for i, (w, _) in enumerate(history) if w.outcome]
            if not acknowledged:
                allowed = {FILL} | {value for _, value in history}
            else:
                last = acknowledged[-1]
                written = history[last][0]
                if written.submitted_at <= last_crash and not self.epoch_token:
                    continue  # AoE alone cannot tell a restart: an acknowledged write may be lost (spec/aoe/README.md)
                if written.submitted_at <= last_crash and self.flush_failed_since(written):
                    continue  # the loss was reported: a flush after the write failed
                allowed = {value for _, value in history[last:]}
            if self.server.store.durable_sector(lba) not in allowed:
                self.violations.append(f"flush {flush.seq}: sector {lba} not durable (flush_is_durable)")

    def flush_failed_since(self, write: Record) -> bool:
        return any(r.op.kind == "flush" and r.outcome is False and r.seq > write.seq for r in self.records.values())

    def check_in_flight(self) -> None:
        if len(self.initiator.in_flight()) > max(1, self.buffer_count) or not window_respected(self.initiator):
            self.violations.append(f"more frames in flight than the buffer count {self.buffer_count}")
        if not one_write_in_flight_per_sector(self.initiator):
            self.violations.append("two writes to one sector in flight (one_write_in_flight_per_sector)")
