"""A client's copy-on-write overlay: a log of checksummed write records.

File layout: a 128-byte file header (magic, format version, the base image's
identity and size), then records. A record is a 24-byte header (magic, LBA,
sector count, CRC-32 of header fields and data) followed by its data. One
record is written with one `pwritev`, so when a WRITE is acknowledged its data
and its allocation are both in the operating system: a `kill -9` of the server
loses nothing. The allocation (the record) counts only when its checksum over
the data is intact, so a record can never point to data that did not reach
the disk ("data before allocation"). FLUSH is `fdatasync` of the log.

The index (which sector's latest data is where in the log) and the two hot
operations, writing a record and reading sectors, are the C data path's
(`datapath/overlay.c`), so plain transfers answered in C and commands
answered here share one index. This file reads and recovers the format.

A write that covers exactly one record written since the last completed
flush (all of its sectors still live there) rewrites that record in place,
header and data in one `pwritev`: overwriting costs no new pages and the log
does not grow. A power loss can tear such a record; it then fails its
checksum and recovery cuts the log there, which loses only writes since the
last flush. So after a power loss every flushed write survives and every
sector holds its flushed data or a later write (ATA/ATAPI-7 V1 §6.14), but
the writes since the flush need not survive as a prefix in order. Records
from before the last flush are never rewritten, nor any while a commit copies
the log.

Recovery reads the log front to back and stops at the first record that is
torn or fails its checksum; the file is cut there. What remains contains
every write acknowledged before the last flush, and every sector holds its
flushed data or one of its later writes.
"""

import ctypes
import os
import struct
import threading
import zlib

from spec.aoe.constants import SECTOR_BYTES

from .datapath import library

FILE_MAGIC = b"STORVISOR-OVERLAY\n"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<18sH64sQ")  # magic, version, base identity (hex), base sectors
FILE_HEADER_BYTES = 128
RECORD_MAGIC = 0x52564F53  # "SOVR" little-endian: marks the start of a record
RECORD = struct.Struct("<IQII4x")  # magic, lba, count, crc32(lba, count, data)
RECORD_FIELDS = struct.Struct("<QI")
COMPACT_THRESHOLD_BYTES = 16 << 20  # compact at open once this much of the log, and more than is live, is dead
MAX_COPY_RUN_SECTORS = 2048  # sectors per record when compacting
MAX_RECORD_SECTORS = 65536  # ATA/ATAPI-7: no command moves more sectors (LBA48 count 0)


class OverlayError(Exception):
    """An overlay file that cannot be used as it is; the message says why and what to do."""


def record_crc(lba: int, count: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(RECORD_FIELDS.pack(lba, count)))


class Overlay:
    """The sectors one client has written over one base image, and where in the log each one lives."""

    def __init__(self, path: str, base_identity: str, base_sectors: int):
        self.path = path
        self.base_identity = base_identity
        self.base_sectors = base_sectors
        self.lib = library()
        self.lock = threading.Lock()  # serialises reset/compaction against a commit reading the log
        fd = self._open()
        self.handle = None
        try:
            self.handle = self._recover(fd)  # the data path's overlay: log, end and index
        finally:
            if self.handle is None:
                os.close(fd)
        self.commits = ctypes.c_int32(0)  # commits copying the log: no record may change meanwhile
        self.lib.dp_overlay_hold_with(self.handle, ctypes.pointer(self.commits))
        if self.garbage_bytes() > max(COMPACT_THRESHOLD_BYTES, self.live_bytes()):
            self.compact()

    def _open(self) -> int:
        new = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if new or os.fstat(fd).st_size < FILE_HEADER_BYTES:
            self._write_header(fd)
            if new:
                fsync_directory(os.path.dirname(self.path))
            return fd
        magic, version, raw_identity, sectors = FILE_HEADER.unpack_from(os.pread(fd, FILE_HEADER.size, 0))
        identity = raw_identity.rstrip(b"\0").decode(errors="replace")
        if magic != FILE_MAGIC or version != FORMAT_VERSION:
            os.close(fd)
            raise OverlayError(f"{self.path}: not a storvisor overlay (format {FORMAT_VERSION})")
        if identity != self.base_identity or sectors != self.base_sectors:
            os.close(fd)
            raise OverlayError(
                f"{self.path}: made over base image {identity[:12]}…, which is no longer "
                f"the image assigned (now {self.base_identity[:12]}…); reset the client to use the new image"
            )
        return fd

    def _write_header(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        header = FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, self.base_identity.encode(), self.base_sectors)
        os.pwrite(fd, header.ljust(FILE_HEADER_BYTES, b"\0"), 0)
        os.fdatasync(fd)

    @property
    def fd(self) -> int:
        return self.lib.dp_overlay_fd(self.handle)

    @property
    def end(self) -> int:
        return self.lib.dp_overlay_end(self.handle)

    def _recover(self, fd: int) -> int:
        """The overlay with its index rebuilt from the log; the log is cut at the first torn or corrupt record."""
        size = os.fstat(fd).st_size
        offset = FILE_HEADER_BYTES
        runs = []
        while offset + RECORD.size <= size:
            magic, lba, count, crc = RECORD.unpack(os.pread(fd, RECORD.size, offset))
            length = count * SECTOR_BYTES
            if magic != RECORD_MAGIC or not 0 < count <= MAX_RECORD_SECTORS or lba + count > self.base_sectors:
                break
            if offset + RECORD.size + length > size:
                break
            data = os.pread(fd, length, offset + RECORD.size)
            if record_crc(lba, count, data) != crc:
                break
            runs.append((lba, count, offset + RECORD.size))
            offset += RECORD.size + length
        if offset != size:
            os.ftruncate(fd, offset)
            os.fdatasync(fd)
        return self._indexed(fd, offset, runs)

    def _indexed(self, fd: int, end: int, runs) -> int:
        """A data path overlay over the log `fd` ending at `end`, whose sectors are the (lba, count, offset) runs, later ones winning."""
        handle = self.lib.dp_overlay_new(fd, end)
        if not handle:
            raise MemoryError("no memory for an overlay index")
        for lba, count, offset in runs:
            if self.lib.dp_overlay_index_run(handle, lba, count, offset):
                self.lib.dp_overlay_free(handle)
                raise MemoryError("no memory for an overlay index")
        return handle

    def write(self, lba: int, data: bytes) -> None:
        """Write one record (appended, or rewritten in place: see above); when this returns the write
        is in the OS (it survives the process)."""
        count, rest = divmod(len(data), SECTOR_BYTES)
        if not 0 < count <= MAX_RECORD_SECTORS or rest or lba + count > self.base_sectors:
            raise ValueError(f"{self.path}: a write is 1 to {MAX_RECORD_SECTORS} whole sectors inside the image, "
                             f"got {len(data)} bytes at sector {lba} of {self.base_sectors}")  # recovery would cut such a record
        error = self.lib.dp_overlay_write(self.handle, lba, bytes(data), count)
        if error:
            raise OSError(-error, f"{self.path}: writing a record: {os.strerror(-error)}")

    def flush(self) -> None:
        """Every write so far reaches stable storage (FLUSH CACHE); its records are never rewritten in place again."""
        os.fdatasync(self.fd)
        self.lib.dp_overlay_mark_flushed(self.handle)

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

    def log_bytes(self) -> int:
        return self.end

    def live_bytes(self) -> int:
        return self.sectors_written() * SECTOR_BYTES

    def garbage_bytes(self) -> int:
        """Log bytes that no read will ever return: overwritten sectors and record headers."""
        return self.end - FILE_HEADER_BYTES - self.live_bytes()

    def compact(self) -> None:
        """Rewrite the log with only the latest data of each sector, one record per run.

        The new log is written beside the old one, made durable, and renamed over
        it (then the directory is synced): a crash at any point leaves either the
        old log or the new one, both complete. Clients wait while it copies."""
        with self.lock:
            partial = self.path + ".compact"
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                self._write_header(fd)
                end, runs = FILE_HEADER_BYTES, []
                for lba, count, offset in log_runs(self.snapshot()):
                    data = os.pread(self.fd, count * SECTOR_BYTES, offset)
                    os.pwrite(fd, RECORD.pack(RECORD_MAGIC, lba, count, record_crc(lba, count, data)) + data, end)
                    runs.append((lba, count, end + RECORD.size))
                    end += RECORD.size + len(data)
                os.fdatasync(fd)
                compacted = self._indexed(fd, end, runs)
                os.rename(partial, self.path)
                fsync_directory(os.path.dirname(self.path))
            except BaseException:
                os.close(fd)
                raise
            old_fd = self.fd
            self.lib.dp_overlay_adopt(self.handle, compacted)  # the same overlay to the data path, now over the new log
            os.close(old_fd)

    def reset(self) -> None:
        """Forget every write: the client sees its base image again. Durable when it returns."""
        with self.lock:
            self._write_header(self.fd)
            self.lib.dp_overlay_clear(self.handle, FILE_HEADER_BYTES)

    def snapshot(self) -> dict[int, int]:
        """A copy of the index; the log is append-only, so its offsets stay valid until a reset."""
        capacity = self.sectors_written()
        pairs = (ctypes.c_uint64 * (2 * capacity))()
        n = self.lib.dp_overlay_export(self.handle, pairs, capacity)
        return dict(zip(pairs[0 : 2 * n : 2], pairs[1 : 2 * n : 2]))

    def close(self) -> None:
        """Flush and close the log. Whatever pointed at this overlay in the data path must be gone."""
        fd = self.fd
        self.lib.dp_overlay_free(self.handle)
        self.handle = None
        os.fdatasync(fd)
        os.close(fd)


def log_runs(index: dict[int, int], limit: int = MAX_COPY_RUN_SECTORS):
    """(lba, count, log offset) for each run of sectors consecutive both on the disk and in the log."""
    items = sorted(index.items())
    i = 0
    while i < len(items):
        lba, offset = items[i]
        count = 1
        while i + count < len(items) and count < limit and items[i + count] == (lba + count, offset + count * SECTOR_BYTES):
            count += 1
        yield lba, count, offset
        i += count


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
