"""The AoE target: what the server answers to each request frame (AoEr11 §2–§3.4).

`AoeTarget.process_frame` takes one received Ethernet frame and returns the
response frames (none, one, or one per target a broadcast reaches). The order
of checks: frame shape, ethertype, destination, response flag, addressed
targets assigned to this client, MAC mask list, version, command.
Every difference from vblade is listed in this folder's README.
"""

import logging

from spec.aoe.constants import (
    AOE_VERSION,
    BROADCAST_MAC,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    CONFIG_STRING_MAX,
    ETHERTYPE_AOE,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    ConfigCommand,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    MaskError,
    ReserveCommand,
    sectors_per_frame,
)

from .catalogue import Catalogue, CatalogueError
from .config import ServerConfig, TargetConfig
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
from .identify import identify_device_data
from .overlay import OverlayError

log = logging.getLogger("storvisor.server")

# ATA/ATAPI-7 V1 §6: the command codes an AoE initiator sends (AoEr11 §3.1 carries them unchanged)
READ_SECTORS, READ_SECTORS_EXT = 0x20, 0x24
WRITE_SECTORS, WRITE_SECTORS_EXT = 0x30, 0x34
CHECK_POWER_MODE, FLUSH_CACHE, FLUSH_CACHE_EXT, IDENTIFY_DEVICE = 0xE5, 0xE7, 0xEA, 0xEC
LBA28_MASK = 0x0FFFFFFF  # ATA/ATAPI-7 V1 §4.2: 28-bit LBA; the top nibble of byte 3 is the device register
LBA48_MASK = 0xFFFFFFFFFFFF

# ATA/ATAPI-7 V1 §6.15 status and §6.3 error register bits
STATUS_DRDY, STATUS_ERR = 0x40, 0x01
ERROR_ABRT, ERROR_IDNF = 0x04, 0x10
POWER_MODE_ACTIVE = 0xFF  # ATA/ATAPI-7 V1 §6.9: count register after CHECK POWER MODE: active or idle

FIRMWARE_VERSION = 0x0001
MASK_LIST_MAX = 255  # the directive count of a MAC Mask List response is one byte (AoEr11 §3.3)
RESERVE_LIST_MAX = 255  # the MAC count of a Reserve/Release message is one byte (AoEr11 §3.4)


class TargetState:
    """One configured target: its image, and the per-target state initiators can set (§3.2–§3.4)."""

    def __init__(self, config: TargetConfig, image_name: str):
        self.config = config
        self.image_name = image_name
        self.shelf, self.slot = config.shelf, config.slot
        self.config_string = config.config_string
        self.mask_list: list[bytes] = []
        self.reservations: list[bytes] = []

    def serves(self, client: bytes) -> bool:
        return self.config.clients is None or client in self.config.clients


class AoeTarget:
    """Every target of one server, answering frames addressed to `mac` or broadcast."""

    def __init__(self, config: ServerConfig, catalogue: Catalogue, disks: DiskRegistry, mac: bytes, mtu: int):
        self.config = config
        self.catalogue = catalogue
        self.disks = disks
        self.mac = mac
        self.max_sectors = sectors_per_frame(mtu)
        self.buffer_count = config.buffer_count
        self.targets = [TargetState(t, catalogue.get(t.image).name) for t in config.targets]
        self.by_address: dict[tuple[int, int], list[TargetState]] = {}
        for t in sorted(self.targets, key=lambda t: t.config.clients is None):  # explicit lists before "*"
            self.by_address.setdefault((t.shelf, t.slot), []).append(t)
        self.routes: dict[tuple[bytes, int, int], list[TargetState]] = {}
        self.dropped = 0

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
            self.routes[key] = route
        return route

    def process_frame(self, frame: bytes) -> list[bytes]:
        n = len(frame)
        # AoEr11 §2: a frame too short for the AoE header cannot be answered
        if n < HEADER_BYTES:
            self.dropped += 1
            return []
        dst, src, ethertype = ETHERNET.unpack_from(frame)
        # AoEr11 §1: only AoE frames
        if ethertype != ETHERTYPE_AOE:
            self.dropped += 1
            return []
        # IEEE 802.3: addressed to this server or to everyone
        if dst != self.mac and dst != BROADCAST_MAC:
            self.dropped += 1
            return []
        first, _error, major, minor, command, tag = AOE_HEADER.unpack_from(frame, 14)
        # AoEr11 §2: a response (R set) is never answered
        if first & HeaderFlag.RESPONSE:
            self.dropped += 1
            return []
        # a client not assigned to an addressed target gets nothing
        targets = self.targets_for(src, major, minor)
        if not targets:
            self.dropped += 1
            return []
        counters = self.disks.counters_for(src)
        counters.requests += 1
        counters.saw_tag(tag)
        responses = []
        for target in targets:
            # AoEr11 §3.3: a non-empty MAC mask list admits only the initiators on it
            if target.mask_list and src not in target.mask_list:
                continue
            reply = self.process_request(target, frame, src, first >> VERSION_SHIFT, command, tag, counters)
            if reply is not None:
                responses.append(reply)
        if not responses:
            self.dropped += 1
        return responses

    def process_request(self, target, frame, src, version, command, tag, counters) -> bytes | None:
        def error(code: AoeError, body: bytes = b"") -> bytes:
            counters.errors += 1
            return response_header(src, self.mac, code, target.shelf, target.slot, command, tag) + body

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
        argument = frame[HEADER_BYTES:ATA_HEADER_BYTES]
        # AoEr11 §3.4: a reserved target serves only the reservation's members (IDENTIFY is harmless)
        if target.reservations and src not in target.reservations and cmd != IDENTIFY_DEVICE:
            return error(AoeError.TARGET_RESERVED, argument)
        try:
            disk = self.disks.open(src, self.catalogue.get(target.image_name), target.config.read_only)
        except (OverlayError, CatalogueError, OSError) as e:
            log.error("event=disk-unavailable client=%s image=%s reason=%r", format_mac(src), target.image_name, str(e))
            return error(AoeError.DEVICE_UNAVAILABLE, argument)
        lba = int.from_bytes(lba_bytes, "little")
        data = b""
        status, ata_error, count_out = STATUS_DRDY, 0, 0
        if cmd in (READ_SECTORS, READ_SECTORS_EXT, WRITE_SECTORS, WRITE_SECTORS_EXT):
            lba &= LBA28_MASK if cmd in (READ_SECTORS, WRITE_SECTORS) else LBA48_MASK
            writing = cmd in (WRITE_SECTORS, WRITE_SECTORS_EXT)
            # AoEr11 §3.1: no more sectors than one frame carries at this MTU (the Query Config sector count)
            if count > self.max_sectors:
                return error(AoeError.BAD_ARGUMENT, argument)
            # AoEr11 §3.1: a write carries all its data
            if writing and n - ATA_HEADER_BYTES < count * SECTOR_BYTES:
                return error(AoeError.BAD_ARGUMENT, argument)
            # ATA/ATAPI-7 V1 §6.45: a sector beyond the medium is IDNF
            if lba + count > disk.sectors:
                status, ata_error, count_out = STATUS_DRDY | STATUS_ERR, ERROR_IDNF, count
            # ATA/ATAPI-7 V1 §6.64: a write the device refuses is aborted (a read-only image)
            elif writing and disk.read_only:
                status, ata_error, count_out = STATUS_DRDY | STATUS_ERR, ERROR_ABRT, count
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
                    status, ata_error, count_out, data = STATUS_DRDY | STATUS_ERR, ERROR_ABRT, count, b""
        elif cmd == IDENTIFY_DEVICE:
            # ATA/ATAPI-7 V1 §6.17: one sector of data (AoEr11 carries it in one frame)
            if count != 1:
                return error(AoeError.BAD_ARGUMENT, argument)
            data = self.identify(disk)
        elif cmd == CHECK_POWER_MODE:
            count_out = POWER_MODE_ACTIVE
        elif cmd in (FLUSH_CACHE, FLUSH_CACHE_EXT):
            # ATA/ATAPI-7 V1 §6.14: acknowledged only once every completed write is on stable storage
            try:
                disk.flush()
                counters.flushes += 1
            except OSError as e:
                log.error("event=flush-error client=%s reason=%r", format_mac(src), str(e))
                status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_ABRT
        else:
            # ATA/ATAPI-7 V1 §6: a command the device does not implement is aborted
            status, ata_error = STATUS_DRDY | STATUS_ERR, ERROR_ABRT
        if status & STATUS_ERR:
            counters.errors += 1
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.ATA, tag)
        return header + ATA_ARG.pack(aflags, ata_error, count_out, status, lba_bytes) + data

    def identify(self, disk: ClientDisk) -> bytes:
        serial = "SV" + disk.client.hex().upper()
        return identify_device_data(disk.sectors, serial, "storvisor AoE disk " + disk.image.name, "SV%d" % FIRMWARE_VERSION)

    def process_query_config(self, target, frame, src, tag, error) -> bytes | None:
        n = len(frame)
        # AoEr11 §3.2: the config argument must be complete
        if n < CONFIG_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        _buffers, _firmware, _sectors, vercmd, length = CONFIG_ARG.unpack_from(frame, HEADER_BYTES)
        ccmd = vercmd & 0x0F
        string = bytes(frame[CONFIG_HEADER_BYTES : CONFIG_HEADER_BYTES + length])
        # AoEr11 §3.2: a config string is at most 1024 bytes and must be in the frame
        if ccmd != ConfigCommand.READ and (length > CONFIG_STRING_MAX or CONFIG_HEADER_BYTES + length > n):
            return error(AoeError.BAD_ARGUMENT)
        code = 0
        if ccmd == ConfigCommand.TEST_EXACT:
            # AoEr11 §3.2: answer only when the strings are equal
            if string != target.config_string:
                return None
        elif ccmd == ConfigCommand.TEST_PREFIX:
            # AoEr11 §3.2: answer only when the request's string is a prefix of the target's
            if not target.config_string.startswith(string):
                return None
        elif ccmd == ConfigCommand.SET_IF_EMPTY:
            # AoEr11 §3.2: a set string is kept unless it is the same string
            if target.config_string and target.config_string != string:
                code = AoeError.CONFIG_STRING_PRESENT
            else:
                target.config_string = string
        elif ccmd == ConfigCommand.FORCE_SET:
            target.config_string = string
        elif ccmd != ConfigCommand.READ:
            code = AoeError.BAD_ARGUMENT
        current = target.config_string
        body = CONFIG_ARG.pack(self.buffer_count, FIRMWARE_VERSION, self.max_sectors, AOE_VERSION << VERSION_SHIFT | ccmd, len(current))
        return response_header(src, self.mac, code, target.shelf, target.slot, AoeCommand.QUERY_CONFIG, tag) + body + current

    def process_mac_mask_list(self, target, frame, src, tag, error) -> bytes:
        n = len(frame)
        # AoEr11 §3.3: the mask argument must be complete
        if n < MASK_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        mcmd, _merror, dcount = MASK_ARG.unpack_from(frame, HEADER_BYTES)
        merror = MaskError.NONE
        if mcmd == MaskCommand.EDIT:
            # AoEr11 §3.3: every directive the count announces must be in the frame
            if MASK_HEADER_BYTES + dcount * MASK_DIRECTIVE_BYTES > n:
                return error(AoeError.BAD_ARGUMENT)
            for i in range(dcount):
                dcmd, mac = MASK_DIRECTIVE.unpack_from(frame, MASK_HEADER_BYTES + i * MASK_DIRECTIVE_BYTES)
                if dcmd == MaskDirective.NONE:
                    continue
                if dcmd == MaskDirective.DELETE:
                    if mac in target.mask_list:
                        target.mask_list.remove(mac)
                    continue
                if dcmd == MaskDirective.ADD:
                    if mac in target.mask_list:
                        continue
                    if len(target.mask_list) < MASK_LIST_MAX:
                        target.mask_list.append(mac)
                        continue
                    merror = MaskError.LIST_FULL
                else:
                    merror = MaskError.BAD_DIRECTIVE
                # AoEr11 §3.3: stop at the failing directive; its index is the response's count
                header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.MAC_MASK_LIST, tag)
                return header + MASK_ARG.pack(mcmd, merror, i)
        elif mcmd != MaskCommand.READ:
            return error(AoeError.BAD_ARGUMENT)
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.MAC_MASK_LIST, tag)
        directives = b"".join(MASK_DIRECTIVE.pack(MaskDirective.NONE, mac) for mac in target.mask_list)
        return header + MASK_ARG.pack(mcmd, merror, len(target.mask_list)) + directives

    def process_reserve_release(self, target, frame, src, tag, error) -> bytes:
        n = len(frame)
        # AoEr11 §3.4: the reserve argument must be complete
        if n < RESERVE_HEADER_BYTES:
            return error(AoeError.BAD_ARGUMENT)
        rcmd, nmacs = RESERVE_ARG.unpack_from(frame, HEADER_BYTES)
        if rcmd == ReserveCommand.SET:
            # AoEr11 §3.4: only a member of the current reservation may change it
            if target.reservations and src not in target.reservations:
                return error(AoeError.TARGET_RESERVED)
        if rcmd in (ReserveCommand.SET, ReserveCommand.FORCE_SET):
            # AoEr11 §3.4: every MAC the count announces must be in the frame
            if RESERVE_HEADER_BYTES + nmacs * MAC_BYTES > n:
                return error(AoeError.BAD_ARGUMENT)
            start = RESERVE_HEADER_BYTES
            target.reservations = [bytes(frame[start + i * MAC_BYTES : start + (i + 1) * MAC_BYTES]) for i in range(nmacs)]
        elif rcmd != ReserveCommand.READ:
            return error(AoeError.BAD_ARGUMENT)
        header = response_header(src, self.mac, 0, target.shelf, target.slot, AoeCommand.RESERVE_RELEASE, tag)
        return header + RESERVE_ARG.pack(rcmd, len(target.reservations)) + b"".join(target.reservations)
