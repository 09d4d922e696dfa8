"""The C storage manager (impl/vmm/core/storage) behind the interface of spec.storage.manager.StorageManager.

`CoreStorageManager(preset, identity, policy, local, remote, now, observer)` takes the same arguments as
the spec's manager. The local device is any Python object with the spec's request interface (the model
local disk); the remote device is either the C AoE initiator (`CoreAoeInitiator`), which the C manager
then drives directly as the VMM does, or any Python request device (the direct server of the
hand-written scenarios). Errors the spec raises (ValueError, PolicyError, DevirtualizeError) are raised
here for the same calls; a "cannot happen" in C raises AssertionError.
"""

import ctypes
import re

from difftest.binding.aoe import CoreAoeInitiator
from difftest.binding import CoreStore, CoreStoreRequest, CoreStoreResult, load_core
from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, StoreResult, WriteSectors
from spec.storage.block_state import BlockEvent, BlockState, next_block_state
from spec.storage.devices import Completion
from spec.storage.devirtualize import DEVIRTUALIZE_SEQUENCE, DevirtualizeError
from spec.storage.manager import Device, Outstanding, Phase
from spec.storage.parameters import Preset
from spec.storage.persistent_map import MapRejection, normalize_identity
from spec.storage.policy import Policy, PolicyError

POLICIES = (Policy.NETWORK, Policy.CACHE, Policy.INSTALL, Policy.PASSTHROUGH)
PHASES = (Phase.STARTING, Phase.RUNNING, Phase.SWITCHING, Phase.DEVIRTUALIZED)
STATES = (BlockState.ABSENT, BlockState.FETCHING, BlockState.WRITING, BlockState.PRESENT)
EVENTS = tuple(BlockEvent)  # the C enum follows the spec's order
KINDS = (ReadSectors, WriteSectors, Flush)
PURPOSES = ("guest", "fill read", "fill write", "commit", "map read", "switch flush")
NONZERO = re.compile(rb"[^\x00]")  # a used slot's flag
COMMIT_STEPS = ("flush before", "write map", "flush after")
REJECTIONS = (None, *MapRejection)
BLOCKERS = (
    "policy is not install",
    "a block is not present",
    "the persisted map does not mark every block present",
    "requests are in flight",
)
ERRORS = {
    -1: (ValueError, "policy {policy} needs a local disk"),
    -2: (ValueError, "passthrough is entered only by de-virtualization"),
    -3: (AssertionError, "a device starts one request at a time"),
    -4: (PolicyError, "cannot change policy while {phase}"),
    -5: (PolicyError, "already in policy {policy}"),
    -6: (PolicyError, "{current} -> {policy} is not a legal transition"),
    -7: (PolicyError, "passthrough is entered only by de-virtualization"),
    -8: (DevirtualizeError, "de-virtualization is blocked"),
    -9: (ValueError, "the region is too small"),
}

c_u8, c_u32, c_u64, c_i64, c_p = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_void_p


class CCompletion(ctypes.Structure):
    _fields_ = [("request_id", c_i64), ("ok", c_u8), ("ata_error", c_u8)]


SUBMIT_READ = ctypes.CFUNCTYPE(c_i64, c_p, c_u64, c_u64, c_p)
SUBMIT_WRITE = ctypes.CFUNCTYPE(c_i64, c_p, c_u64, c_p, c_u64)
SUBMIT_FLUSH = ctypes.CFUNCTYPE(c_i64, c_p)
TAKE_COMPLETION = ctypes.CFUNCTYPE(ctypes.c_int, c_p, ctypes.POINTER(CCompletion))


class CDevice(ctypes.Structure):
    _fields_ = [
        ("context", c_p),
        ("submit_read", SUBMIT_READ),
        ("submit_write", SUBMIT_WRITE),
        ("submit_flush", SUBMIT_FLUSH),
        ("take_completion", TAKE_COMPLETION),
    ]


class CRequest(ctypes.Structure):
    _fields_ = [("kind", c_u8), ("lba", c_u64), ("count", c_u64), ("buffer", c_p)]


class CResult(ctypes.Structure):
    _fields_ = [("ok", c_u8), ("error", c_u8)]


class CSegment(ctypes.Structure):
    _fields_ = [
        ("device", c_u8), ("kind", c_u8), ("completed", c_u8), ("ok", c_u8), ("ata_error", c_u8),
        ("lba", c_u64), ("count", c_u64), ("offset", c_u64), ("request_id", c_i64),
    ]


class COutstanding(ctypes.Structure):
    _fields_ = [
        ("used", c_u8), ("purpose", c_u8), ("kind", c_u8), ("request_id", c_i64),
        ("argument", c_u64), ("lba", c_u64), ("count", c_u64),
    ]


class CFill(ctypes.Structure):
    _fields_ = [("used", c_u8), ("stage", c_u8), ("block", c_u32)]


class CGeometry(ctypes.Structure):
    _fields_ = [("sectors_per_block", c_u32), ("block_count", c_u32)]


class CFillParameters(ctypes.Structure):
    _fields_ = [(name, c_u32) for name in ("max_in_flight", "tokens_per_tick", "token_burst", "commit_every")]


class CConfig(ctypes.Structure):
    _fields_ = [
        ("geometry", CGeometry), ("fill", CFillParameters), ("identity", c_u8 * 32),
        ("policy", c_u8), ("has_local", c_u8),
    ]


class CMapRecord(ctypes.Structure):
    _fields_ = [("generation", c_u64), ("policy", c_u8), ("clean", c_u8), ("present", c_p)]


class CRecovery(ctypes.Structure):
    _fields_ = [
        ("has_newest", c_u8), ("slot", c_u8), ("newest", CMapRecord), ("rejections", c_u8 * 2),
        ("trusted", c_u8), ("next_slot", c_u8), ("next_generation", c_u64),
    ]


class CManager(ctypes.Structure):
    _fields_ = [
        ("config", CConfig), ("local", CDevice), ("remote", CDevice),
        ("phase", c_u8), ("policy", c_u8), ("durable_clean", c_u8), ("next_slot", c_u8),
        ("next_generation", c_u64), ("now", c_u64), ("tokens", c_u64), ("fills_since_commit", c_u64),
        ("guest_active", c_u8), ("guest_issued", c_u8), ("guest_server_flushed", c_u8), ("guest_has_ticket", c_u8),
        ("guest_ticket_done", c_u8), ("guest_ticket_ok", c_u8), ("guest_has_result", c_u8),
        ("guest", CRequest), ("guest_result", CResult), ("guest_ticket", c_u64), ("segment_total", c_u32),
        ("fills", CFill * 16), ("demanded_total", c_u32),
        ("commit_active", c_u8), ("commit_policy", c_u8), ("commit_clean", c_u8), ("commit_step", c_u8),
        ("commit_number", c_u64), ("commit_request_id", c_i64),
        ("commit_wanted", c_u8), ("commit_wanted_policy", c_u8), ("commit_wanted_clean", c_u8),
        ("commits_started", c_u64),
        ("has_pending_policy", c_u8), ("pending_policy", c_u8), ("switch_flush", c_u8), ("broken", c_u8),
        ("switch_commit", c_u8), ("switch_commit_policy", c_u8), ("switch_commit_clean", c_u8),
        ("has_switch_commit_number", c_u8), ("switch_commit_done", c_u8), ("switch_commit_ok", c_u8),
        ("switch_commit_number", c_u64),
        ("recovery", CRecovery),
        ("transitions", (c_u32 * 7) * 4), ("policy_changes", (c_u32 * 4) * 4),
        ("outstanding_capacity", c_u32), ("segment_capacity", c_u32),
        ("blocks", ctypes.POINTER(c_u8)), ("persisted", ctypes.POINTER(c_u8)), ("snapshot", ctypes.POINTER(c_u8)),
        ("map_io", ctypes.POINTER(c_u8)), ("fill_io", ctypes.POINTER(c_u8)), ("demanded", ctypes.POINTER(c_u32)),
        ("segments", ctypes.POINTER(CSegment)),
        ("local_outstanding", ctypes.POINTER(COutstanding)), ("remote_outstanding", ctypes.POINTER(COutstanding)),
    ]


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    m = ctypes.POINTER(CManager)
    lib.storage_manager_state_bytes.restype = ctypes.c_size_t
    lib.storage_region_bytes.argtypes = [ctypes.POINTER(CConfig)]
    lib.storage_region_bytes.restype = ctypes.c_size_t
    lib.storage_manager_init.argtypes = [m, ctypes.POINTER(CConfig), ctypes.POINTER(CDevice), ctypes.POINTER(CDevice), c_p, ctypes.c_size_t, c_u64]
    lib.storage_remote_from_aoe.argtypes = [ctypes.POINTER(CDevice), c_p, c_p]
    lib.storage_sector_count.argtypes = [m]
    lib.storage_sector_count.restype = c_u64
    lib.storage_start.argtypes = [m, ctypes.POINTER(CRequest)]
    lib.storage_poll.argtypes = [m, ctypes.POINTER(CResult)]
    lib.storage_tick.argtypes = [m, c_u64]
    lib.storage_step.argtypes = [m]
    lib.storage_on_local_completion.argtypes = [m, ctypes.POINTER(CCompletion)]
    lib.storage_on_remote_completion.argtypes = [m, ctypes.POINTER(CCompletion)]
    lib.storage_request_policy.argtypes = [m, c_u8]
    lib.storage_blockers.argtypes = [m]
    lib.storage_blockers.restype = c_u32
    lib.storage_may_devirtualize.argtypes = [m]
    lib.storage_devirtualize.argtypes = [m]
    lib.storage_as_core_store.argtypes = [ctypes.POINTER(CoreStore), m]
    assert lib.storage_manager_state_bytes() == ctypes.sizeof(CManager), "the binding's layout is out of date"
    return lib


class PythonDevice:
    """A Python request device (spec/storage/devices.py) seen through the C device interface."""

    def __init__(self, device):
        self.device = device
        self.reads: dict[int, tuple[int, int]] = {}  # request id -> (buffer address, bytes)
        self.ready: list[Completion] = []
        self.c = CDevice(None, SUBMIT_READ(self.submit_read), SUBMIT_WRITE(self.submit_write),
                         SUBMIT_FLUSH(self.submit_flush), TAKE_COMPLETION(self.take_completion))

    def submit_read(self, _context, lba, count, buffer):
        request_id = self.device.submit_read(lba, count)
        self.reads[request_id] = (buffer, count * SECTOR_BYTES)
        return request_id

    def submit_write(self, _context, lba, data, count):
        return self.device.submit_write(lba, ctypes.string_at(data, count * SECTOR_BYTES))

    def submit_flush(self, _context):
        return self.device.submit_flush()

    def take_completion(self, _context, out):
        if not self.ready:
            self.ready = list(self.device.take_completions())
        if not self.ready:
            return 0
        completion = self.ready.pop(0)
        address, length = self.reads.pop(completion.request_id, (None, 0))
        if address is not None and completion.ok:
            ctypes.memmove(address, completion.data, min(length, len(completion.data)))
        out.contents.request_id = completion.request_id
        out.contents.ok = completion.ok
        out.contents.ata_error = completion.ata_error
        return 1


class CoreStorageManager:
    through_core_store = False  # True: guest requests go through struct core_store, as the ATA device sends them

    def __init__(self, preset: Preset, identity: bytes, policy: Policy, local, remote, now: int = 0, observer=None):
        self.lib = declare(load_core())
        self.geometry, self.fill_parameters = preset.geometry, preset.fill
        self.identity, self.local, self.remote, self.observer = identity, local, remote, observer
        g, f = preset.geometry, preset.fill
        config = CConfig(
            CGeometry(g.sectors_per_block, g.block_count),
            CFillParameters(f.max_in_flight, f.tokens_per_tick, f.token_burst, f.commit_every),
            (c_u8 * 32)(*normalize_identity(identity)),
            POLICIES.index(policy),
            local is not None,
        )
        self.state = CManager()
        self.region = ctypes.create_string_buffer(self.lib.storage_region_bytes(ctypes.byref(config)))
        self.local_device = PythonDevice(local) if local is not None else None
        if isinstance(remote, CoreAoeInitiator):
            self.remote_device = None
            c_remote = CDevice()
            self.aoe_adapter = ctypes.create_string_buffer(256)  # struct storage_aoe_device: a pointer, 8 ids, counters
            self.lib.storage_remote_from_aoe(ctypes.byref(c_remote), self.aoe_adapter, remote.state)
        else:
            self.remote_device = PythonDevice(remote)
            c_remote = self.remote_device.c
        c_local = self.local_device.c if self.local_device else None
        self.guest_buffer = None
        self.seen_transitions = [[0] * 7 for _ in range(4)]
        self.seen_policies = [[0] * 4 for _ in range(4)]
        self.call(
            self.lib.storage_manager_init(
                ctypes.byref(self.state), ctypes.byref(config), ctypes.byref(c_local) if c_local else None,
                ctypes.byref(c_remote), self.region, len(self.region), now,
            ),
            policy=policy,
        )
        self.c_remote = c_remote  # kept alive: the C state points at it
        self.core_store = CoreStore()
        self.lib.storage_as_core_store(ctypes.byref(self.core_store), ctypes.byref(self.state))

    def call(self, result: int, **context) -> int:
        self.report()
        if result < 0:
            kind, message = ERRORS[result]
            values = {"policy": getattr(context.get("policy"), "value", ""), "phase": "", "current": ""}
            if hasattr(self, "state"):
                values.update(phase=self.phase.value, current=POLICIES[self.state.policy].value)
            raise kind(message.format(**values))
        return result

    def report(self) -> None:
        """Coverage for the observer, from the C counters: the same calls the spec's observer receives."""
        assert not self.state.broken, "the C storage manager reached an illegal block transition"
        if self.observer is None:
            return
        for s in range(4):
            for e in range(7):
                for _ in range(self.state.transitions[s][e] - self.seen_transitions[s][e]):
                    self.observer("block", (STATES[s], EVENTS[e], next_block_state(STATES[s], EVENTS[e])))
                self.seen_transitions[s][e] = self.state.transitions[s][e]
            for t in range(4):
                for _ in range(self.state.policy_changes[s][t] - self.seen_policies[s][t]):
                    self.observer("policy", (POLICIES[s], POLICIES[t]))
                self.seen_policies[s][t] = self.state.policy_changes[s][t]

    # BackingStore interface

    def sector_count(self) -> int:
        return self.lib.storage_sector_count(ctypes.byref(self.state))

    def start(self, request) -> None:
        match request:
            case ReadSectors(lba, count):
                self.guest_buffer = ctypes.create_string_buffer(max(0, count) * SECTOR_BYTES)
                c = CRequest(0, max(lba, 0), count if lba >= 0 and count > 0 else 0, ctypes.addressof(self.guest_buffer))
            case WriteSectors(lba, data):
                self.guest_buffer = ctypes.create_string_buffer(bytes(data), max(1, len(data)))
                whole = len(data) // SECTOR_BYTES if len(data) % SECTOR_BYTES == 0 and lba >= 0 else 0
                c = CRequest(1, max(lba, 0), whole, ctypes.addressof(self.guest_buffer))
            case Flush():
                c = CRequest(2, 0, 0, None)
        self.guest_request = request
        if self.through_core_store:
            buffer = ctypes.cast(c.buffer, ctypes.POINTER(c_u8)) if c.buffer else None
            self.core_store.start(self.core_store.context, ctypes.byref(CoreStoreRequest(c.kind, c.lba, c.count, buffer)))
            self.report()
            return
        self.call(self.lib.storage_start(ctypes.byref(self.state), ctypes.byref(c)))

    def poll(self) -> StoreResult | None:
        result = CResult()
        if self.through_core_store:
            answer = CoreStoreResult()
            done = self.core_store.poll(self.core_store.context, ctypes.byref(answer))
            result = CResult(answer.ok, answer.error)
        else:
            done = self.lib.storage_poll(ctypes.byref(self.state), ctypes.byref(result))
        self.report()
        if not done:
            return None
        if not result.ok:
            return StoreResult(False, error=result.error)
        if isinstance(self.guest_request, ReadSectors):
            return StoreResult(True, self.guest_buffer.raw[: self.guest_request.count * SECTOR_BYTES])
        return StoreResult(True)

    # Other inputs

    def tick(self, now: int) -> None:
        self.lib.storage_tick(ctypes.byref(self.state), now)
        self.report()

    def step(self) -> None:
        self.lib.storage_step(ctypes.byref(self.state))
        self.report()

    def on_local_completion(self, completion: Completion) -> None:
        self.lib.storage_on_local_completion(ctypes.byref(self.state), ctypes.byref(CCompletion(completion.request_id, completion.ok, completion.ata_error)))
        self.report()

    def on_remote_completion(self, completion: Completion) -> None:
        self.lib.storage_on_remote_completion(ctypes.byref(self.state), ctypes.byref(CCompletion(completion.request_id, completion.ok, completion.ata_error)))
        self.report()

    def request_policy(self, wanted: Policy) -> None:
        self.call(self.lib.storage_request_policy(ctypes.byref(self.state), POLICIES.index(wanted)), policy=wanted)

    def may_devirtualize(self) -> bool:
        return bool(self.lib.storage_may_devirtualize(ctypes.byref(self.state)))

    def devirtualize_blockers(self) -> list[str]:
        bits = self.lib.storage_blockers(ctypes.byref(self.state))
        return [reason for i, reason in enumerate(BLOCKERS) if bits >> i & 1]

    def devirtualize(self):
        if self.phase is not Phase.RUNNING:
            raise DevirtualizeError(f"manager is {self.phase.value}")
        blockers = self.devirtualize_blockers()
        if blockers:
            raise DevirtualizeError("; ".join(blockers))
        self.call(self.lib.storage_devirtualize(ctypes.byref(self.state)))
        return DEVIRTUALIZE_SEQUENCE

    # Introspection, with the spec's names

    @property
    def phase(self) -> Phase:
        return PHASES[self.state.phase]

    @property
    def policy(self) -> Policy:
        return POLICIES[self.state.policy]

    @property
    def switch_flush(self) -> bool:
        return bool(self.state.switch_flush)

    @property
    def durable_clean(self) -> bool:
        return bool(self.state.durable_clean)

    @property
    def blocks(self) -> list[BlockState]:
        return [STATES[self.state.blocks[b]] for b in range(self.geometry.block_count)]

    @property
    def persisted(self) -> frozenset[int]:
        return frozenset(b for b in range(self.geometry.block_count) if self.state.persisted[b // 8] >> (b % 8) & 1)

    @property
    def fills(self) -> dict[int, str]:
        return {f.block: ("reading", "writing")[f.stage] for f in self.state.fills if f.used}

    @property
    def demanded(self) -> list[int]:
        return [self.state.demanded[i] for i in range(self.state.demanded_total)]

    @property
    def recovery_rejections(self) -> tuple:
        return tuple(REJECTIONS[r] for r in self.state.recovery.rejections)

    def outstanding_entries(self, device: Device) -> list[COutstanding]:
        state = self.state
        t = state.local_outstanding if device is Device.LOCAL else state.remote_outstanding
        stride = ctypes.sizeof(COutstanding)
        # the `used` flags in one copy of the table, searched in C: a ctypes object per slot of the
        # table made this most of the storage machine's time
        used = ctypes.string_at(t, state.outstanding_capacity * stride)[COutstanding.used.offset::stride]
        return [t[m.start()] for m in NONZERO.finditer(used)]

    def outstanding(self, device: Device) -> list[Outstanding]:
        """The requests submitted to a device and not completed, for the invariant checks."""
        result = []
        for o in self.outstanding_entries(device):
            purpose = PURPOSES[o.purpose]
            detail = (purpose, o.argument) if purpose in ("guest", "fill read", "fill write") else (purpose,)
            result.append(Outstanding(detail, KINDS[o.kind], o.lba, o.count))
        return result
