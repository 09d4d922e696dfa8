"""The AoE target: what the server answers to each request frame (AoEr11 §2–§3.4).

`AoeTarget.process_frame` takes one received Ethernet frame and returns the
response frames (none, one, or one per target a broadcast reaches). The checks
run in `spec.aoe.target`'s order: frame shape and ethertype, response flag,
destination, shelf and slot (here: the targets assigned to this client), MAC
mask list, version, command. Every difference from vblade is listed in this
folder's README.
"""

import ctypes
import logging
import struct

from spec.aoe.constants import (
    AOE_VERSION,
    BROADCAST_MAC,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    CHECK_POWER_MODE_ACTIVE,
    CONFIG_STRING_MAX,
    ETHERTYPE_AOE,
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
)
from spec.aoe.identify import identify_device_data
from spec.aoe.target import (
    CHECK_POWER_MODE,
    FLUSH_CACHE,
    FLUSH_CACHE_EXT,
    IDENTIFY_DEVICE,
    LBA48_COMMANDS,
    READ_COMMANDS,
    WRITE_COMMANDS,
    Port,
    max_sectors,
)

from .catalogue import Catalogue, CatalogueError
from .config import ServerConfig, TargetConfig
from .datapath import ROUTE_KEY_BYTES, Counters, RouteSpec, library
from .disks import ClientCounters, ClientDisk, DiskRegistry
from .frames import (
    AOE_HEADER,
    ATA_ARG,
    ATA_HEADER_BYTES,
    CONFIG_ARG,
    CONFIG_HEADER_BYTES,
    ETHERNET,
    HEADER_BYTES,
    MAC_BYTES,
    MASK_ARG,
    MASK_DIRECTIVE,
    MASK_DIRECTIVE_BYTES,
    MASK_HEADER_BYTES,
    RESERVE_ARG,
    RESERVE_HEADER_BYTES,
    VERSION_SHIFT,
    format_mac,
    response_header,
)
from .overlay import OverlayError

log = logging.getLogger("storvisor.server")

STATUS_DRDY, STATUS_ERR = AtaStatus.DRDY.value, AtaStatus.ERR.value
ERROR_ABRT, ERROR_IDNF = AtaErrorBit.ABRT.value, AtaErrorBit.IDNF.value
READ_WRITE_COMMANDS = READ_COMMANDS | WRITE_COMMANDS
WRITE_FLAG = AtaFlag.WRITE.value
RESPONSE_FLAG = HeaderFlag.RESPONSE.value
FAST_PATH_MARK = ETHERTYPE_AOE.to_bytes(2, "big") + bytes([AOE_VERSION << 4, 0])  # AoE, version 1, no flags, no error
TAG_OFFSET = 20  # the tag, the last field of the AoE header (AoEr11 §2)
ROUTE_CACHE_ENTRIES = 65536  # routes remembered per (client, shelf, slot) before the cache starts over
FIRMWARE_VERSION = 0x0001  # what Query Config reports (as spec.aoe.target.TargetConfig's default)
FIRMWARE_TEXT = "1"  # IDENTIFY DEVICE words 23-26


def identify_serial(client: bytes) -> str:
    return "SV" + client.hex().upper()


def identify_model(image_name: str) -> str:
    return "storvisor " + image_name


class TargetState:
    """One configured target: its image, and the per-target state initiators can set (§3.2–§3.4)."""

    def __init__(self, config: TargetConfig, image_name: str):
        self.config = config
        self.image_name = image_name
        self.shelf, self.slot = config.shelf, config.slot
        self.config_string = config.config_string
        self.blocked = ctypes.c_int32(0)  # the data path leaves this target's requests to Python while set
        self.mask_list: list[bytes] = []
        self.reservations: list[bytes] = []

    def __setattr__(self, name, value) -> None:
        super().__setattr__(name, value)
        if name in ("mask_list", "reservations"):  # AoEr11 §3.3, §3.4: either one sends every request through the checks
            self.blocked.value = bool(getattr(self, "mask_list", None) or getattr(self, "reservations", None))

    def serves(self, client: bytes) -> bool:
        return self.config.clients is None or client in self.config.clients


class AoeTarget:
    """Every target of one server, answering frames addressed to `mac` or broadcast."""

    def __init__(self, config: ServerConfig, catalogue: Catalogue, disks: DiskRegistry, mac: bytes, mtu: int):
        self.config = config
        self.catalogue = catalogue
        self.disks = disks
        self.mac = mac
        self.max_sectors = max_sectors(Port(mac, mtu))
        self.buffer_count = config.buffer_count
        self.targets = [TargetState(t, catalogue.get(t.image).name) for t in config.targets]
        self.by_address: dict[tuple[int, int], list[TargetState]] = {}
        for t in sorted(self.targets, key=lambda t: t.config.clients is None):  # explicit lists before "*"
            self.by_address.setdefault((t.shelf, t.slot), []).append(t)
        self.routes: dict[tuple[bytes, int, int], list[TargetState]] = {}
        self.dropped = 0
        # plain transfers on routes the checked path established are answered in C (datapath/)
        self.lib = library()
        self.datapath = self.lib.dp_server_new(self.max_sectors)
        if not self.datapath:
            raise MemoryError("no memory for the data path")
        self.answer_bytes = ATA_HEADER_BYTES + self.max_sectors * SECTOR_BYTES  # the longest answer
        self.answer = self.lib.dp_answer
        disks.route_hooks.append(self.forget_routes)  # no route may outlive what it points at

    def forget_routes(self) -> None:
        if self.datapath:
            self.lib.dp_routes_clear(self.datapath)

    def close(self) -> None:
        if self.datapath:
            self.disks.route_hooks.remove(self.forget_routes)
            self.lib.dp_server_free(self.datapath)
            self.datapath = None

    def targets_for(self, client: bytes, major: int, minor: int) -> list[TargetState]:
        """The targets this request reaches: per address, the first one assigned to the client."""
        key = (client, major, minor)
        route = self.routes.get(key)
        if route is None:
            route = []
            for (shelf, slot), candidates in sorted(self.by_address.items()):
                if major not in (shelf, BROADCAST_MAJOR) or minor not in (slot, BROADCAST_MINOR):
                    continue
                for t in candidates:
                    if t.serves(client):
                        route.append(t)
                        break
            if len(self.routes) >= ROUTE_CACHE_ENTRIES:
                self.routes.clear()  # bounded: senders of arbitrary addresses cannot grow it forever
            self.routes[key] = route
        return route

    def process_frame(self, frame: bytes) -> list[bytes]:
        """The responses to one frame: the data path's when it answers, else the full checks below."""
        frame = bytes(frame)
        out = ctypes.create_string_buffer(self.answer_bytes)
        length = self.answer(self.datapath, frame, len(frame), out, self.answer_bytes)
        if length:
            return [out.raw[:length]]
        return self.process_frame_checked(frame)

    def process_frame_checked(self, frame: bytes) -> list[bytes]:
        n = len(frame)
        # AoEr11 §2: a frame too short for the AoE header cannot be answered
        if n < HEADER_BYTES:
            return self.drop(frame, "shorter than the AoE header")
        dst, src, ethertype = ETHERNET.unpack_from(frame)
        # AoEr11 §1: only AoE frames
        if ethertype != ETHERTYPE_AOE:
            return self.drop(frame, "not AoE")
        first, _error, major, minor, command, tag = AOE_HEADER.unpack_from(frame, 14)
        # AoEr11 §2: a response is never a request; targets ignore responses
        if first & RESPONSE_FLAG:
            return self.drop(frame, "a response")
        # addressed to another station
        if dst != self.mac and dst != BROADCAST_MAC:
            return self.drop(frame, "addressed to another station")
        # AoEr11 §2: another shelf or slot, or a client no target at that address is assigned to
        targets = self.targets_for(src, major, minor)
        if not targets:
            return self.drop(frame, "no target at this shelf/slot is assigned to the client")
        counters = self.disks.counters_for(src)
        counters.requests += 1
        counters.saw_request(frame)
        responses = []
        for target in targets:
            # AoEr11 §3.3: a non-empty MAC mask list admits only the initiators on it
            if target.mask_list and src not in target.mask_list:
                continue
            reply = self.process_request(target, frame, src, first >> VERSION_SHIFT, command, tag, counters)
            if reply is not None:
                responses.append(reply)
        if not responses:
            return self.drop(frame, "not in the MAC mask list, or a config test that does not match")
        return responses

    def drop(self, frame: bytes, reason: str) -> list[bytes]:
        """No answer; counted, and logged when debugging ("why does my client get nothing?")."""
        self.dropped += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event=dropped reason=%r source=%s bytes=%d", reason, format_mac(frame[6:12]) if len(frame) >= 12 else "?", len(frame))
        return []

    def process_request(self, target, frame, src, version, command, tag, counters) -> bytes | None:
        def error(code: AoeError, body: bytes | None = None) -> bytes:
            """The request's header with R and E, and its argument echoed (as spec.aoe.target does)."""
            counters.errors += 1
            echo = frame[HEADER_BYTES:] if body is None else body
            return response_header(src, self.mac, code, target.shelf, target.slot, command, tag) + echo

        # AoEr11 §2: version 1 is the only one
        if version != AOE_VERSION:
            return error(AoeError.UNSUPPORTED_VERSION)
        if command == AoeCommand.ATA:
            return self.process_ata(target, frame, src, tag, counters, error)
        if command == AoeCommand.QUERY_CONFIG:
            return self.process_query_config(target, frame, src, tag, error)
        if command == AoeCommand.MAC_MASK_LIST:
            return self.process_mac_mask_list(target, frame, src, tag, error)
        if command == AoeCommand.RESERVE_RELEASE:
            return self.process_reserve_release(target, frame, src, tag, error)
        # AoEr11 §2: any other command, vendor-specific ones included, is unrecognized here
        return error(AoeError.UNRECOGNIZED_COMMAND)

    def process_ata(self, target, frame, src, tag, counters: ClientCounters, error) -> bytes:
        n = len(frame)
        # AoEr11 §3.1: the ATA argument must be complete
        if n < ATA_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        aflags, _feature, count, cmd, lba_bytes = ATA_ARG.unpack_from(frame, HEADER_BYTES)
        try:
            disk = self.disks.open(src, self.catalogue.get(target.image_name), target.config.read_only)
        except OverlayError:
            # the client's medium is offline: its overlay cannot be used as it is (logged once when found)
            return error(AoeError.DEVICE_UNAVAILABLE)
        except (CatalogueError, OSError) as e:
            log.error("event=disk-unavailable client=%s image=%s reason=%r", format_mac(src), target.image_name, str(e))
            return error(AoeError.DEVICE_UNAVAILABLE)
        # AoEr11 §3.4: a reserved target serves only the reservation's members; IDENTIFY stays open
        if target.reservations and src not in target.reservations and cmd != IDENTIFY_DEVICE:
            return error(AoeError.TARGET_RESERVED)
        data = b""
        status, ata_error, count_out = STATUS_DRDY, 0, count
        if cmd in READ_WRITE_COMMANDS:
            lba = int.from_bytes(lba_bytes, "little") & (LBA48_MASK if cmd in LBA48_COMMANDS else LBA28_MASK)
            writing = cmd in WRITE_COMMANDS
            # ATA 0 means 256 or 65536 sectors: above any maximum
            if count == 0:
                return error(AoeError.BAD_ARGUMENT)
            # AoEr11 §3.2: no more sectors than Query Config advertised (one frame at this MTU)
            if count > self.max_sectors:
                return error(AoeError.BAD_ARGUMENT)
            # AoEr11 §3.1: W says whether data follows
            if bool(aflags & AtaFlag.WRITE) != writing:
                return error(AoeError.BAD_ARGUMENT)
            # AoEr11 §3.1: a write carries all its sectors
            if writing and n - ATA_HEADER_BYTES < count * SECTOR_BYTES:
                return error(AoeError.BAD_ARGUMENT)
            # ATA/ATAPI-7 V1 §7, Error register: IDNF, address outside the medium
            if lba + count > disk.sectors:
                status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_IDNF
            # ATA/ATAPI-7 V1 §7, Error register: ABRT, the device refuses the command (a read-only image; not in spec.aoe)
            elif writing and disk.read_only:
                status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_ABRT
            else:
                try:
                    if writing:
                        disk.write(lba, frame[ATA_HEADER_BYTES : ATA_HEADER_BYTES + count * SECTOR_BYTES])
                        counters.written_bytes += count * SECTOR_BYTES
                    else:
                        data = disk.read(lba, count)
                        counters.read_bytes += len(data)
                except OSError as e:
                    log.error("event=io-error client=%s lba=%d count=%d reason=%r", format_mac(src), lba, count, str(e))
                    status, ata_error, data = STATUS_DRDY | STATUS_ERR, ERROR_ABRT, b""
        elif cmd == IDENTIFY_DEVICE:
            data = self.identify(disk)
        elif cmd == CHECK_POWER_MODE:
            count_out = CHECK_POWER_MODE_ACTIVE
        elif cmd in (FLUSH_CACHE, FLUSH_CACHE_EXT):
            # ATA/ATAPI-7 V1 §6, FLUSH CACHE: every completed write is on stable storage before status
            try:
                disk.flush()
                counters.flushes += 1
            except OSError as e:
                log.error("event=flush-error client=%s reason=%r", format_mac(src), str(e))
                status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_ABRT
        else:
            # ATA/ATAPI-7 V1 §6: a command the target does not implement is aborted
            status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_ABRT
        if status & STATUS_ERR:
            counters.errors += 1
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.ATA, tag)
        if (status == STATUS_DRDY and frame[0:6] == self.mac and frame[12:16] == FAST_PATH_MARK
                and (target.shelf, target.slot) == struct.unpack_from("!HB", frame, 16)):
            self.add_route(frame[:ROUTE_KEY_BYTES], header[:TAG_OFFSET], target, disk, counters)
        return header + ATA_ARG.pack(aflags, ata_error, count_out, status, lba_bytes) + data

    def add_route(self, key: bytes, prefix: bytes, target: TargetState, disk: ClientDisk, counters: ClientCounters) -> None:
        """From now on the data path answers plain transfers on this route (one client, one target,
        one address): everything the checks above decided for it holds until a disk closes."""
        spec = RouteSpec(base_fd=disk.base_fd, read_only=disk.read_only, sectors=disk.sectors,
                         overlay=disk.overlay.handle if disk.overlay is not None else None,
                         blocked=ctypes.pointer(target.blocked), counters=ctypes.cast(ctypes.pointer(counters), ctypes.POINTER(Counters)))
        ctypes.memmove(spec.key, key, ROUTE_KEY_BYTES)
        ctypes.memmove(spec.prefix, prefix, ROUTE_KEY_BYTES)
        if self.lib.dp_route_add(self.datapath, spec):
            raise MemoryError("no memory for a data path route")

    def identify(self, disk: ClientDisk) -> bytes:
        """The spec's IDENTIFY data; the serial number names the client, the model the image."""
        return identify_device_data(disk.sectors, identify_serial(disk.client), identify_model(disk.image.name), FIRMWARE_TEXT)

    def process_query_config(self, target, frame, src, tag, error) -> bytes | None:
        n = len(frame)
        # AoEr11 §3.2: the config argument must be complete
        if n < CONFIG_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        _buffers, _firmware, _sectors, vercmd, length = CONFIG_ARG.unpack_from(frame, HEADER_BYTES)
        # AoEr11 §3.2: a config string is at most 1024 bytes
        if length > CONFIG_STRING_MAX:
            return error(AoeError.BAD_ARGUMENT)
        # the config string the length announces must be in the frame
        if CONFIG_HEADER_BYTES + length > n:
            return error(AoeError.BAD_ARGUMENT)
        ccmd = vercmd & 0x0F
        string = bytes(frame[CONFIG_HEADER_BYTES : CONFIG_HEADER_BYTES + length])
        ours = target.config_string
        if ccmd == ConfigCommand.READ:
            pass
        elif ccmd == ConfigCommand.TEST_EXACT:
            # AoEr11 §3.2: only a target whose string matches exactly answers
            if string != ours:
                return None
        elif ccmd == ConfigCommand.TEST_PREFIX:
            # AoEr11 §3.2: only a target whose string starts with the request's answers
            if not ours.startswith(string):
                return None
        elif ccmd == ConfigCommand.SET_IF_EMPTY:
            # AoEr11 §3.2: a string that is set stays, unless the request sets the same one
            if ours and ours != string:
                return error(AoeError.CONFIG_STRING_PRESENT, self.config_argument(target, ccmd))
            target.config_string = string
        elif ccmd == ConfigCommand.FORCE_SET:
            target.config_string = string
        else:
            # no such subcommand
            return error(AoeError.BAD_ARGUMENT)
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.QUERY_CONFIG, tag)
        return header + self.config_argument(target, ccmd)

    def config_argument(self, target: TargetState, ccmd: int) -> bytes:
        current = target.config_string
        vercmd = AOE_VERSION << VERSION_SHIFT | ccmd
        return CONFIG_ARG.pack(self.buffer_count, FIRMWARE_VERSION, self.max_sectors, vercmd, len(current)) + current

    def process_mac_mask_list(self, target, frame, src, tag, error) -> bytes:
        n = len(frame)
        # AoEr11 §3.3: the mask argument must be complete
        if n < MASK_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        mcmd, _merror, dcount = MASK_ARG.unpack_from(frame, HEADER_BYTES)
        # AoEr11 §3.3: every directive the count announces must be in the frame
        if MASK_HEADER_BYTES + dcount * MASK_DIRECTIVE_BYTES > n:
            return error(AoeError.BAD_ARGUMENT)
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.MAC_MASK_LIST, tag)
        if mcmd == MaskCommand.EDIT:
            edited = list(target.mask_list)
            for i in range(dcount):
                at = MASK_HEADER_BYTES + i * MASK_DIRECTIVE_BYTES
                dcmd, mac = MASK_DIRECTIVE.unpack_from(frame, at)
                if dcmd == MaskDirective.NONE:
                    continue
                if dcmd == MaskDirective.ADD:
                    if mac in edited:
                        continue  # already listed: adding again changes nothing
                    if len(edited) < MASK_LIST_CAPACITY:
                        edited.append(mac)
                        continue
                    merror = MaskError.LIST_FULL
                elif dcmd == MaskDirective.DELETE:
                    if mac in edited:
                        edited.remove(mac)
                    continue
                else:
                    merror = MaskError.BAD_DIRECTIVE
                # an edit applies completely or not at all; the directives before the failing one are echoed
                return header + MASK_ARG.pack(mcmd, merror, i) + frame[MASK_HEADER_BYTES:at]
            target.mask_list = edited
        elif mcmd != MaskCommand.READ:
            # no such subcommand
            return error(AoeError.BAD_ARGUMENT)
        directives = b"".join(MASK_DIRECTIVE.pack(MaskDirective.NONE, mac) for mac in target.mask_list)
        return header + MASK_ARG.pack(mcmd, MaskError.NONE, len(target.mask_list)) + directives

    def process_reserve_release(self, target, frame, src, tag, error) -> bytes:
        n = len(frame)
        # AoEr11 §3.4: the reserve argument must be complete
        if n < RESERVE_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        rcmd, nmacs = RESERVE_ARG.unpack_from(frame, HEADER_BYTES)
        # AoEr11 §3.4: every MAC the count announces must be in the frame
        if RESERVE_HEADER_BYTES + nmacs * MAC_BYTES > n:
            return error(AoeError.BAD_ARGUMENT)
        macs = [bytes(frame[RESERVE_HEADER_BYTES + i * MAC_BYTES : RESERVE_HEADER_BYTES + (i + 1) * MAC_BYTES]) for i in range(nmacs)]
        if rcmd == ReserveCommand.READ:
            pass
        elif rcmd == ReserveCommand.SET:
            # AoEr11 §3.4: only a holder may change a reservation
            if target.reservations and src not in target.reservations:
                return error(AoeError.TARGET_RESERVED)
            target.reservations = macs
        elif rcmd == ReserveCommand.FORCE_SET:
            target.reservations = macs
        else:
            # no such subcommand
            return error(AoeError.BAD_ARGUMENT)
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.RESERVE_RELEASE, tag)
        return header + RESERVE_ARG.pack(rcmd, len(target.reservations)) + b"".join(target.reservations)
