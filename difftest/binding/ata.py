"""The C virtual ATA device (impl/vmm/core/ata) with exactly the interface of spec.ata.AtaChannel.

`CAtaChannel(store, memory, ...)` takes the same backing store and guest memory objects as the
spec and offers the same `read`, `write`, `tick`, `intrq` and `observe()`. `state` is the
abstraction function: it reads the C state and builds the spec's `ChannelState` from it, so the
spec's own invariants (spec/ata/invariants.py) run on the C device unchanged and whole states
compare with `==`. `last_actions` holds the actions of the latest event.
"""

import ctypes

from difftest.binding import (
    CORE_STORE_FLUSH,
    CORE_STORE_READ_SECTORS,
    CORE_STORE_WRITE_SECTORS,
    SECTOR_BYTES,
    CallbackErrors,
    CoreActions,
    CoreMemory,
    CoreStore,
    CoreStoreRequest,
    CoreStoreResult,
    MemoryRead,
    MemoryWrite,
    StorePoll,
    StoreSectorCount,
    StoreStart,
    check_status,
    decode_actions,
    load_core,
)
from spec.ata.backing_store import BackingStore, Flush, ReadSectors, StoreRequest, WriteSectors
from spec.ata.commands import COMMANDS
from spec.ata.constants import PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, QEMU_BUS_MASTER_BASE
from spec.ata.errors import CannotHappen
from spec.ata.prd import GuestMemory
from spec.ata.state import BusMaster, ChannelState, Observation, Phase, PowerMode, Settings, TaskFile, Transfer

PHASES = list(Phase)  # the C enum ata_protocol_phase is generated in this order
POWER_MODES = list(PowerMode)  # likewise enum ata_power_mode


# --- ctypes mirror of impl/vmm/core/ata/ata_core.h ---------------------------------------------


class CTaskFile(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint8)
        for name in (
            "features", "prev_features", "sector_count", "prev_sector_count", "lba_low", "prev_lba_low",
            "lba_mid", "prev_lba_mid", "lba_high", "prev_lba_high", "device", "error",
        )
    ]


class CSettings(ctypes.Structure):
    _fields_ = [
        ("multiple_count", ctypes.c_uint8),
        ("transfer_mode", ctypes.c_uint8),
        ("write_cache", ctypes.c_bool),
        ("heads", ctypes.c_uint8),
        ("sectors_per_track", ctypes.c_uint8),
        ("chs_valid", ctypes.c_bool),
        ("power", ctypes.c_int32),
    ]


class CTransfer(ctypes.Structure):
    _fields_ = [
        ("command_index", ctypes.c_int32),
        ("lba", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("done", ctypes.c_uint32),
        ("block_bytes", ctypes.c_uint32),
        ("position", ctypes.c_uint32),
        ("flushing", ctypes.c_bool),
    ]


class CBusMaster(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_bool),
        ("write_to_memory", ctypes.c_bool),
        ("active", ctypes.c_bool),
        ("error", ctypes.c_bool),
        ("interrupt", ctypes.c_bool),
        ("drive_dma_capable", ctypes.c_uint8),
        ("prd_pointer", ctypes.c_uint32),
    ]


class CChannelState(ctypes.Structure):
    _fields_ = [
        ("phase", ctypes.c_int32),
        ("status", ctypes.c_uint8),
        ("registers", CTaskFile),
        ("nien", ctypes.c_bool),
        ("srst", ctypes.c_bool),
        ("hob", ctypes.c_bool),
        ("interrupt_pending", ctypes.c_bool),
        ("intrq", ctypes.c_bool),
        ("store_busy", ctypes.c_bool),
        ("reset_ticks", ctypes.c_int32),
        ("command_code", ctypes.c_uint8),
        ("has_transfer", ctypes.c_bool),
        ("transfer", CTransfer),
        ("settings", CSettings),
        ("bus_master", CBusMaster),
    ]


class CObservation(ctypes.Structure):
    _fields_ = [
        ("phase", ctypes.c_int32),
        *[(name, ctypes.c_uint8) for name in ("status", "error", "sector_count", "lba_low", "lba_mid", "lba_high", "device")],
        ("previous", ctypes.c_uint8 * 4),
        ("intrq", ctypes.c_bool),
        ("bm_command", ctypes.c_uint8),
        ("bm_status", ctypes.c_uint8),
        ("bm_prd_pointer", ctypes.c_uint32),
    ]


def declare(core: ctypes.CDLL) -> ctypes.CDLL:
    """Give the ATA functions of the library their C signatures."""
    channel = ctypes.c_void_p
    actions = ctypes.POINTER(CoreActions)
    core.ata_channel_init.argtypes = [channel, CoreStore, CoreMemory, ctypes.c_uint16, ctypes.c_uint16, ctypes.c_uint16,
                                      ctypes.c_void_p, ctypes.c_uint32]
    core.ata_channel_read.argtypes = [channel, ctypes.c_uint16, ctypes.c_uint8, actions]
    core.ata_channel_write.argtypes = [channel, ctypes.c_uint16, ctypes.c_uint8, ctypes.c_uint32, actions]
    core.ata_channel_tick.argtypes = [channel, actions]
    core.ata_channel_observe.argtypes = [channel, ctypes.POINTER(CObservation)]
    core.ata_channel_decodes.argtypes = [channel, ctypes.c_uint16]
    core.ata_channel_decodes.restype = ctypes.c_bool
    core.ata_required_buffer_bytes.argtypes = [ctypes.c_uint64]
    core.ata_required_buffer_bytes.restype = ctypes.c_uint32
    core.ata_channel_state_size.restype = ctypes.c_uint32
    core.ata_channel_size.restype = ctypes.c_uint32
    core.ata_handler_for.argtypes = [ctypes.c_uint8]
    core.ata_handler_for.restype = ctypes.c_void_p
    if core.ata_channel_state_size() != ctypes.sizeof(CChannelState):
        raise CannotHappen("difftest/binding/ata.py's mirror of struct ata_channel_state has the wrong layout")
    return core


# --- The store and the memory, seen from C ---------------------------------------------------


class StoreAdapter:
    """A Python BackingStore behind the C `struct core_store`: requests go in, results come back into the C buffer."""

    def __init__(self, store: BackingStore, errors: CallbackErrors):
        self.store = store
        self.pending: tuple[StoreRequest, ctypes.POINTER(ctypes.c_uint8)] | None = None
        self.requests: list[StoreRequest] = []  # every request the device started, in order
        self.callbacks = (
            StoreSectorCount(errors.guard(lambda context: store.sector_count(), 0)),
            StoreStart(errors.guard(self._start, None)),
            StorePoll(errors.guard(self._poll, False)),
        )
        self.struct = CoreStore(None, *self.callbacks)

    def _start(self, context, request_pointer) -> None:
        request = request_pointer.contents
        match request.kind:
            case 0:  # CORE_STORE_READ_SECTORS
                spec_request = ReadSectors(request.lba, request.count)
            case 1:  # CORE_STORE_WRITE_SECTORS
                spec_request = WriteSectors(request.lba, ctypes.string_at(request.buffer, request.count * SECTOR_BYTES))
            case 2:  # CORE_STORE_FLUSH
                spec_request = Flush()
            case kind:
                raise CannotHappen(f"the core started a store request of unknown kind {kind}")
        self.pending = (spec_request, request.buffer)
        self.requests.append(spec_request)
        self.store.start(spec_request)

    def _poll(self, context, result_pointer) -> bool:
        result = self.store.poll()
        if result is None:
            return False
        request, buffer = self.pending
        self.pending = None
        if result.ok and isinstance(request, ReadSectors):
            # A successful read returns exactly the sectors asked for; anything else is a store bug.
            if len(result.data) != request.count * SECTOR_BYTES:
                raise CannotHappen(f"the store returned {len(result.data)} bytes for {request.count} sectors")
            ctypes.memmove(buffer, result.data, len(result.data))
        result_pointer.contents.ok = result.ok
        result_pointer.contents.error = result.error & 0xFF
        return True


class MemoryAdapter:
    """A Python GuestMemory behind the C `struct core_memory`."""

    def __init__(self, memory: GuestMemory, errors: CallbackErrors):
        self.memory = memory
        self.callbacks = (MemoryRead(errors.guard(self._read, False)), MemoryWrite(errors.guard(self._write, False)))
        self.struct = CoreMemory(None, *self.callbacks)

    def _read(self, context, address, buffer, length) -> bool:
        data = self.memory.read(address, length)
        if data is None:
            return False
        ctypes.memmove(buffer, data, length)
        return True

    def _write(self, context, address, buffer, length) -> bool:
        return bool(self.memory.write(address, ctypes.string_at(buffer, length)))


assert (CORE_STORE_READ_SECTORS, CORE_STORE_WRITE_SECTORS, CORE_STORE_FLUSH) == (0, 1, 2)


class CAtaChannel:
    """The C core's ATA channel, driven like spec.ata.AtaChannel."""

    def __init__(
        self,
        store: BackingStore,
        memory: GuestMemory,
        command_base: int = PRIMARY_COMMAND_BASE,
        control_port: int = PRIMARY_CONTROL_PORT,
        bus_master_base: int = QEMU_BUS_MASTER_BASE,
    ):
        self.core = declare(load_core())
        self.store = store
        self.memory = memory
        self.errors = CallbackErrors()
        self._store = StoreAdapter(store, self.errors)
        self._memory = MemoryAdapter(memory, self.errors)
        self._channel = ctypes.create_string_buffer(self.core.ata_channel_size())
        self._buffer_bytes = self.core.ata_required_buffer_bytes(store.sector_count())
        self._buffer = ctypes.create_string_buffer(self._buffer_bytes)
        self._actions = CoreActions()
        self._state = CChannelState.from_buffer(self._channel)
        self.last_actions: list[tuple] = []
        status = self.core.ata_channel_init(
            self._channel, self._store.struct, self._memory.struct, command_base, control_port, bus_master_base,
            self._buffer, self._buffer_bytes,
        )
        self.errors.raise_pending()
        check_status(status, "ata_channel_init")

    @property
    def store_requests(self) -> list[StoreRequest]:
        return self._store.requests

    # --- Events in ---

    def _finish(self, status: int, what: str) -> None:
        self.errors.raise_pending()
        self.last_actions = decode_actions(self._actions)
        check_status(status, what)

    def read(self, port: int, width: int) -> int:
        self._actions.count = 0
        self._actions.overflow = False
        status = self.core.ata_channel_read(self._channel, port, width, ctypes.byref(self._actions))
        self._finish(status, f"read of {width} bytes at {port:#x}")
        return self.last_actions[0][1]

    def write(self, port: int, width: int, value: int) -> None:
        # The core checks the value against the width too; Python ints must first fit its 32-bit argument.
        if not 0 <= value < 1 << 32:
            raise ValueError(f"value {value:#x} does not fit in {width} bytes")
        self._actions.count = 0
        self._actions.overflow = False
        status = self.core.ata_channel_write(self._channel, port, width, value, ctypes.byref(self._actions))
        self._finish(status, f"write of {value:#x} ({width} bytes) at {port:#x}")

    def tick(self) -> None:
        self._actions.count = 0
        self._actions.overflow = False
        status = self.core.ata_channel_tick(self._channel, ctypes.byref(self._actions))
        self._finish(status, "tick")

    # --- Outputs ---

    @property
    def intrq(self) -> bool:
        return bool(self._state.intrq)

    def decodes(self, port: int) -> bool:
        return bool(self.core.ata_channel_decodes(self._channel, port))

    def observe(self) -> Observation:
        o = CObservation()
        self.core.ata_channel_observe(self._channel, ctypes.byref(o))
        return Observation(
            phase=PHASES[o.phase].value,
            status=o.status,
            error=o.error,
            sector_count=o.sector_count,
            lba_low=o.lba_low,
            lba_mid=o.lba_mid,
            lba_high=o.lba_high,
            device=o.device,
            previous=tuple(o.previous),
            intrq=bool(o.intrq),
            bm_command=o.bm_command,
            bm_status=o.bm_status,
            bm_prd_pointer=o.bm_prd_pointer,
        )

    @property
    def state(self) -> ChannelState:
        """The abstraction function: the C state as the spec's ChannelState."""
        s = self._state
        r, t, st, bm = s.registers, s.transfer, s.settings, s.bus_master
        transfer = None
        if s.has_transfer:
            transfer = Transfer(
                command=COMMANDS[t.command_index],
                lba=t.lba,
                count=t.count,
                done=t.done,
                block=bytearray(ctypes.string_at(self._buffer, t.block_bytes)),
                position=t.position,
                flushing=bool(t.flushing),
            )
        return ChannelState(
            phase=PHASES[s.phase],
            status=s.status,
            registers=TaskFile(**{name: getattr(r, name) for name, _ in CTaskFile._fields_}),
            nien=bool(s.nien),
            srst=bool(s.srst),
            hob=bool(s.hob),
            interrupt_pending=bool(s.interrupt_pending),
            intrq=bool(s.intrq),
            store_busy=bool(s.store_busy),
            reset_ticks=s.reset_ticks,
            command_code=s.command_code,
            transfer=transfer,
            settings=Settings(
                multiple_count=st.multiple_count,
                transfer_mode=st.transfer_mode,
                write_cache=bool(st.write_cache),
                heads=st.heads,
                sectors_per_track=st.sectors_per_track,
                chs_valid=bool(st.chs_valid),
                power=POWER_MODES[st.power],
            ),
            bus_master=BusMaster(
                start=bool(bm.start),
                write_to_memory=bool(bm.write_to_memory),
                active=bool(bm.active),
                error=bool(bm.error),
                interrupt=bool(bm.interrupt),
                drive_dma_capable=bm.drive_dma_capable,
                prd_pointer=bm.prd_pointer,
            ),
        )
