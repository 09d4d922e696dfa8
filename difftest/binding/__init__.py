"""Loading the C core (impl/vmm/core) into Python, and the ctypes view of its shared types.

`load_core()` builds the host library with `make -C impl/vmm/core` when needed and loads it once.
The environment variable STORVISOR_CORE_LIB names another build of it instead: the sanitized
library (difftest/test_ata_sanitizers.py) or a mutant (python -m difftest.mutation).
The types below mirror impl/vmm/core/include/core_types.h field by field; `check_status` turns
the core's status into the spec's exceptions, so both sides fail the same way.
"""

import ctypes
import os
import subprocess
from functools import cache
from pathlib import Path

from spec.ata.errors import CannotHappen

REPOSITORY = Path(__file__).resolve().parents[2]
CORE_DIR = REPOSITORY / "impl" / "vmm" / "core"
LIBRARY_ENV = "STORVISOR_CORE_LIB"
LIBRARY_NAME = "libstorvisor-core.so"
VARIANTS = ("host", "sanitized")  # make targets of impl/vmm/core/Makefile that build a library

# enum core_status
CORE_OK, CORE_BAD_EVENT, CORE_CANNOT_HAPPEN = 0, 1, 2
# enum core_store_kind
CORE_STORE_READ_SECTORS, CORE_STORE_WRITE_SECTORS, CORE_STORE_FLUSH = 0, 1, 2
# enum core_action_kind
CORE_ACTION_GUEST_VALUE, CORE_ACTION_INTRQ, CORE_ACTION_SEND_FRAME, CORE_ACTION_DISK_OP, CORE_ACTION_DEVIRTUALIZE = range(5)
# enum core_disk_op_kind
DISK_OP_NAMES = ("read", "write", "flush")
CORE_MAX_ACTIONS = 64
SECTOR_BYTES = 512


def build_library(variant: str = "host", build_dir: Path | None = None, core_dir: Path = CORE_DIR) -> Path:
    """Build one library variant of the core with make and return its path."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown core library variant {variant!r}; expected one of {VARIANTS}")
    build = Path(build_dir) if build_dir else core_dir / "build"
    result = subprocess.run(
        ["make", "-s", "-C", str(core_dir), f"BUILD={build}", variant], capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"building the C core ({variant}) failed:\n{result.stdout}{result.stderr}")
    return build / variant / LIBRARY_NAME


@cache
def load_core() -> ctypes.CDLL:
    """The C core as a shared library: STORVISOR_CORE_LIB if set, else a fresh host build."""
    path = os.environ.get(LIBRARY_ENV) or build_library("host")
    return ctypes.CDLL(str(path))


# --- include/core_types.h ---------------------------------------------------------------------

MemoryRead = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32)
MemoryWrite = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32)


class CoreMemory(ctypes.Structure):
    _fields_ = [("context", ctypes.c_void_p), ("read", MemoryRead), ("write", MemoryWrite)]


class CoreStoreRequest(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("lba", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("buffer", ctypes.POINTER(ctypes.c_uint8)),
    ]


class CoreStoreResult(ctypes.Structure):
    _fields_ = [("ok", ctypes.c_bool), ("error", ctypes.c_uint8)]


StoreSectorCount = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)
StoreStart = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(CoreStoreRequest))
StorePoll = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.POINTER(CoreStoreResult))


class CoreStore(ctypes.Structure):
    _fields_ = [
        ("context", ctypes.c_void_p),
        ("sector_count", StoreSectorCount),
        ("start", StoreStart),
        ("poll", StorePoll),
    ]


class _Frame(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint8)), ("length", ctypes.c_uint32)]


class _DiskOp(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("op", ctypes.c_int),
        ("lba", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("buffer", ctypes.POINTER(ctypes.c_uint8)),
    ]


class _ActionUnion(ctypes.Union):
    _fields_ = [("value", ctypes.c_uint32), ("level", ctypes.c_bool), ("frame", _Frame), ("disk", _DiskOp)]


class CoreAction(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("u", _ActionUnion)]


class CoreActions(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("overflow", ctypes.c_bool), ("items", CoreAction * CORE_MAX_ACTIONS)]


def decode_actions(actions: CoreActions) -> list[tuple]:
    """The actions of one event as plain tuples, the form the spec side produces too:
    ("value", v), ("intrq", level), ("frame", bytes), ("disk", id, op, lba, count, data), ("devirtualize",)."""
    decoded = []
    for action in actions.items[: actions.count]:
        match action.kind:
            case 0:
                decoded.append(("value", action.u.value))
            case 1:
                decoded.append(("intrq", bool(action.u.level)))
            case 2:
                decoded.append(("frame", ctypes.string_at(action.u.frame.data, action.u.frame.length)))
            case 3:
                disk = action.u.disk
                data = b""
                if disk.op == 1:  # a write carries its sectors
                    data = ctypes.string_at(disk.buffer, disk.count * SECTOR_BYTES)
                decoded.append(("disk", disk.id, DISK_OP_NAMES[disk.op], disk.lba, disk.count, data))
            case 4:
                decoded.append(("devirtualize",))
            case kind:
                raise CannotHappen(f"the core returned an action of unknown kind {kind}")
    return decoded


class CallbackErrors:
    """Exceptions raised inside Python callbacks the core calls; ctypes cannot carry them through C."""

    def __init__(self):
        self.errors: list[BaseException] = []

    def guard(self, function, failed_value):
        """`function` wrapped so an exception is recorded and `failed_value` returned to C."""

        def guarded(*args):
            try:
                return function(*args)
            except BaseException as error:  # re-raised by raise_pending after the C call returns
                self.errors.append(error)
                return failed_value

        return guarded

    def raise_pending(self) -> None:
        if self.errors:
            error, self.errors = self.errors[0], []
            raise error


def check_status(status: int, what: str, detail: str = "") -> None:
    """Raise as the spec would: ValueError for an event the core does not decode, CannotHappen for a core bug."""
    if status == CORE_BAD_EVENT:
        raise ValueError(f"{what}: the core refused the event" + (f" ({detail})" if detail else ""))
    if status == CORE_CANNOT_HAPPEN:
        raise CannotHappen(f"{what}: {detail or 'the core broke its own rules'}")
    if status != CORE_OK:
        raise CannotHappen(f"{what}: unknown core status {status}")
