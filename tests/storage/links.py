"""The two ways a test reaches the server: through AoE frames, or directly.

Both expose the remote request device the storage manager uses (`device`)
and the same controls: `items` (things that can happen next), `progress`
(let one happen, or fail it), `tick`, `server_crash`, `client_restart` and
`server_data` (what the server's medium holds now).

`AoeLink` runs the spec's AoE initiator and target with every frame on a
wire the test controls: deliver any frame (so frames reorder), drop it, or
duplicate it. A frame older than `TIMING.max_frame_age` is gone, the one
promise the initiator's write fences rely on (no frame outlives that in a LAN). `DirectLink` completes requests without frames, for the
hand-written scenarios that name exactly which request completes when.
"""

from collections.abc import Callable

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
        """Frames the initiator queued go on the wire."""
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

    def server_crash(self) -> None:
        """The server loses its volatile cache and what it learned from the network; frames in flight stay."""
        self.store.crash()
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

    def server_crash(self) -> None:
        self.device.crash()

    def client_restart(self, now: int, keep: Callable[[], bool]) -> DirectServer:
        for request in list(self.device.pending.values()):
            if request.kind == "write" and keep():
                self.device.apply_write(request.lba, request.data)
        self.device.forget_client()
        return self.device

    def server_data(self, lba: int, count: int) -> bytes:
        return self.device.read_now(lba, count)
