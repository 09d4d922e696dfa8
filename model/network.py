"""An Ethernet segment that drops, duplicates, delays and reorders frames, deterministically.

Every random choice comes from the `random.Random` given (seeded, or a
Hypothesis `st.randoms()`), so a failing run replays exactly. Frames are padded
to the Ethernet minimum like a real NIC pads them; frames longer than the MTU
allows are dropped like a real switch drops them. Each copy of a frame is
delayed independently, uniformly in [min_delay, max_delay], which is what
reorders them. No frame is older than `max_delay` when it is delivered: that
bound is the network's part of an initiator's `max_frame_age`.
"""

import heapq
import random
from dataclasses import dataclass, field

from spec.aoe.constants import BROADCAST_MAC, ETHERNET_HEADER_BYTES
from spec.aoe.frames import pad_to_minimum


@dataclass(frozen=True)
class Faults:
    drop: float = 0.0  # probability that one copy is lost
    duplicate: float = 0.0  # probability that a frame is delivered twice
    min_delay: int = 0  # ticks
    max_delay: int = 0  # ticks


@dataclass
class NetworkStats:
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    oversized: int = 0
    delivered: int = 0


@dataclass
class FaultyNetwork:
    faults: Faults
    rng: random.Random
    mtu: int = 9000
    stations: set[bytes] = field(default_factory=set)
    in_transit: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)  # heap of (due, seq, to, frame)
    stats: NetworkStats = field(default_factory=NetworkStats)
    sequence: int = 0

    def attach(self, mac: bytes) -> None:
        self.stations.add(mac)

    def send(self, frame: bytes, now: int) -> None:
        """Put a frame on the wire at `now`; it reaches every addressed station but its sender."""
        self.stats.sent += 1
        if len(frame) > self.mtu + ETHERNET_HEADER_BYTES:
            self.stats.oversized += 1  # larger than the segment carries
            return
        frame = pad_to_minimum(frame)  # IEEE 802.3: NICs pad short frames
        destination, source = frame[0:6], frame[6:12]
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        self.stats.duplicated += copies - 1
        for station in sorted(self.stations):
            if station == source or destination not in (station, BROADCAST_MAC):
                continue
            for _ in range(copies):
                if self.rng.random() < self.faults.drop:
                    self.stats.dropped += 1
                    continue
                due = now + self.rng.randint(self.faults.min_delay, self.faults.max_delay)
                heapq.heappush(self.in_transit, (due, self.sequence, station, frame))
                self.sequence += 1

    def receive(self, mac: bytes, now: int) -> list[bytes]:
        """Every frame due at `mac` by `now`, earliest first."""
        due, later = [], []
        while self.in_transit and self.in_transit[0][0] <= now:
            entry = heapq.heappop(self.in_transit)
            (due if entry[2] == mac else later).append(entry)
        for entry in later:
            heapq.heappush(self.in_transit, entry)
        self.stats.delivered += len(due)
        return [frame for _, _, _, frame in due]

    def next_delivery(self) -> int | None:
        """When the next frame arrives anywhere, or None if nothing is in transit."""
        return self.in_transit[0][0] if self.in_transit else None
