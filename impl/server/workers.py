"""Several worker processes: clients sharded by MAC address, each overlay owned by one.

The parent takes the state directory's lock, opens the catalogue, opens one
socket per worker and puts them in one group: AF_PACKET sockets in a fanout
group on raw Ethernet, UDP sockets sharing the address with SO_REUSEPORT
(`fanout.py`: a client's ATA commands always reach worker `owner_of(MAC)`,
every other AoE command reaches worker 0), makes the shared target state
(`shared_state.py`), and forks the workers. Each worker is a `Server` of its
own with its own disks, so a client's overlay is only ever opened by the
process that serves it.

The parent then holds the control socket: it sends a request about one client
(client, reset, commit, compact) to the worker that owns the client, asks every
worker for `clients` and joins the lists, and sends anything else to worker 0.
Each worker runs the request in its own loop between frames, as a single
server does. A worker that exits stops the whole server (status 1), so a
client is never left without its worker; SIGTERM or SIGINT to the parent
stops the workers, each flushing its overlays.
"""

import json
import logging
import os
import selectors
import signal
import socket
import threading
import time

from .config import ServerConfig
from .control import MAX_REQUEST_BYTES, accept, listen, unlink
from .fanout import join_fanout, owner_of, shared_addresses, steer_reuseport
from .frames import parse_mac
from .server import Server, WorkerRole, open_catalogue, raise_file_limit
from .shared_state import SharedTargetState
from .statelock import StateLock
from .transport import LinkTransport, RawTransport, udp_group

log = logging.getLogger("storvisor.server")
CLIENT_OPERATIONS = {"client", "reset", "commit", "compact"}  # about one client: its owner answers
SUMMED_COUNTERS = ("requests", "read_bytes", "written_bytes", "errors", "duplicates", "flushes")
STOP_SECONDS = 10.0  # a worker flushing its overlays gets this long before SIGKILL


def merge_foreign(rows: list[dict]) -> list[dict]:
    """The rows of every worker as one listing: what a worker counted for a client another worker
    serves ("foreign" rows) is added to that client's rows, or stands as its row when it has none."""
    foreign: dict[str, dict] = {}
    owned = []
    for row in rows:
        if row.pop("foreign", False):
            empty = {"client": row["client"], "image": None, **dict.fromkeys(SUMMED_COUNTERS, 0), "last_activity": None}
            add_counters(foreign.setdefault(row["client"], empty), row)
        else:
            owned.append(row)
    for row in owned:
        if row["client"] in foreign:
            add_counters(row, foreign[row["client"]])
    listed = {row["client"] for row in owned}
    return owned + [total for client, total in foreign.items() if client not in listed]


def add_counters(row: dict, more: dict) -> None:
    for key in SUMMED_COUNTERS:
        row[key] = row.get(key, 0) + more.get(key, 0)
    times = [t for t in (row.get("last_activity"), more.get("last_activity")) if t is not None]
    row["last_activity"] = max(times) if times else None


class WorkerLink:
    """The parent's end of one worker's control connection: one request at a time."""

    def __init__(self, connection: socket.socket):
        self.connection = connection
        self.lock = threading.Lock()
        self.pending = b""

    def ask(self, line: bytes) -> dict:
        with self.lock:
            self.connection.sendall(line + b"\n")
            while b"\n" not in self.pending:
                chunk = self.connection.recv(MAX_REQUEST_BYTES)
                if not chunk:
                    return {"ok": False, "error": "the worker serving this client has stopped"}
                self.pending += chunk
            answer, self.pending = self.pending.split(b"\n", 1)
        return json.loads(answer)


def open_group(config: ServerConfig, count: int) -> list[LinkTransport]:
    """One socket per worker, in worker order, in one group steered by client MAC (unsteered, the
    kernel would spread one client's frames over several workers: opening fails instead)."""
    transports = udp_group(*config.listen, count) if config.transport == "udp" else []
    try:
        if config.transport == "udp":
            steer_reuseport([t.sock for t in transports])  # by MAC everywhere: each worker's table of MAC owners stays whole
            return transports
        for _ in range(count):
            transports.append(RawTransport(config.interface))
        join_fanout([t.sock for t in transports], os.getpid(), shared_addresses(config.targets))
    except BaseException:
        for transport in transports:
            transport.close()
        raise
    return transports


class ShardedServer:
    def __init__(self, config: ServerConfig, count: int):
        self.config = config
        self.count = count
        self.lock = StateLock(config.state)
        raise_file_limit()
        self.transports: list[LinkTransport] = []
        self.links: list[WorkerLink] = []
        self.pids: list[int] = []
        self.members: list[int] = []  # a descriptor of each fanout socket, held until every worker has exited
        self.listener = None
        self.running = False
        self.failed = False
        try:
            self.catalogue = open_catalogue(config)
            self.transports = open_group(config, count)
            # A socket leaves its group when its last descriptor closes, and the kernel then
            # spreads every client over the members left, so a live worker's clients could reach
            # another worker while it still has their overlays open. Every process keeps a
            # descriptor of every member until it exits: a dead worker's frames wait unread.
            self.members = [os.dup(t.sock.fileno()) for t in self.transports]
            self.shared = SharedTargetState(len(config.targets))
            for index in range(count):
                parent_end, child_end = socket.socketpair()
                pid = os.fork()
                if pid == 0:
                    parent_end.close()
                    self.run_worker(index, child_end)
                child_end.close()
                self.pids.append(pid)
                self.links.append(WorkerLink(parent_end))
            for transport in self.transports:
                transport.close()  # each worker holds its own
            self.listener = listen(config.state)
        except BaseException:
            self.close()
            raise
        log.info("event=workers count=%d transport=%s address=%s pids=%s", count, config.transport, self.transports[0].address,
                 ",".join(map(str, self.pids)))

    def run_worker(self, index: int, connection: socket.socket) -> None:
        """In the forked child: serve as worker `index` until stopped; never returns."""
        status = 1
        try:
            for link in self.links:
                link.connection.close()
            for number, transport in enumerate(self.transports):
                if number != index:
                    transport.close()
            cpus = sorted(os.sched_getaffinity(0))
            if self.count <= len(cpus):
                os.sched_setaffinity(0, {cpus[index]})  # left alone, the scheduler often keeps both workers on one core
            role = WorkerRole(index, self.count, self.transports[index], connection, self.shared, self.catalogue)
            server = Server(self.config, role)
            try:
                server.serve_forever()
            finally:
                server.close()
            status = 0
        except BaseException:
            log.exception("event=worker-failed worker=%d", index)
        finally:
            os._exit(status)

    def route(self, line: bytes) -> dict:
        """The answer to one operator request: from the client's owner, from every worker, or from worker 0."""
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return self.links[0].ask(line)  # worker 0 says what is wrong with it
        if request.get("op") == "clients":
            answers = [link.ask(line) for link in self.links]
            failed = [a for a in answers if not a.get("ok")]
            if failed:
                return failed[0]
            rows = merge_foreign([row for a in answers for row in a["result"]])
            return {"ok": True, "result": sorted(rows, key=lambda r: (r["client"], r["image"] or ""))}
        if request.get("op") in CLIENT_OPERATIONS and isinstance(request.get("mac"), str):
            try:
                client = parse_mac(request["mac"])
            except ValueError:
                return self.links[0].ask(line)  # not a MAC: worker 0 gives the usual error
            owner = owner_of(client, self.count)
            answer = self.links[owner].ask(line)
            if request["op"] == "client" and answer.get("ok") and owner != 0:
                counted = self.links[0].ask(json.dumps({"op": "clients"}).encode())  # what worker 0 counted for it
                mac = answer["result"][0]["client"]
                foreign = [row for row in counted.get("result", []) if row.get("foreign") and row["client"] == mac]
                answer["result"] = merge_foreign(answer["result"] + foreign)
            return answer
        return self.links[0].ask(line)

    def serve_connection(self, connection: socket.socket) -> None:
        """One operator's connection, in a thread of its own: requests in, answers out, line by line."""
        buffer = b""
        with connection:
            while True:
                try:
                    chunk = connection.recv(MAX_REQUEST_BYTES)
                except OSError:
                    return
                buffer += chunk
                if not chunk or len(buffer) > MAX_REQUEST_BYTES:
                    return
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    try:
                        connection.sendall((json.dumps(self.route(line)) + "\n").encode())
                    except OSError:
                        return

    def serve_forever(self) -> None:
        """Route operator requests until SIGTERM or SIGINT, or until a worker exits."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        self.running = True
        while self.running:
            for _ in selector.select(timeout=0.5):
                connection = accept(self.listener)
                if connection is not None:
                    connection.setblocking(True)
                    threading.Thread(target=self.serve_connection, args=(connection,), daemon=True).start()
            for number, pid in enumerate(self.pids):
                if pid and os.waitpid(pid, os.WNOHANG)[0] == pid:
                    log.error("event=worker-exited worker=%d pid=%d: stopping every worker", number, pid)
                    self.pids[number] = 0
                    self.failed = True
                    self.running = False
        selector.close()

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        """Stop every worker (each flushes its overlays), then release the state directory."""
        for pid in self.pids:
            if pid:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for number, pid in enumerate(self.pids):
            while pid and os.waitpid(pid, os.WNOHANG)[0] != pid:
                if time.monotonic() > deadline:
                    log.error("event=worker-killed worker=%d pid=%d: it did not stop in %g s", number, pid, STOP_SECONDS)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
        for link in self.links:
            link.connection.close()
        for member in self.members:
            os.close(member)  # every worker has exited: the group can go
        for transport in self.transports:
            transport.close()
        if self.listener is not None:
            self.listener.close()
            unlink(self.config.state)
        self.lock.release()
