"""A storage server around the spec target: it queues, takes time, crashes and restarts.

Requests wait in a queue of `buffer_count` entries (AoEr11 §3.2: what does not
fit is dropped) and each takes `service_time` ticks. A crash loses the queue,
the target's in-memory state (config string, mask and reserve lists) and every
write not yet flushed, except cached sectors the medium happened to write on
its own; a restart brings the target back over the durable image. While down,
the server hears nothing.

A request can now be older than the network's delay when it is served: an
initiator's `max_frame_age` must cover max network delay + buffer_count ·
service_time.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.target import AoeTarget, Port, TargetConfig


@dataclass
class AoeServerModel:
    config: TargetConfig
    port: Port
    store: MemoryDurableStore
    service_time: int = 0  # ticks per request
    target: AoeTarget = None  # type: ignore[assignment]
    up: bool = True
    queue: deque[tuple[int, bytes]] = field(default_factory=deque)  # (arrival, frame)
    busy_until: int = 0
    dropped_full: int = 0
    crashes: int = 0

    def __post_init__(self):
        self.target = AoeTarget(self.config, self.store)

    def deliver(self, frame: bytes, now: int) -> None:
        """A frame arrives; it waits its turn, or is dropped when the queue is full or the server down."""
        if not self.up:
            return
        if len(self.queue) >= self.config.buffer_count:
            self.dropped_full += 1
            return
        self.queue.append((now, frame))

    def poll(self, now: int) -> list[bytes]:
        """The responses of every request whose service has finished by `now`."""
        responses = []
        while self.up and self.queue:
            arrival, frame = self.queue[0]
            done = max(arrival, self.busy_until) + self.service_time
            if done > now:
                break
            self.queue.popleft()
            self.busy_until = done
            responses += self.target.process_frame(frame, self.port)
        return responses

    def next_completion(self) -> int | None:
        """When the request at the head of the queue will have been served, or None."""
        if not self.up or not self.queue:
            return None
        return max(self.queue[0][0], self.busy_until) + self.service_time

    def crash(self, cached_sector_survives: Callable[[int], bool] = lambda lba: False) -> None:
        """Power fails: queued requests and everything volatile are gone."""
        self.up = False
        self.crashes += 1
        self.queue.clear()
        self.store.crash(cached_sector_survives)

    def restart(self, now: int) -> None:
        """Come back over the durable image with a fresh target state."""
        self.target = AoeTarget(self.config, self.store)
        self.busy_until = now
        self.up = True
