"""The control socket: operator commands to a running server.

A UNIX stream socket at `STATE/control.sock`. The client sends one JSON object
per line, `{"op": NAME, ...arguments}`, and gets one JSON line back:
`{"ok": true, "result": ...}` or `{"ok": false, "error": MESSAGE}`.
Requests run in the server's own loop between frames, so they see and change
state consistently; a commit begins there too (the new image is the disk as it
is then) and copies in a thread of its own, so clients are not stalled while a
large image is written.
"""

import json
import logging
import os
import socket
import threading

from .operations import OperationError, Operations

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 65536
log = logging.getLogger("storvisor.server")

OPERATIONS = {
    "images": lambda ops, a: ops.images(),
    "clients": lambda ops, a: ops.clients(),
    "client": lambda ops, a: ops.client(a["mac"]),
    "reset": lambda ops, a: ops.reset(a["mac"], a.get("image")),
    "commit": lambda ops, a: ops.start_commit(a["mac"], a["name"], a.get("image")),  # the rest runs in a thread
    "compact": lambda ops, a: ops.compact(a["mac"], a.get("image")),
}


def run_operation(ops: Operations, request: dict) -> dict:
    """The answer to a request; a result that is callable is the rest of the work, for a thread."""
    op = request.get("op")
    if op not in OPERATIONS:
        return {"ok": False, "error": f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})"}
    return guarded(op, lambda: OPERATIONS[op](ops, request))


def guarded(op: str, work) -> dict:
    try:
        return {"ok": True, "result": work()}
    except KeyError as e:
        return {"ok": False, "error": f"operation {op} needs the argument {e}"}
    except (OperationError, OSError, ValueError) as e:
        return {"ok": False, "error": str(e)}


class ControlChannel:
    """Requests arriving on connections, answered with `ops`: in a server's loop, or a worker's (its
    connection then comes from the parent process, which routes operators' requests to it)."""

    def __init__(self, ops: Operations):
        self.ops = ops
        self.buffers: dict[socket.socket, bytes] = {}

    def add(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        self.buffers[connection] = b""

    def readable(self, connection: socket.socket) -> bool:
        """Handle what arrived on a connection; False when it is finished and should be unregistered."""
        try:
            chunk = connection.recv(MAX_REQUEST_BYTES)
        except BlockingIOError:
            return True
        except OSError:
            chunk = b""
        buffer = self.buffers.get(connection, b"") + chunk
        if not chunk or len(buffer) > MAX_REQUEST_BYTES:
            self.drop(connection)
            return False
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            self.handle(connection, line)
        self.buffers[connection] = buffer
        return True

    def handle(self, connection: socket.socket, line: bytes) -> None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as e:
            reply(connection, {"ok": False, "error": f"not a JSON request: {e}"})
            return
        log.info("event=control op=%s", request.get("op"))
        answer = run_operation(self.ops, request)
        if answer["ok"] and callable(answer["result"]):
            rest = answer["result"]
            threading.Thread(target=lambda: reply(connection, guarded(request["op"], rest)), daemon=True).start()
        else:
            reply(connection, answer)

    def drop(self, connection: socket.socket) -> None:
        self.buffers.pop(connection, None)
        connection.close()

    def close(self) -> None:
        for connection in list(self.buffers):
            self.drop(connection)


def listen(state: str) -> socket.socket:
    """The control socket STATE/control.sock, mode 0600, listening and non-blocking."""
    path = os.path.join(state, SOCKET_NAME)
    if os.path.exists(path):
        os.unlink(path)  # left by a server that died; the state lock says no other runs
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(8)
    sock.setblocking(False)
    return sock


def accept(sock: socket.socket) -> socket.socket | None:
    try:
        connection, _ = sock.accept()
    except BlockingIOError:
        return None
    return connection


def unlink(state: str) -> None:
    path = os.path.join(state, SOCKET_NAME)
    if os.path.exists(path):
        os.unlink(path)


class ControlServer(ControlChannel):
    """The control socket of a server with one process: requests run in its loop between frames."""

    def __init__(self, state: str, ops: Operations):
        super().__init__(ops)
        self.state = state
        self.sock = listen(state)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket | None:
        connection = accept(self.sock)
        if connection is not None:
            self.add(connection)
        return connection

    def close(self) -> None:
        super().close()
        self.sock.close()
        unlink(self.state)


def reply(connection: socket.socket, answer: dict) -> None:
    data = (json.dumps(answer) + "\n").encode()
    try:
        connection.setblocking(True)
        connection.sendall(data)
        connection.setblocking(False)
    except OSError:
        pass  # the operator's command went away; the operation itself is done


def request(state: str, op: str, timeout: float = 600.0, **arguments) -> dict:
    """Send one request to the server running on `state`; raises ConnectionError when none runs."""
    path = os.path.join(state, SOCKET_NAME)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise ConnectionError(f"no server is running on {state}") from e
        s.sendall((json.dumps({"op": op, **arguments}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(MAX_REQUEST_BYTES)
            if not chunk:
                raise ConnectionError("the server closed the control connection")
            data += chunk
    return json.loads(data)
