"""The AoE target: what a storage server must answer to every frame (AoEr11 §2–§3).

`AoeTarget.process_frame(frame, port)` takes one received frame and the port it
arrived on and returns the response frames (zero or one). It is deterministic:
the same state and the same frame give the same bytes and the same new state.

A frame is either dropped silently, answered with an AoE error (E flag and an
`AoeError` code), or answered normally; an ATA command that fails is a normal
AoE response whose ATA Status has ERR. The checks run in the order of
`process_frame`; the first that applies decides.
"""

from dataclasses import dataclass, field

from spec.aoe.constants import (
    MAX_SECTOR_COUNT_FIELD,
    AOE_VERSION,
    BROADCAST_MAC,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    CHECK_POWER_MODE_ACTIVE,
    LBA28_MASK,
    LBA48_MASK,
    MASK_LIST_CAPACITY,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    AtaErrorBit,
    AtaFlag,
    AtaStatus,
    ConfigCommand,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    MaskError,
    ReserveCommand,
    sectors_per_frame,
)
from spec.aoe.durable_store import DurableStore
from spec.aoe.frames import (
    AoeHeader,
    Argument,
    AtaArgument,
    ConfigArgument,
    EthernetHeader,
    Frame,
    MalformedFrame,
    MaskArgument,
    ReserveArgument,
    argument_bytes,
    decode_aoe_header,
    decode_argument,
    decode_ethernet_header,
    encode_aoe_header,
    encode_config_argument,
    encode_ethernet_header,
    encode_frame,
)
from spec.aoe.frames import MaskDirective as MaskEntry
from spec.aoe.identify import identify_device_data
from spec.ata.commands import COMMANDS



def ata_code(name: str) -> int:
    """The command code of `name` in the ATA command table."""
    (code,) = (c.code for c in COMMANDS if c.name == name)
    return code


READ_SECTORS = ata_code("READ SECTORS")
READ_SECTORS_EXT = ata_code("READ SECTORS EXT")
WRITE_SECTORS = ata_code("WRITE SECTORS")
WRITE_SECTORS_EXT = ata_code("WRITE SECTORS EXT")
IDENTIFY_DEVICE = ata_code("IDENTIFY DEVICE")
FLUSH_CACHE = ata_code("FLUSH CACHE")
FLUSH_CACHE_EXT = ata_code("FLUSH CACHE EXT")
CHECK_POWER_MODE = ata_code("CHECK POWER MODE")

READ_COMMANDS = frozenset({READ_SECTORS, READ_SECTORS_EXT})
WRITE_COMMANDS = frozenset({WRITE_SECTORS, WRITE_SECTORS_EXT})
LBA48_COMMANDS = frozenset({READ_SECTORS_EXT, WRITE_SECTORS_EXT})
TARGET_ATA_COMMANDS = READ_COMMANDS | WRITE_COMMANDS | {IDENTIFY_DEVICE, FLUSH_CACHE, FLUSH_CACHE_EXT, CHECK_POWER_MODE}


@dataclass(frozen=True)
class Port:
    """The receiving context: the network port a frame arrived on."""

    mac: bytes  # the port's own address; responses come from it
    mtu: int  # bounds the sectors one ATA message may carry


@dataclass(frozen=True)
class TargetConfig:
    """What an operator sets when starting a target; survives restarts."""

    major: int  # shelf
    minor: int  # slot
    buffer_count: int = 16  # requests the target promises to queue (AoEr11 §3.2)
    firmware_version: int = 0x0001
    mask_list_capacity: int = MASK_LIST_CAPACITY
    serial: str = "storvisor"
    model: str = "storvisor AoE target"
    firmware: str = "1"


@dataclass
class TargetState:
    """What a target remembers between frames; held in memory, so a restart clears it."""

    config_string: bytes = b""
    mask_list: tuple[bytes, ...] = ()  # empty: every source may talk to the target
    reserve_list: tuple[bytes, ...] = ()  # empty: not reserved
    available: bool = True  # False: the medium is offline and ATA commands get DEVICE_UNAVAILABLE


def max_sectors(port: Port) -> int:
    """Sectors per ATA command the target accepts on this port and advertises in Query Config."""
    return min(sectors_per_frame(port.mtu), MAX_SECTOR_COUNT_FIELD)


@dataclass
class AoeTarget:
    config: TargetConfig
    store: DurableStore
    state: TargetState = field(default_factory=TargetState)

    def process_frame(self, frame: bytes, port: Port) -> list[bytes]:
        """The responses to one received frame, in the order of AoEr11's checks."""
        try:
            ethernet = decode_ethernet_header(frame)
            header = decode_aoe_header(frame)
        except MalformedFrame:
            return []  # not an AoE frame, or too short to have a header to answer: drop
        if header.flags & HeaderFlag.RESPONSE:
            return []  # AoEr11 §2: a response is never a request; targets ignore responses
        if ethernet.destination not in (port.mac, BROADCAST_MAC):
            return []  # addressed to another station
        if header.major not in (self.config.major, BROADCAST_MAJOR):
            return []  # AoEr11 §2: another shelf
        if header.minor not in (self.config.minor, BROADCAST_MINOR):
            return []  # AoEr11 §2: another slot
        if self.state.mask_list and ethernet.source not in self.state.mask_list:
            return []  # AoEr11 §3.3: a target with a mask list ignores every source not in it
        if header.version != AOE_VERSION:
            return [self.error_response(frame, port, AoeError.UNSUPPORTED_VERSION)]  # AoEr11 §2
        handler = self.HANDLERS.get(header.command)
        if handler is None:
            return [self.error_response(frame, port, AoeError.UNRECOGNIZED_COMMAND)]  # AoEr11 §2, vendor codes too
        try:
            argument = decode_argument(header.command, argument_bytes(frame))
        except MalformedFrame:
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # the argument does not fit its layout
        return handler(self, frame, ethernet, header, argument, port)

    # Responses.

    def response(self, ethernet: EthernetHeader, header: AoeHeader, argument: Argument, port: Port) -> bytes:
        """A normal response: back to the sender, from this port, with our shelf and slot and the request's tag."""
        reply_header = AoeHeader(
            AOE_VERSION, HeaderFlag.RESPONSE, 0, self.config.major, self.config.minor, header.command, header.tag
        )
        return encode_frame(Frame(EthernetHeader(ethernet.source, port.mac), reply_header, argument))

    def error_response(self, frame: bytes, port: Port, error: AoeError, argument: bytes | None = None) -> bytes:
        """An AoE error response: the request's header with R and E set and the request's argument bytes echoed."""
        ethernet = decode_ethernet_header(frame)
        header = decode_aoe_header(frame)
        reply_header = AoeHeader(
            AOE_VERSION,
            HeaderFlag.RESPONSE | HeaderFlag.ERROR,
            error,
            self.config.major,
            self.config.minor,
            header.command,
            header.tag,
        )
        body = argument_bytes(frame) if argument is None else argument
        return encode_ethernet_header(EthernetHeader(ethernet.source, port.mac)) + encode_aoe_header(reply_header) + body

    # ATA (AoEr11 §3.1).

    def process_ata(self, frame, ethernet, header, a: AtaArgument, port) -> list[bytes]:
        command = a.cmd_status
        if not self.state.available:
            return [self.error_response(frame, port, AoeError.DEVICE_UNAVAILABLE)]  # the medium is offline
        if self.state.reserve_list and ethernet.source not in self.state.reserve_list and command != IDENTIFY_DEVICE:
            return [self.error_response(frame, port, AoeError.TARGET_RESERVED)]  # AoEr11 §3.4; IDENTIFY stays open
        if command not in TARGET_ATA_COMMANDS:
            return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY | AtaStatus.ERR, AtaErrorBit.ABRT)]
        if command in READ_COMMANDS or command in WRITE_COMMANDS:
            return self.process_read_write_sectors(frame, ethernet, header, a, port)
        if command == IDENTIFY_DEVICE:
            data = identify_device_data(self.store.sector_count(), self.config.serial, self.config.model, self.config.firmware)
            return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY, 0, data=data)]
        if command in (FLUSH_CACHE, FLUSH_CACHE_EXT):
            self.store.flush()  # ATA/ATAPI-7 V1 §6, FLUSH CACHE: every completed write is on the medium before status
            return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY, 0)]
        assert command == CHECK_POWER_MODE, "every command in TARGET_ATA_COMMANDS has a branch"
        return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY, 0, sector_count=CHECK_POWER_MODE_ACTIVE)]

    def process_read_write_sectors(self, frame, ethernet, header, a: AtaArgument, port) -> list[bytes]:
        is_write = a.cmd_status in WRITE_COMMANDS
        count = a.sector_count
        lba = a.lba & (LBA48_MASK if a.cmd_status in LBA48_COMMANDS else LBA28_MASK)
        if count == 0:
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # ATA 0 means 256 or 65536: above any maximum
        if count > max_sectors(port):
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # more than Query Config advertised
        if bool(a.aflags & AtaFlag.WRITE) != is_write:
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # AoEr11 §3.1: W says whether data follows
        if is_write and len(a.data) < count * SECTOR_BYTES:
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # the frame lacks the sectors to write
        if lba + count > self.store.sector_count():
            status = AtaStatus.DRDY | AtaStatus.ERR  # ATA/ATAPI-7 V1, Error register: IDNF, address outside the medium
            return [self.ata_response(ethernet, header, a, port, status, AtaErrorBit.IDNF)]
        if is_write:
            self.store.write(lba, a.data[: count * SECTOR_BYTES])  # durable at the next FLUSH CACHE
            return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY, 0)]
        return [self.ata_response(ethernet, header, a, port, AtaStatus.DRDY, 0, data=self.store.read(lba, count))]

    def ata_response(self, ethernet, header, a: AtaArgument, port, status: int, error: int, data=b"", sector_count=None):
        """The request's registers echoed, with the Status and Error registers after the command."""
        count = a.sector_count if sector_count is None else sector_count
        argument = AtaArgument(a.aflags, int(error), count, int(status), a.lba, 0, data)
        return self.response(ethernet, header, argument, port)

    # Query Config Information (AoEr11 §3.2).

    def process_query_config(self, frame, ethernet, header, a: ConfigArgument, port) -> list[bytes]:
        ours = self.state.config_string
        match a.ccmd:
            case ConfigCommand.READ:
                pass
            case ConfigCommand.TEST_EXACT:
                if a.config != ours:
                    return []  # AoEr11 §3.2: only a target whose string matches exactly answers
            case ConfigCommand.TEST_PREFIX:
                if not ours.startswith(a.config):
                    return []  # AoEr11 §3.2: only a target whose string starts with the request's answers
            case ConfigCommand.SET_IF_EMPTY:
                if ours and ours != a.config:
                    return [self.config_response(frame, ethernet, header, a, port, AoeError.CONFIG_STRING_PRESENT)]
                self.state.config_string = a.config
            case ConfigCommand.FORCE_SET:
                self.state.config_string = a.config
            case _:
                return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # no such subcommand
        return [self.config_response(frame, ethernet, header, a, port)]

    def config_response(self, frame, ethernet, header, a: ConfigArgument, port, error: AoeError | None = None) -> bytes:
        """Our configuration; with CONFIG_STRING_PRESENT it shows the string that is in the way."""
        argument = ConfigArgument(
            buffer_count=self.config.buffer_count,
            firmware_version=self.config.firmware_version,
            sector_count=max_sectors(port),
            aoe_version=AOE_VERSION,
            ccmd=a.ccmd,
            config=self.state.config_string,
        )
        if error is None:
            return self.response(ethernet, header, argument, port)
        return self.error_response(frame, port, error, encode_config_argument(argument))

    # MAC Mask List (AoEr11 §3.3).

    def process_mac_mask_list(self, frame, ethernet, header, a: MaskArgument, port) -> list[bytes]:
        if a.mcmd == MaskCommand.READ:
            return [self.mask_response(ethernet, header, a, port, MaskError.NONE, self.listed_masks())]
        if a.mcmd != MaskCommand.EDIT:
            return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # no such subcommand
        edited = list(self.state.mask_list)
        for index, directive in enumerate(a.directives):
            match directive.dcmd:
                case MaskDirective.NONE:
                    continue
                case MaskDirective.ADD:
                    if directive.mac in edited:
                        continue  # already listed: adding again changes nothing
                    if len(edited) >= self.config.mask_list_capacity:
                        return [self.mask_edit_failed(ethernet, header, a, port, MaskError.LIST_FULL, index)]
                    edited.append(directive.mac)
                case MaskDirective.DELETE:
                    if directive.mac in edited:
                        edited.remove(directive.mac)
                case _:
                    return [self.mask_edit_failed(ethernet, header, a, port, MaskError.BAD_DIRECTIVE, index)]
        self.state.mask_list = tuple(edited)
        return [self.mask_response(ethernet, header, a, port, MaskError.NONE, self.listed_masks())]

    def listed_masks(self) -> tuple[MaskEntry, ...]:
        return tuple(MaskEntry(MaskDirective.NONE, mac) for mac in self.state.mask_list)

    def mask_edit_failed(self, ethernet, header, a: MaskArgument, port, merror: MaskError, index: int) -> bytes:
        """An edit applies completely or not at all; Dir Count names the failing directive by echoing those before it."""
        return self.mask_response(ethernet, header, a, port, merror, a.directives[:index])

    def mask_response(self, ethernet, header, a: MaskArgument, port, merror, directives) -> bytes:
        return self.response(ethernet, header, MaskArgument(a.mcmd, int(merror), tuple(directives)), port)

    # Reserve/Release (AoEr11 §3.4).

    def process_reserve_release(self, frame, ethernet, header, a: ReserveArgument, port) -> list[bytes]:
        match a.rcmd:
            case ReserveCommand.READ:
                pass
            case ReserveCommand.SET:
                if self.state.reserve_list and ethernet.source not in self.state.reserve_list:
                    return [self.error_response(frame, port, AoeError.TARGET_RESERVED)]  # only a holder may change it
                self.state.reserve_list = a.macs
            case ReserveCommand.FORCE_SET:
                self.state.reserve_list = a.macs
            case _:
                return [self.error_response(frame, port, AoeError.BAD_ARGUMENT)]  # no such subcommand
        return [self.response(ethernet, header, ReserveArgument(a.rcmd, self.state.reserve_list), port)]

    HANDLERS = {
        AoeCommand.ATA: process_ata,
        AoeCommand.QUERY_CONFIG: process_query_config,
        AoeCommand.MAC_MASK_LIST: process_mac_mask_list,
        AoeCommand.RESERVE_RELEASE: process_reserve_release,
    }
