"""The ways a test reaches the server: through the AoE models, through a wire it controls, or directly.

Each exposes the remote request device the storage manager uses (`device`)
and the same controls: `items` (whether anything can happen next), `progress`
(let the next thing happen, or lose it; returns ticks to wait, if any),
`tick`, `server_crash`, `client_restart` and `server_data` (what the server's
medium holds now).

`ModelLink` is the whole world of the AoE chapter: the spec initiator, the
faulty network (`model/network.py`: drops, duplicates, delays and reorders
from a seeded random source), the queueing, crashing server
(`model/aoe_server.py`) around the spec target. The stateful test runs it.

`AoeLink` runs the spec's AoE initiator and target with every frame on a
wire the test controls: deliver any frame (so frames reorder), drop it, or
duplicate it. A frame older than `TIMING.max_frame_age` is gone, the one
promise the initiator's write fences rely on (no frame outlives that in a LAN). `DirectLink` completes requests without frames, for the
hand-written scenarios that name exactly which request completes when.
"""

import random
from collections.abc import Callable

from model.aoe_server import AoeServerModel
from model.network import Faults, FaultyNetwork
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.initiator import AoeInitiator, InitiatorConfig, Timing
from spec.aoe.target import AoeTarget, Port, TargetConfig, TargetState
from spec.ata.backing_store import SECTOR_BYTES
from tests.storage.direct_server import DirectServer

CLIENT_MAC = bytes.fromhex("020000000001")
SERVER_MAC = bytes.fromhex("0200000000aa")
MAJOR, MINOR = 7, 1
PORT = Port(SERVER_MAC, 1500)  # two sectors per frame: requests of a block or more are split
TIMING = Timing(initial_rto=20, min_rto=5, max_rto=80, deadline=400, max_frame_age=10)
REBOOT_TICKS = 100  # a restart takes longer than any frame lives (TIMING.max_frame_age)


MODEL_BUFFER_COUNT, MODEL_SERVICE_TICKS = 4, 1
CALM = Faults()
# The network's delay plus a full server queue must stay within the initiator's max_frame_age (model/aoe_server.py).
assert 4 + MODEL_BUFFER_COUNT * MODEL_SERVICE_TICKS <= TIMING.max_frame_age


def served_store(image: bytes) -> MemoryDurableStore:
    store = MemoryDurableStore(len(image) // SECTOR_BYTES)
    store.write(0, image)
    store.flush()
    return store


class ModelLink:
    def __init__(self, image: bytes, now: int = 0, rng: random.Random | None = None):
        self.now = now
        self.network = FaultyNetwork(CALM, rng or random.Random(0), mtu=PORT.mtu)
        self.network.attach(CLIENT_MAC)
        self.network.attach(SERVER_MAC)
        self.store = served_store(image)
        config = TargetConfig(MAJOR, MINOR, buffer_count=MODEL_BUFFER_COUNT)
        self.server = AoeServerModel(config, PORT, self.store, MODEL_SERVICE_TICKS)
        self.device = self._new_initiator(now)

    def _new_initiator(self, now: int) -> AoeInitiator:
        self.device = AoeInitiator(InitiatorConfig(CLIENT_MAC, MAJOR, MINOR, timing=TIMING), now=now)
        self.pump(now)
        return self.device

    def set_faults(self, faults: Faults) -> None:
        # A delay beyond the initiator's frame age would break the promise its write fences rely on.
        assert faults.max_delay + MODEL_BUFFER_COUNT * MODEL_SERVICE_TICKS <= TIMING.max_frame_age
        self.network.faults = faults

    def pump(self, now: int, client_listens: bool = True) -> None:
        """Move every frame that is due at `now`: initiator -> network -> server -> network -> initiator."""
        self.now = max(self.now, now)
        for _ in range(8):  # a zero-delay round trip completes within a few passes
            for frame in self.device.take_outgoing():
                self.network.send(frame, self.now)
            for frame in self.network.receive(SERVER_MAC, self.now):
                self.server.deliver(frame, self.now)
            for frame in self.server.poll(self.now):
                self.network.send(frame, self.now)
            for frame in self.network.receive(CLIENT_MAC, self.now):
                if client_listens:
                    self.device.receive(frame, self.now)

    def next_event(self) -> int | None:
        times = [self.network.next_delivery(), self.server.next_completion()]
        return min((t for t in times if t is not None), default=None)

    def items(self) -> int:
        self.pump(self.now)
        return int(self.next_event() is not None)

    def progress(self, index: int, ok: bool, now: int) -> int:
        """Ticks until the network or the server has something to deliver; the clock is the caller's."""
        due = self.next_event()
        return 0 if due is None else max(1, due - now)

    def tick(self, now: int) -> None:
        self.pump(now)
        self.device.tick(self.now)
        self.pump(now)

    def server_crash(self, cached_sector_survives: Callable[[int], bool] = lambda lba: False) -> None:
        """The server loses power; it stays down until `server_restart`."""
        self.server.crash(cached_sector_survives)

    def server_restart(self) -> None:
        self.server.restart(self.now)

    def client_restart(self, now: int, keep: Callable[[], bool]) -> AoeInitiator:
        """The client lost power: frames already sent still travel to the server while it reboots; then a new initiator."""
        for moment in range(self.now, now + 1):
            self.pump(moment, client_listens=False)
        return self._new_initiator(now)

    def server_data(self, lba: int, count: int) -> bytes:
        return self.store.read(lba, count)


class AoeLink:
    def __init__(self, image: bytes, now: int = 0):
        store = MemoryDurableStore(len(image) // SECTOR_BYTES)
        store.write(0, image)
        store.flush()
        self.store = store
        self.target = AoeTarget(TargetConfig(MAJOR, MINOR, buffer_count=4), store)
        self.wire: list[tuple[str, bytes, int]] = []  # (direction, frame, time sent) in the order sent
        self.now = now
        self.device = self._new_initiator(now)

    def _new_initiator(self, now: int) -> AoeInitiator:
        initiator = AoeInitiator(InitiatorConfig(CLIENT_MAC, MAJOR, MINOR, timing=TIMING), now=now)
        self.device = initiator
        self.pump()
        return initiator

    def pump(self) -> None:
        """Frames the initiator sends now go on the wire (a submission only queues until it is given the time)."""
        self.device.tick(self.now)
        self.wire.extend(("to target", frame, self.now) for frame in self.device.take_outgoing())

    def age_out(self, now: int) -> None:
        self.now = max(self.now, now)
        self.wire = [w for w in self.wire if self.now - w[2] <= TIMING.max_frame_age]

    def items(self) -> int:
        self.pump()
        return len(self.wire)

    def progress(self, index: int, ok: bool, now: int) -> None:
        """Deliver one frame (any one: the network reorders), or lose it."""
        self.age_out(now)
        self.pump()
        if not self.wire:
            return
        direction, frame, _ = self.wire.pop(index % len(self.wire))
        if ok:
            self.deliver(direction, frame, now)

    def duplicate(self, index: int) -> None:
        self.pump()
        self.wire.append(self.wire[index % len(self.wire)])

    def inject(self, direction: str, frame: bytes) -> None:
        self.wire.append((direction, frame, self.now))

    def deliver(self, direction: str, frame: bytes, now: int) -> None:
        if direction == "to target":
            responses = self.target.process_frame(frame, PORT)
            self.wire.extend(("to client", response, self.now) for response in responses)
        else:
            self.device.receive(frame, now)
            self.pump()

    def tick(self, now: int) -> None:
        self.age_out(now)
        self.device.tick(now)
        self.pump()

    def server_crash(self, cached_sector_survives: Callable[[int], bool] = lambda lba: False) -> None:
        """The server loses its volatile cache and what it learned from the network; frames in flight stay."""
        self.store.crash(cached_sector_survives)
        self.target.state = TargetState()

    def client_restart(self, now: int, keep: Callable[[], bool]) -> AoeInitiator:
        """The client lost power: each request frame already sent still reaches the server or not; then a new initiator."""
        self.pump()
        for direction, frame, _ in self.wire:
            if direction == "to target" and keep():
                self.target.process_frame(frame, PORT)
        self.wire.clear()  # the reboot outlasts every frame still travelling
        self.now = now
        return self._new_initiator(now)

    def server_data(self, lba: int, count: int) -> bytes:
        return self.store.read(lba, count)


class DirectLink:
    def __init__(self, image: bytes, now: int = 0):
        self.device = DirectServer(image)

    def items(self) -> int:
        return len(self.device.pending)

    def progress(self, index: int, ok: bool, now: int) -> None:
        ids = self.device.pending_ids()
        self.device.complete(ids[index % len(ids)], ok)

    def tick(self, now: int) -> None:
        pass

    def server_crash(self, cached_sector_survives: Callable[[int], bool] = lambda lba: False) -> None:
        self.device.crash()

    def client_restart(self, now: int, keep: Callable[[], bool]) -> DirectServer:
        for request in list(self.device.pending.values()):
            if request.kind == "write" and keep():
                self.device.apply_write(request.lba, request.data)
        self.device.forget_client()
        return self.device

    def server_data(self, lba: int, count: int) -> bytes:
        return self.device.read_now(lba, count)
