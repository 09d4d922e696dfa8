"""The running server: configuration, catalogue, transport, target and control socket, in one loop.

One thread serves every client: it takes a batch of frames from the
transport, answers each in order, sends the batch's answers together, and
looks at the control socket when no frame has come for a moment. A batch is
what had arrived when it was read (at most 64 frames), so one client's
malformed frame or slow request never holds another's answer back for longer
than one batch. The C data path (`datapath/`) runs the loop and answers plain
reads and writes itself; it hands Python only the frames it does not answer.
"""

import ctypes
import logging
import os
import resource
import selectors
import signal
import socket
from dataclasses import dataclass

from spec.aoe.constants import SECTOR_BYTES

from .catalogue import Catalogue, CatalogueError
from .config import ConfigError, ServerConfig
from .control import ControlChannel, ControlServer
from .datapath import SERVE_ERROR, SERVE_IDLE, SERVE_REFRESH
from .disks import DiskRegistry
from .fanout import owner_of
from .frames import ATA_HEADER_BYTES, format_mac
from .operations import Operations
from .shared_state import SharedTargetState
from .statelock import StateLock
from .target import AoeTarget
from .transport import LinkTransport, RawTransport, UdpTransport, peer_text

log = logging.getLogger("storvisor.server")
BUSY_POLL_SECONDS = 0.0002  # keep polling this long after the last frame before sleeping in select
BUSY_POLL_NS = int(BUSY_POLL_SECONDS * 1e9)


def open_catalogue(config: ServerConfig) -> Catalogue:
    """The catalogue, with every image the targets name checked to be there."""
    catalogue = Catalogue(config.images, config.state)
    for number, target in enumerate(config.targets):
        if target.image not in catalogue.images:
            try:
                catalogue.get(target.image)
            except CatalogueError as e:
                raise ConfigError(f"{config.where(number, 'image')}: {e}") from None
    return catalogue


def raise_file_limit() -> None:
    """Each writing client holds its overlay open: allow as many files as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class WorkerRole:
    """What makes a Server one worker of several (see `workers.py`): its place, its socket in the
    fanout group, its connection to the parent for operator requests, the shared target state."""

    index: int
    count: int
    transport: LinkTransport
    control: socket.socket
    shared: SharedTargetState
    catalogue: Catalogue


class Server:
    def __init__(self, config: ServerConfig, worker: WorkerRole | None = None):
        self.config = config
        self.worker = worker
        self.lock = StateLock(config.state) if worker is None else None  # a worker's parent holds it
        raise_file_limit()
        self.transport = None
        self.disks = None
        self.control = None
        try:
            self.catalogue = open_catalogue(config) if worker is None else worker.catalogue
            if worker is not None:
                self.transport = worker.transport
            elif config.transport == "raw":
                self.transport = RawTransport(config.interface)
            else:
                self.transport = UdpTransport(*config.listen)
            mac, mtu = (self.transport.mac, self.transport.mtu) if self.transport.name == "raw" else (config.mac, config.mtu)
            self.disks = DiskRegistry(config.state)
            self.target = AoeTarget(config, self.catalogue, self.disks, mac, mtu)
            read_only = {t.image for t in config.targets if t.read_only}
            if worker is None:
                self.control = ControlServer(config.state, Operations(self.catalogue, self.disks, read_only))
            else:
                owns = lambda client: owner_of(client, worker.count) == worker.index  # noqa: E731
                self.control = ControlChannel(Operations(self.catalogue, self.disks, read_only, owns))
                self.control.add(worker.control)
        except BaseException:
            self.close()
            raise
        self.transport.open_batches(ATA_HEADER_BYTES + self.target.max_sectors * SECTOR_BYTES)  # the longest answer
        self.running = False
        self.logged_refusals = 0
        # several workers: worker 0 publishes what the commands only it receives set, the others take it in
        self.publish_shared = self.refresh_shared = None
        if worker is not None and worker.index == 0:
            self.publish_shared = lambda: worker.shared.publish(self.target.targets)
        elif worker is not None:
            self.refresh_shared = self.refresh_from_worker_0
            self.refresh_shared()
        log.info(
            "event=serving transport=%s address=%s mac=%s mtu=%d sectors_per_frame=%d targets=%d images=%d%s",
            config.transport, self.transport.address, format_mac(mac), mtu, self.target.max_sectors,
            len(config.targets), len(self.catalogue.images), "" if worker is None else f" worker={worker.index}/{worker.count}",
        )

    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT (or `stop()`, or a worker's parent going away), then flush every overlay."""
        selector = selectors.DefaultSelector()
        selector.register(self.transport, selectors.EVENT_READ, "frames")
        if self.worker is None:
            selector.register(self.control, selectors.EVENT_READ, "control")
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        else:
            selector.register(self.worker.control, selectors.EVENT_READ, "connection")
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers with SIGTERM
        self.running = True
        while self.running:
            for key, _ in selector.select(timeout=0.5):
                if key.data == "frames":
                    self.serve_frames()
                elif key.data == "control":
                    connection = self.control.accept()
                    if connection is not None:
                        selector.register(connection, selectors.EVENT_READ, "connection")
                else:
                    if not self.control.readable(key.fileobj):
                        selector.unregister(key.fileobj)
                        if self.worker is not None:
                            self.stop()  # the parent is gone
        selector.close()

    def serve_frames(self) -> None:
        """Answer frames until none has arrived for BUSY_POLL_SECONDS.

        Each round takes every waiting frame with one system call, answers them
        in order into the transport's outgoing buffers, and sends the answers
        with one system call. An answer leaves after its request's work is done
        (a write's `pwritev` returned, a flush's `fdatasync` returned), never
        before. Polling a little before sleeping again keeps the loop awake
        through a stream of requests, so an initiator's send does not have to
        wake it (a wake-up across CPUs costs more than answering a request).

        The data path's loop (`datapath/link.c`) answers plain transfers and hands
        over every other frame, which is answered here in its place in the batch."""
        try:
            self.serve_link()
        finally:
            if self.transport.name == "udp":
                self.log_refusals()

    def serve_link(self) -> None:
        lib, target, link = self.transport.lib, self.target, self.transport.link
        serve, frame_at, queue, done = lib.dp_link_serve, lib.dp_link_frame, lib.dp_link_queue, lib.dp_link_done
        datapath, process_frame_checked = target.datapath, target.process_frame_checked
        publish_shared = self.publish_shared
        length = ctypes.c_uint32()
        while True:
            index = serve(datapath, link, BUSY_POLL_NS)
            if index == SERVE_IDLE:
                return
            if index == SERVE_REFRESH:
                self.refresh_shared()  # what worker 0 published holds before the next batch is answered
                continue
            if index == SERVE_ERROR:
                error = ctypes.get_errno()
                raise OSError(error, f"receiving frames on {self.transport.address}: {os.strerror(error)}")
            frame = ctypes.string_at(frame_at(link, index, ctypes.byref(length)), length.value)
            responses = process_frame_checked(frame)
            if publish_shared is not None:
                publish_shared()
            for response in responses:
                queue(link, response, len(response))
            done(link)

    @property
    def refused_frames(self) -> int:
        """UDP: frames dropped because their MAC belongs to another sender address."""
        return self.transport.refusals().count if self.transport.name == "udp" else 0

    def log_refusals(self) -> None:
        """Log the 1st, 2nd, 4th, 8th, ... frame refused for naming another address's MAC, with the last one's addresses."""
        refusals = self.transport.refusals()
        if refusals.count.bit_length() > self.logged_refusals.bit_length():
            self.logged_refusals = refusals.count
            log.warning("event=mac-claimed-by-other-address mac=%s owner=%s sender=%s refused=%d",
                        format_mac(bytes(refusals.mac)), peer_text(refusals.owner), peer_text(refusals.sender), refusals.count)

    def refresh_from_worker_0(self) -> None:
        """Take in the mask lists and reservations worker 0 published; the data path watches for the next change."""
        shared = self.worker.shared
        shared.refresh(self.target.targets)
        self.transport.lib.dp_link_watch(self.transport.link, shared.sequence_address, shared.seen)

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        """Flush and close every overlay, release the state directory."""
        if self.control is not None:
            self.control.close()
        if self.transport is not None:
            self.transport.close()
        if self.disks is not None:
            self.disks.close()
        if getattr(self, "target", None) is not None:
            self.target.close()
        if self.lock is not None:
            self.lock.release()


def worker_count(config: ServerConfig) -> int:
    """As configured, else one worker per CPU on raw Ethernet and one on UDP, where a QEMU guest is
    one client, which one worker serves (`--workers` shares many guests' clients among more)."""
    if config.transport != "raw":
        return config.workers or 1
    return config.workers or os.cpu_count() or 1


def serve(config: ServerConfig) -> None:
    os.makedirs(config.state, exist_ok=True)
    count = worker_count(config)
    if count > 1:
        from .workers import ShardedServer  # it builds on this module

        server = ShardedServer(config, count)
    else:
        server = Server(config)
    try:
        server.serve_forever()
    finally:
        server.close()
        log.info("event=stopped")
    if getattr(server, "failed", False):
        raise SystemExit(1)


__all__ = ["Server", "serve", "open_catalogue", "CatalogueError", "ConfigError"]
