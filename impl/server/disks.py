"""Each client's disk: its base image seen through its own copy-on-write overlay.

A client's overlay lives at `STATE/overlays/<client MAC>/<image name>.overlay`.
Overlays are opened on the client's first request, so clients that never
appear cost nothing. A read-only target has no overlay: writes are refused.
"""

import logging
import os
import threading
import time

from spec.aoe.constants import SECTOR_BYTES

from .catalogue import Image
from .datapath import Counters, library
from .frames import ATA_HEADER_BYTES, format_mac
from .overlay import Overlay, OverlayError, read_exactly

log = logging.getLogger("storvisor.server")
OVERLAY_DIRECTORY = "overlays"
OVERLAY_SUFFIX = ".overlay"


class ClientCounters(Counters):
    """What one client did, for the operator (`storvisor clients`). Its memory is the C data path's
    `struct dp_counters`: the data path counts plain transfers there, the checked path here."""

    def saw_request(self, frame: bytes) -> None:
        """Count a request that repeats one of the client's last RECENT_REQUESTS: the same tag (a
        network duplicate), or the same command and argument under a new tag (how Linux retransmits)."""
        library().dp_saw_request(self, bytes(frame[:ATA_HEADER_BYTES]).ljust(ATA_HEADER_BYTES, b"\0"))

    def describe(self) -> dict:
        return {
            "requests": self.requests,
            "read_bytes": self.read_bytes,
            "written_bytes": self.written_bytes,
            "errors": self.errors,
            "duplicates": self.duplicates,
            "flushes": self.flushes,
            "last_activity": self.last_activity,
        }


class ClientDisk:
    """One client's view of one image: reads fall through the overlay to the base image."""

    def __init__(self, client: bytes, image: Image, base_fd: int, overlay_path: str | None, overlay_created=lambda: None):
        self.client = client
        self.image = image
        self.sectors = image.sectors
        self.base_fd = base_fd
        self.overlay_path = overlay_path  # None: read-only
        self.read_only = overlay_path is None
        self.overlay: Overlay | None = None
        self.overlay_created = overlay_created
        if overlay_path is not None and os.path.exists(overlay_path):
            self.ensure_overlay()

    def ensure_overlay(self) -> Overlay:
        """The overlay, created on the client's first write: a client that only reads costs no file."""
        if self.overlay is None:
            os.makedirs(os.path.dirname(self.overlay_path), exist_ok=True)
            self.overlay = Overlay(self.overlay_path, self.image.identity, self.image.sectors)
            self.overlay_created()  # routes to this disk registered before were told it has no overlay
        return self.overlay

    def read(self, lba: int, count: int) -> bytes:
        out = bytearray(count * SECTOR_BYTES)
        self.read_into(lba, count, memoryview(out))
        return bytes(out)

    def read_into(self, lba: int, count: int, out: memoryview) -> None:
        """Fill `out` (count sectors long) in place: no copy between the kernel and the answer frame."""
        overlay = self.overlay
        if overlay is None or not overlay.covers_any(lba, count):
            read_exactly(self.base_fd, out, lba * SECTOR_BYTES)
        else:
            overlay.read_into(lba, count, out, self.base_fd)

    def write(self, lba: int, data: bytes) -> None:
        (self.overlay or self.ensure_overlay()).write(lba, data)

    def flush(self) -> None:
        if self.overlay is not None:
            self.overlay.flush()

    def describe(self) -> dict:
        overlay = self.overlay
        return {
            "client": format_mac(self.client),
            "image": self.image.name,
            "read_only": self.read_only,
            "overlay_sectors": overlay.sectors_written() if overlay else 0,
            "overlay_bytes": overlay.sectors_written() * SECTOR_BYTES if overlay else 0,
            "overlay_journal_bytes": overlay.journal_bytes() if overlay else 0,
            "overlay_file_bytes": overlay.file_bytes() if overlay else 0,
        }


def overlay_path(state: str, client: bytes, image_name: str) -> str:
    return os.path.join(state, OVERLAY_DIRECTORY, client.hex(), image_name + OVERLAY_SUFFIX)


class DiskRegistry:
    """Every client disk opened so far, one per (client, image), and the base images' file descriptors."""

    def __init__(self, state: str):
        self.state = state
        self.disks: dict[tuple[bytes, str, bool], ClientDisk] = {}  # (client, image, read-only)
        self.failures: dict[tuple[bytes, str, bool], str] = {}  # overlays that could not be opened, and why
        self.base_fds: dict[str, int] = {}
        self.counters: dict[bytes, ClientCounters] = {}
        self.lock = threading.Lock()
        self.route_hooks: list = []  # called when an overlay is created or about to close: the data path's routes are stale

    def counters_for(self, client: bytes) -> ClientCounters:
        counters = self.counters.get(client)
        if counters is None:
            counters = self.counters[client] = ClientCounters()
        counters.last_activity = time.time()
        return counters

    def open(self, client: bytes, image: Image, read_only: bool) -> ClientDisk:
        """The client's disk over `image`; raises OverlayError when its overlay cannot be used."""
        key = (client, image.name, read_only)
        disk = self.disks.get(key)
        if disk is not None:
            return disk
        if key in self.failures:
            raise OverlayError(self.failures[key])
        with self.lock:
            base_fd = self.base_fds.get(image.path)
            if base_fd is None:
                base_fd = self.base_fds[image.path] = os.open(image.path, os.O_RDONLY)
            path = None if read_only else overlay_path(self.state, client, image.name)
            try:
                disk = ClientDisk(client, image, base_fd, path, self.routes_stale)
            except OverlayError as e:
                self.failures[key] = str(e)  # reported once; every request of the client gets DEVICE_UNAVAILABLE
                log.error("event=overlay-unusable client=%s image=%s reason=%r", format_mac(client), image.name, str(e))
                raise
            self.disks[key] = disk
            log.info("event=client-disk client=%s image=%s overlay_sectors=%d read_only=%s", format_mac(client), image.name,
                     disk.overlay.sectors_written() if disk.overlay else 0, read_only)
            return disk

    def routes_stale(self) -> None:
        """A route of the data path names a disk's overlay (or its absence): after a change, none may stay."""
        for hook in self.route_hooks:
            hook()

    def forget(self, client: bytes, image_name: str) -> None:
        """Drop what is known of the client's disk over this image, so its next request opens it anew."""
        keys = [k for k in (*self.disks, *self.failures) if k[:2] == (client, image_name)]
        self.routes_stale()
        for key in keys:
            disk = self.disks.pop(key, None)
            if disk is not None and disk.overlay is not None:
                disk.overlay.close()
            self.failures.pop(key, None)

    def close(self) -> None:
        self.routes_stale()
        for disk in self.disks.values():
            if disk.overlay is not None:
                disk.overlay.close()
        for fd in self.base_fds.values():
            os.close(fd)
        self.disks.clear()
        self.base_fds.clear()
