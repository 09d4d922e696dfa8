"""A client's copy-on-write overlay: its sectors in place in a sparse file, and a journal of which it holds.

File layout (format 2), little-endian:
- two header slots of 512 bytes at offsets 0 and 512; the valid one (magic, format, CRC-32) with the
  higher sequence number counts, and an update writes the other, so a torn header write loses
  nothing. A header names the base image (identity, sectors), the boot it was written in, where the
  journal starts, its epoch, and `flushed_end`: the journal up to there reached stable storage;
- data from DATA_OFFSET: sector `lba` of the client's disk at DATA_OFFSET + lba * 512. The file is
  sparse, so it takes the space of the sectors written;
- the allocation journal, after the data region: 24-byte records (magic, count, lba, CRC-32 of the
  data they allocate, CRC-32 of those fields seeded with the journal's epoch), one per run of
  sectors a write allocated. A record of an earlier epoch (before a reset or a checkpoint) fails
  its field CRC, so old records left behind are never read as new.

A write puts its data in place with one `pwrite` and then, for sectors not allocated before,
appends their records (the C data path's `dp_overlay_write`): data before its allocation, both in
the operating system when the write is acknowledged, so a `kill -9` of the server loses nothing.
An overwrite of allocated sectors touches only the page cache pages a plain disk image would.
FLUSH is `fdatasync`, then, if the journal grew, a header with the new `flushed_end`, and
`fdatasync` again: only then may a flushed record's sectors be overwritten with no record of it.

Recovery reads the journal from its start and stops at the first record that is torn or invalid.
- Written in this boot (the header's boot id is the running kernel's): the page cache survived the
  server, so every record and its data are there. All count.
- After a reboot (a power loss, a crash of the machine): records before `flushed_end` count. A
  later record counts only if its data's CRC-32 matches the data in place; else its sectors fall
  back to the base image, which is what they held at the last flush: a sector is allocated once
  until a reset, so a record after `flushed_end` allocated sectors that were not the overlay's at
  the flush. A sector overwritten since the flush holds, by the disk's sector atomicity, the
  flushed data or a later write. So every write acknowledged before the last completed flush
  survives and every sector holds its flushed data or a later write (ATA/ATAPI-7 V1 §6, FLUSH CACHE;
  `spec.invariants.flush_is_durable`). When records were dropped the journal is rewritten
  (a checkpoint), so that they never count later.

A checkpoint writes the journal anew, one record per run of allocated sectors, in a new epoch,
beside the old one; it counts once a header names it. It runs on the operator's `compact`, after a
recovery dropped records, and on opening when the journal is long and mostly redundant.
"""

import ctypes
import dataclasses
import functools
import os
import struct
import threading
import zlib

from spec.aoe.constants import SECTOR_BYTES

from .datapath import library

FILE_MAGIC = b"STORVISOR-OVERLAY\n"
FORMAT_VERSION = 2
HEADER = struct.Struct("<18sHQ64sQ16sQQQ")  # magic, format, sequence, base identity (hex), base sectors, boot id,
#                                             journal start, journal epoch, flushed end; then CRC-32 of these
HEADER_CRC = struct.Struct("<I")
HEADER_SLOT_BYTES = 512
DATA_OFFSET = 4096
JOURNAL_ALIGNMENT = 4096
RECORD_MAGIC = 0x52564F53  # "SOVR" little-endian: marks the start of a record
RECORD = struct.Struct("<IIQII")  # magic, count, lba, crc32(data), crc32(the fields before, seeded with the epoch)
RECORD_FIELDS = struct.Struct("<IIQI")
MAX_RECORD_SECTORS = 65536  # ATA/ATAPI-7: no command moves more sectors (LBA48 count 0)
COMMIT_CHUNK_SECTORS = 2048  # a commit copies 1 MiB at a time; a write waits for at most that
CHECKPOINT_MIN_BYTES = 1 << 20  # rewrite the journal on opening once it is this long and twice what its runs need
JOURNAL_READ_BYTES = 1 << 20
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class OverlayError(Exception):
    """An overlay file that cannot be used as it is; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Header:
    sequence: int
    boot_id: bytes
    journal_start: int
    epoch: int
    flushed_end: int


@functools.cache
def current_boot_id() -> bytes:
    """The running kernel's boot id: a page cache written under another one did not survive. Without
    /proc, one of this process's own: every other process then counts as another boot, which is safe
    (records since the last flush are checked by their CRC) though a kill -9 may then cost writes."""
    try:
        with open(BOOT_ID_PATH) as f:
            return bytes.fromhex(f.read().strip().replace("-", ""))
    except (OSError, ValueError):
        return os.urandom(16)


def epoch_seed(epoch: int) -> int:
    return zlib.crc32(struct.pack("<Q", epoch))


def encode_record(lba: int, count: int, data_crc: int, epoch: int) -> bytes:
    fields = RECORD_FIELDS.pack(RECORD_MAGIC, count, lba, data_crc)
    return fields + struct.pack("<I", zlib.crc32(fields, epoch_seed(epoch)))


def journal_home(sectors: int) -> int:
    """Where the journal of an overlay over `sectors` starts when it is new: after the data region."""
    end = DATA_OFFSET + sectors * SECTOR_BYTES
    return -(-end // JOURNAL_ALIGNMENT) * JOURNAL_ALIGNMENT


class Overlay:
    """The sectors one client has written over one base image, in place, and which they are."""

    def __init__(self, path: str, base_identity: str, base_sectors: int):
        self.path = path
        self.base_identity = base_identity
        self.base_sectors = base_sectors
        self.home = journal_home(base_sectors)
        self.lib = library()
        self.lock = threading.Lock()  # serialises reset and checkpoints against a commit's copy
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.handle = None
        try:
            self._recover(fd)
        except BaseException:
            if self.handle is not None:
                self.lib.dp_overlay_free(self.handle)
                self.handle = None
            os.close(fd)
            raise

    @property
    def fd(self) -> int:
        return self.lib.dp_overlay_fd(self.handle)

    @property
    def journal_end(self) -> int:
        return self.lib.dp_overlay_journal_end(self.handle)

    # The header.

    def _read_header(self, fd: int) -> Header | None:
        best = None
        for slot in range(2):
            raw = os.pread(fd, HEADER.size + HEADER_CRC.size, slot * HEADER_SLOT_BYTES)
            if len(raw) < HEADER.size + HEADER_CRC.size or zlib.crc32(raw[: HEADER.size]) != HEADER_CRC.unpack_from(raw, HEADER.size)[0]:
                continue
            magic, version, sequence, raw_identity, sectors, boot_id, start, epoch, flushed_end = HEADER.unpack_from(raw)
            if magic != FILE_MAGIC or version != FORMAT_VERSION:
                continue
            identity = raw_identity.rstrip(b"\0").decode(errors="replace")
            if identity != self.base_identity or sectors != self.base_sectors:
                raise OverlayError(
                    f"{self.path}: made over base image {identity[:12]}…, which is no longer "
                    f"the image assigned (now {self.base_identity[:12]}…); reset the client to use the new image"
                )
            if best is None or sequence > best.sequence:
                best = Header(sequence, boot_id, start, epoch, flushed_end)
        return best

    def _write_header(self, fd: int, header: Header) -> None:
        """Write `header` into the slot the current one is not in; durable after the caller's fdatasync."""
        fields = HEADER.pack(FILE_MAGIC, FORMAT_VERSION, header.sequence, self.base_identity.encode(), self.base_sectors,
                             header.boot_id, header.journal_start, header.epoch, header.flushed_end)
        slot = fields + HEADER_CRC.pack(zlib.crc32(fields))
        os.pwrite(fd, slot.ljust(HEADER_SLOT_BYTES, b"\0"), (header.sequence % 2) * HEADER_SLOT_BYTES)
        self.header = header

    def _next_header(self, **changes) -> Header:
        return dataclasses.replace(self.header, sequence=self.header.sequence + 1, **changes)

    # Opening.

    def _recover(self, fd: int) -> None:
        header = self._read_header(fd)
        if header is None:
            start = os.pread(fd, 2 * HEADER_SLOT_BYTES, 0)
            if start.strip(b"\0"):
                older = start.startswith(FILE_MAGIC)
                raise OverlayError(f"{self.path}: " + (
                    f"an overlay of format {struct.unpack_from('<H', start, len(FILE_MAGIC))[0]}, not {FORMAT_VERSION}; "
                    "reset the client to start it anew" if older else f"not a storvisor overlay (format {FORMAT_VERSION})"))
            self._create(fd)  # no header was ever written, so no write was either: a creation cut short
            return
        self.header = header
        runs, end, dropped = self._read_journal(fd, header)
        self.handle = self._indexed(fd, end, runs)
        if dropped:
            self._checkpoint(fd)  # the dropped records must never count later
        else:
            if end != os.fstat(fd).st_size:
                os.ftruncate(fd, max(end, DATA_OFFSET) if runs else DATA_OFFSET)  # a torn tail; or no sector left at all
            os.fdatasync(fd)
            self._write_header(fd, self._next_header(boot_id=current_boot_id(), flushed_end=end))
            os.fdatasync(fd)
        records = (end - header.journal_start) // RECORD.size
        if end - header.journal_start > CHECKPOINT_MIN_BYTES and records > 2 * len(list(self.runs())):
            self._checkpoint(fd)

    def _create(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        self.header = Header(0, current_boot_id(), self.home, 0, self.home)
        self._write_header(fd, self.header)
        os.ftruncate(fd, DATA_OFFSET)
        os.fdatasync(fd)
        fsync_directory(os.path.dirname(self.path))
        self.handle = self._indexed(fd, self.home, [])

    def _read_journal(self, fd: int, header: Header):
        """(runs that count, where the journal ends, whether records were dropped); see the module's docstring."""
        size = os.fstat(fd).st_size
        trust_all = header.boot_id == current_boot_id()
        seed = epoch_seed(header.epoch)
        runs, dropped = [], False
        offset, buffer, buffered_at = header.journal_start, b"", header.journal_start
        while offset + RECORD.size <= size:
            if offset + RECORD.size > buffered_at + len(buffer):
                buffered_at, buffer = offset, os.pread(fd, min(JOURNAL_READ_BYTES, size - offset), offset)
            magic, count, lba, data_crc, fields_crc = RECORD.unpack_from(buffer, offset - buffered_at)
            if (magic != RECORD_MAGIC or zlib.crc32(buffer[offset - buffered_at : offset - buffered_at + RECORD_FIELDS.size], seed) != fields_crc
                    or not 0 < count <= MAX_RECORD_SECTORS or lba + count > self.base_sectors):
                break
            if trust_all or offset < header.flushed_end or data_matches(fd, lba, count, data_crc):
                runs.append((lba, count))
            else:
                dropped = True
            offset += RECORD.size
        if offset < header.flushed_end:
            raise OverlayError(f"{self.path}: its journal is damaged at byte {offset}, before the last flush "
                               f"(up to byte {header.flushed_end}); the storage under it lost data")
        return runs, offset, dropped

    def _indexed(self, fd: int, journal_end: int, runs) -> int:
        handle = self.lib.dp_overlay_new(fd, self.base_sectors, journal_end, self.header.epoch)
        if not handle:
            raise MemoryError("no memory for an overlay's allocation map")
        for lba, count in runs:
            if self.lib.dp_overlay_allocate(handle, lba, count):
                self.lib.dp_overlay_free(handle)
                raise MemoryError("no memory for an overlay's allocation map")
        return handle

    # The journal rewritten.

    def _checkpoint(self, fd: int) -> None:
        """Write the journal anew in a new epoch, one record per run, and switch to it durably.

        The new journal goes where the old one's home was, if it fits below the old journal (the
        file is then cut after it), else after the old one (whose space is then given back). Its
        records are trusted from the start (the header that names it says they are flushed), so
        their data CRC is not needed and is 0."""
        epoch = self.header.epoch + 1
        records = b"".join(encode_record(lba, count, 0, epoch) for lba, count in self.runs())
        old_start, old_end = self.header.journal_start, self.journal_end
        start = self.home if self.home + len(records) <= old_start else -(-old_end // JOURNAL_ALIGNMENT) * JOURNAL_ALIGNMENT
        os.pwrite(fd, records, start)
        os.fdatasync(fd)
        end = start + len(records)
        self._write_header(fd, self._next_header(boot_id=current_boot_id(), journal_start=start, epoch=epoch, flushed_end=end))
        os.fdatasync(fd)
        if start == self.home:
            os.ftruncate(fd, max(end, DATA_OFFSET) if records else DATA_OFFSET)
        else:
            punch_hole(fd, old_start, start - old_start)
        self.lib.dp_overlay_set_journal(self.handle, end, epoch)

    def runs(self, limit: int = MAX_RECORD_SECTORS):
        """(lba, count) of each run of sectors the overlay holds, at most `limit` long, in order."""
        lba = 0
        while lba < self.base_sectors:
            lba += self.lib.dp_overlay_run(self.handle, lba, self.base_sectors - lba, 0)
            count = self.lib.dp_overlay_run(self.handle, lba, min(limit, self.base_sectors - lba), 1)
            if count:
                yield lba, count
            lba += count

    # What the server does with it.

    def write(self, lba: int, data: bytes) -> None:
        """Write sectors in place (allocating those not yet the overlay's); when this returns the write
        is in the OS (it survives the process)."""
        count, rest = divmod(len(data), SECTOR_BYTES)
        if not 0 < count <= MAX_RECORD_SECTORS or rest or lba + count > self.base_sectors:
            raise ValueError(f"{self.path}: a write is 1 to {MAX_RECORD_SECTORS} whole sectors inside the image, "
                             f"got {len(data)} bytes at sector {lba} of {self.base_sectors}")
        error = self.lib.dp_overlay_write(self.handle, lba, bytes(data), count)
        if error:
            raise OSError(-error, f"{self.path}: writing sectors {lba}+{count}: {os.strerror(-error)}")

    def flush(self) -> None:
        """Every write so far reaches stable storage (FLUSH CACHE), its allocation included."""
        fd = self.fd
        os.fdatasync(fd)
        end = self.journal_end
        if end != self.header.flushed_end:
            previous = self.header
            self._write_header(fd, self._next_header(flushed_end=end))
            try:
                os.fdatasync(fd)
            except OSError:
                self.header = previous  # not known durable: the next flush writes it again
                raise

    def read_into(self, lba: int, count: int, out, base_fd: int) -> None:
        """Fill `out` (a writable buffer of count sectors) with sectors lba..lba+count-1: the overlay's
        where written, else the base image's."""
        target = (ctypes.c_char * len(out)).from_buffer(out)
        error = self.lib.dp_overlay_read(self.handle, base_fd, lba, count, ctypes.addressof(target))
        del target
        if error:
            raise OSError(-error, f"{self.path}: reading sectors {lba}+{count}: {os.strerror(-error)}")

    def covers_any(self, lba: int, count: int) -> bool:
        """Whether any of the sectors lba..lba+count-1 has been written."""
        return bool(self.lib.dp_overlay_covers_any(self.handle, lba, count))

    def sectors_written(self) -> int:
        return self.lib.dp_overlay_sectors(self.handle)

    def journal_bytes(self) -> int:
        return self.journal_end - self.header.journal_start

    def file_bytes(self) -> int:
        """The space the file takes on its filesystem (it is sparse)."""
        return os.fstat(self.fd).st_blocks * 512

    def compact(self) -> None:
        """Rewrite the journal as one record per run of sectors (a checkpoint); durable when it returns."""
        with self.lock:
            self._checkpoint(self.fd)

    def reset(self) -> None:
        """Forget every write: the client sees its base image again. Durable when it returns."""
        with self.lock:
            fd = self.fd
            self._write_header(fd, self._next_header(journal_start=self.home, epoch=self.header.epoch + 1, flushed_end=self.home))
            os.fdatasync(fd)  # from here on no old record counts (a new epoch); then the space goes
            os.ftruncate(fd, DATA_OFFSET)
            os.fdatasync(fd)
            self.lib.dp_overlay_clear(self.handle, self.home, self.header.epoch)

    def commit_into(self, base_fd: int, destination_fd: int):
        """Start copying base image + overlay as they are now into `destination_fd`, which must have the
        image's size; returns the copy (callable from another thread) that finishes it. The client goes on
        writing meanwhile: a write first copies the chunk it falls in (datapath/commit.c). The caller
        holds `self.lock` until the copy returns."""
        error = self.lib.dp_commit_begin(self.handle, base_fd, destination_fd)
        if error:
            raise OSError(-error, f"{self.path}: starting a commit: {os.strerror(-error)}")

        def copy() -> None:
            try:
                while (left := self.lib.dp_commit_step(self.handle)) > 0:
                    pass
                if left < 0:
                    raise OSError(-left, f"{self.path}: copying for a commit: {os.strerror(-left)}")
            finally:
                self.lib.dp_commit_end(self.handle)

        return copy

    def close(self) -> None:
        """Flush and close. Whatever pointed at this overlay in the data path must be gone; a commit's copy
        finishes first."""
        with self.lock:
            fd = self.fd
            self.flush()
            self.lib.dp_overlay_free(self.handle)
            self.handle = None
            os.close(fd)


def data_matches(fd: int, lba: int, count: int, crc: int) -> bool:
    data = os.pread(fd, count * SECTOR_BYTES, DATA_OFFSET + lba * SECTOR_BYTES)
    return len(data) == count * SECTOR_BYTES and zlib.crc32(data) == crc


_libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02  # linux/falloc.h


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Give back the space of a byte range (an old journal); a filesystem that cannot keeps it, harmlessly."""
    if length > 0:
        _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, ctypes.c_long(offset), ctypes.c_long(length))


def read_exactly(fd: int, out, offset: int) -> None:
    """Fill the buffer `out` from `offset` with one `preadv`; a short read (a file cut under us) is an error."""
    if os.preadv(fd, (out,), offset) != len(out):
        raise OSError(f"short read at offset {offset}")


def fsync_directory(path: str) -> None:
    """Make a created or renamed directory entry durable."""
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
