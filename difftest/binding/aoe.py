"""The C AoE initiator (impl/vmm/core/aoe) behind the interface of spec.aoe.initiator.AoeInitiator.

One test drives either: `CoreAoeInitiator(config, now)` accepts the spec's `InitiatorConfig`, raises
`ValueError` where the spec does, and returns the spec's `Completion` values. The C side keeps every
write's data and read's destination in buffers this object owns, as the VMM's storage manager does.
"""

import ctypes

from difftest.binding import load_core
from spec.aoe.constants import SECTOR_BYTES
from spec.aoe.initiator import Completion, InitiatorConfig, Kind

FRAME_CAPACITY = 10_000  # larger than any frame at a jumbo MTU
MAX_REQUESTS = 1024  # impl/vmm/core/aoe/aoe_initiator.h AOE_MAX_REQUESTS: unfinished requests plus untaken completions

ERRORS = {
    -1: "a request covers at least one sector",
    -2: "the sectors must lie within the 48-bit address space",
    -3: "write data must be a positive whole number of 512-byte sectors",
    -4: "the C initiator's tables are full",
    -5: "time never runs backwards",
    -6: "max_window exceeds the C initiator's tables, or the epoch token does not fit the 1024-byte config string",
}
KINDS = (Kind.READ, Kind.WRITE, Kind.FLUSH, Kind.DISCOVER, Kind.VERIFY, Kind.RECLAIM)


class Timing(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("initial_rto", "min_rto", "max_rto", "deadline", "max_frame_age")]


class Config(ctypes.Structure):
    _fields_ = [
        ("mac", ctypes.c_uint8 * 6),
        ("major", ctypes.c_uint16),
        ("minor", ctypes.c_uint8),
        ("mtu", ctypes.c_uint32),
        ("target_mac", ctypes.c_uint8 * 6),
        ("max_window", ctypes.c_uint32),
        ("timing", Timing),
        ("epoch_token", ctypes.c_char_p),
        ("epoch_token_bytes", ctypes.c_uint32),
    ]


class CCompletion(ctypes.Structure):
    _fields_ = [("request_id", ctypes.c_uint64), ("ok", ctypes.c_uint8), ("ata_error", ctypes.c_uint8), ("aoe_error", ctypes.c_uint8)]


class CInFlight(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_uint32), ("kind", ctypes.c_uint8), ("lba", ctypes.c_uint64), ("count", ctypes.c_uint32)]


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, u64, i64 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64
    lib.aoe_initiator_state_bytes.restype = ctypes.c_size_t
    lib.aoe_initiator_init.argtypes = [p, ctypes.POINTER(Config), u64]
    lib.aoe_submit_read.argtypes = [p, u64, u64, p]
    lib.aoe_submit_read.restype = i64
    lib.aoe_submit_write.argtypes = [p, u64, p, u64]
    lib.aoe_submit_write.restype = i64
    lib.aoe_submit_flush.argtypes = [p]
    lib.aoe_submit_flush.restype = i64
    lib.aoe_receive.argtypes = [p, ctypes.c_char_p, ctypes.c_size_t, u64]
    lib.aoe_tick.argtypes = [p, u64]
    lib.aoe_take_outgoing.argtypes = [p, p, ctypes.c_size_t]
    lib.aoe_take_outgoing.restype = ctypes.c_size_t
    lib.aoe_take_completion.argtypes = [p, ctypes.POINTER(CCompletion)]
    lib.aoe_in_flight.argtypes = [p, ctypes.POINTER(CInFlight), ctypes.c_size_t]
    lib.aoe_in_flight.restype = ctypes.c_size_t
    lib.aoe_window.argtypes = [p]
    lib.aoe_window.restype = ctypes.c_uint32
    lib.aoe_next_timer.argtypes = [p, ctypes.POINTER(u64)]
    lib.aoe_ignored_frames.argtypes = [p]
    lib.aoe_ignored_frames.restype = u64
    lib.aoe_target_restarts.argtypes = [p]
    lib.aoe_target_restarts.restype = u64
    return lib


def c_config(config: InitiatorConfig) -> Config:
    t = config.timing
    return Config(
        (ctypes.c_uint8 * 6)(*config.mac),
        config.major,
        config.minor,
        config.mtu,
        (ctypes.c_uint8 * 6)(*config.target_mac),
        config.max_window,
        Timing(t.initial_rto, t.min_rto, t.max_rto, t.deadline, t.max_frame_age),
        config.epoch_token,
        len(config.epoch_token),
    )


class CoreAoeInitiator:
    def __init__(self, config: InitiatorConfig, now: int = 0, library: ctypes.CDLL | None = None):
        self.lib = declare(library or load_core())
        self.config = config
        self.state = ctypes.create_string_buffer(self.lib.aoe_initiator_state_bytes())
        self.buffers: dict[int, ctypes.Array] = {}  # request id -> the buffer the C side reads or fills
        self.reads: dict[int, int] = {}  # request id -> bytes a successful read returns
        self.outgoing_buffer = ctypes.create_string_buffer(FRAME_CAPACITY)
        self.c_config = c_config(config)  # kept alive: the C state points at its epoch token
        self.check(self.lib.aoe_initiator_init(self.state, ctypes.byref(self.c_config), now))

    @staticmethod
    def check(result: int) -> int:
        if result < 0:
            raise (AssertionError if result == -5 else ValueError)(ERRORS[result])
        return result

    # The storage manager's side.

    def submit_read(self, lba: int, count: int) -> int:
        if count <= 0 or lba < 0:
            raise ValueError(ERRORS[-1] if count <= 0 else ERRORS[-2])
        buffer = ctypes.create_string_buffer(max(0, min(count, 1 << 16)) * SECTOR_BYTES)
        request_id = self.check(self.lib.aoe_submit_read(self.state, lba, count, buffer))
        self.buffers[request_id], self.reads[request_id] = buffer, count * SECTOR_BYTES
        return request_id

    def submit_write(self, lba: int, data: bytes) -> int:
        if lba < 0:
            raise ValueError(ERRORS[-2])
        buffer = ctypes.create_string_buffer(bytes(data), len(data))
        request_id = self.check(self.lib.aoe_submit_write(self.state, lba, buffer, len(data)))
        self.buffers[request_id] = buffer
        return request_id

    def submit_flush(self) -> int:
        return self.check(self.lib.aoe_submit_flush(self.state))

    def take_outgoing(self) -> list[bytes]:
        frames = []
        while length := self.lib.aoe_take_outgoing(self.state, self.outgoing_buffer, FRAME_CAPACITY):
            frames.append(self.outgoing_buffer.raw[:length])
        return frames

    def take_completions(self) -> list[Completion]:
        done, c = [], CCompletion()
        while self.lib.aoe_take_completion(self.state, ctypes.byref(c)):
            buffer = self.buffers.pop(c.request_id, None)
            data = b""
            if c.ok and c.request_id in self.reads:
                data = buffer.raw[: self.reads[c.request_id]]
            self.reads.pop(c.request_id, None)
            done.append(Completion(c.request_id, bool(c.ok), data, c.ata_error, c.aoe_error))
        return done

    def in_flight(self) -> list[tuple[int, Kind, int, int]]:
        entries = (CInFlight * 128)()
        total = self.lib.aoe_in_flight(self.state, entries, 128)
        return sorted((e.tag, KINDS[e.kind], e.lba, e.count) for e in entries[:total])

    def next_timer(self) -> int | None:
        when = ctypes.c_uint64()
        return when.value if self.lib.aoe_next_timer(self.state, ctypes.byref(when)) else None

    def window(self) -> int:
        return self.lib.aoe_window(self.state)

    @property
    def ignored_frames(self) -> int:
        return self.lib.aoe_ignored_frames(self.state)

    @property
    def target_restarts(self) -> int:
        return self.lib.aoe_target_restarts(self.state)

    # The network's side.

    def receive(self, frame: bytes, now: int) -> None:
        self.check(self.lib.aoe_receive(self.state, frame, len(frame), now))

    def tick(self, now: int) -> None:
        self.check(self.lib.aoe_tick(self.state, now))
