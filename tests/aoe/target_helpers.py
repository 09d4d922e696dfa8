"""Building requests to, and reading responses from, the spec target in tests."""

from spec.aoe.constants import AOE_VERSION, AoeCommand, AtaFlag
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.frames import (
    AoeHeader,
    AtaArgument,
    ConfigArgument,
    EthernetHeader,
    Frame,
    MaskArgument,
    ReserveArgument,
    decode_frame,
    encode_frame,
)
from spec.aoe.target import AoeTarget, Port, TargetConfig

TARGET_MAC = bytes.fromhex("0200000000aa")
HOST_A = bytes.fromhex("020000000001")
HOST_B = bytes.fromhex("020000000002")
PORT = Port(TARGET_MAC, 1500)
JUMBO_PORT = Port(TARGET_MAC, 9000)
SHELF, SLOT = 5, 1


def new_target(sectors: int = 64) -> AoeTarget:
    return AoeTarget(TargetConfig(major=SHELF, minor=SLOT, buffer_count=8), MemoryDurableStore(sectors))


def request(command: int, argument, source=HOST_A, destination=TARGET_MAC, tag=0x11223344, **header) -> bytes:
    fields = dict(version=AOE_VERSION, flags=0, error=0, major=SHELF, minor=SLOT, command=command, tag=tag)
    fields.update(header)
    return encode_frame(Frame(EthernetHeader(destination, source), AoeHeader(**fields), argument))


def ata(cmd: int, lba: int = 0, count: int = 1, data: bytes = b"", aflags: int | None = None, **kw) -> bytes:
    if aflags is None:
        aflags = (AtaFlag.WRITE if data else 0) | (AtaFlag.EXTENDED if cmd in (0x24, 0x34, 0xEA) else 0)
    return request(AoeCommand.ATA, AtaArgument(int(aflags), 0, count, cmd, lba, data=data), **kw)


def config(ccmd: int, string: bytes = b"", **kw) -> bytes:
    return request(AoeCommand.QUERY_CONFIG, ConfigArgument(0, 0, 0, AOE_VERSION, ccmd, string), **kw)


def mask(mcmd: int, directives=(), **kw) -> bytes:
    return request(AoeCommand.MAC_MASK_LIST, MaskArgument(mcmd, 0, tuple(directives)), **kw)


def reserve(rcmd: int, macs=(), **kw) -> bytes:
    return request(AoeCommand.RESERVE_RELEASE, ReserveArgument(rcmd, tuple(macs)), **kw)


def only_response(target: AoeTarget, frame: bytes, port: Port = PORT) -> Frame:
    responses = target.process_frame(frame, port)
    assert len(responses) == 1, f"expected one response, got {len(responses)}"
    return decode_frame(responses[0])
