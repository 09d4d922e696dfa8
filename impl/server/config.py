"""The server's configuration: a TOML file, or the defaults of the one-image quick start.

Every mistake is reported as `FILE:LINE: KEY: what is wrong` (the line when it
can be found), and nothing is served from a configuration with a mistake.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field

from .frames import parse_mac

ANY_CLIENT = "*"
TRANSPORTS = ("udp", "raw")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_SHELF = 0xFFFE  # 0xFFFF is the broadcast shelf (AoEr11 §2)
MAX_SLOT = 0xFE  # 0xFF is the broadcast slot (AoEr11 §2)
DEFAULT_LISTEN = "127.0.0.1:5555"
DEFAULT_SERVER_MAC = "02:53:56:00:00:01"  # locally administered (bit 1 of the first byte)
DEFAULT_MTU = 1500
MIN_MTU = 576  # at least one sector per frame: (576 − 36) // 512 = 1 (AoEr11 §3.1)
MAX_MTU = 65535
DEFAULT_BUFFER_COUNT = 16
MAX_CONFIG_STRING = 1024  # AoEr11 §3.2


class ConfigError(Exception):
    """A configuration mistake, with file, line and key when known."""


@dataclass(frozen=True)
class TargetConfig:
    """One image at one shelf/slot for a set of clients; each client gets its own overlay."""

    shelf: int
    slot: int
    image: str
    clients: frozenset[bytes] | None  # None: every client
    read_only: bool = False
    config_string: bytes = b""


MAX_WORKERS = 64


@dataclass
class ServerConfig:
    images: str  # directory of base images, or one image file for the quick start
    state: str  # overlays, identity cache, control socket, lock
    transport: str = "udp"
    listen: tuple[str, int] = ("127.0.0.1", 5555)
    interface: str = ""
    mac: bytes = parse_mac(DEFAULT_SERVER_MAC)
    mtu: int = DEFAULT_MTU
    buffer_count: int = DEFAULT_BUFFER_COUNT
    log_level: str = "info"
    workers: int = 0  # processes sharing the clients by MAC; 0: one per CPU on raw Ethernet, one on UDP
    targets: list[TargetConfig] = field(default_factory=list)
    path: str = ""  # the configuration file, for messages that point into it

    def where(self, number: int, key: str) -> str:
        """`FILE:LINE: target[N].KEY` for a message about a target's key, as far as it can be found."""
        if not self.path:
            return f"target[{number}].{key}"
        with open(self.path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        headers = table_lines(text, "target")
        line = key_line(text, headers[number], key) if number < len(headers) else None
        return f"{self.path}:{line}: target[{number}].{key}" if line else f"{self.path}: target[{number}].{key}"


def quick_start(image_path: str, state: str) -> ServerConfig:
    """One image at shelf 0 slot 0 for every client: `storvisor serve --image FILE` just works."""
    from .catalogue import image_name

    filename = os.path.basename(image_path)
    name = image_name(filename) or filename
    return ServerConfig(images=image_path, state=state, targets=[TargetConfig(0, 0, name, None)])


class _Reader:
    """Reads one table of the file with type checks, naming file, line and key on a mistake."""

    def __init__(self, path: str, text: str, table: dict, where: str, header_line: int):
        self.path, self.text, self.table, self.where, self.header_line = path, text, table, where, header_line

    def fail(self, key: str, message: str) -> ConfigError:
        line = key_line(self.text, self.header_line, key)
        at = f"{self.path}:{line}" if line else self.path
        return ConfigError(f"{at}: {self.where}{key}: {message}")

    def get(self, key: str, kind: type, default):
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(key, f"must be {kind.__name__}, got {value!r}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}, got {value}")
        return value

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(key, f"unknown key (known: {', '.join(sorted(allowed))})")


def key_line(text: str, after_line: int, key: str) -> int | None:
    """The 1-based line of `key = ...` at or after `after_line`, before the next table header."""
    lines = text.splitlines()
    for number in range(max(after_line, 1), len(lines) + 1):
        line = lines[number - 1].strip()
        if number > after_line and line.startswith("["):
            return None
        if re.match(rf"{re.escape(key)}\s*=", line):
            return number
    return None


def table_lines(text: str, header: str) -> list[int]:
    """The 1-based lines of every `[header]` or `[[header]]` line."""
    pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(header)}\s*\]\]?\s*(#.*)?$")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pattern.match(line)]


def load(path: str) -> ServerConfig:
    """Parse and check a configuration file; relative directories are relative to the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from None
    text = raw.decode("utf-8", "replace")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    base = os.path.dirname(os.path.abspath(path))
    top = _Reader(path, text, document, "", 0)
    top.check_keys({"server", "target"})
    server_table = document.get("server", {})
    if not isinstance(server_table, dict):
        raise top.fail("server", "must be a table [server]")
    server = _Reader(path, text, server_table, "server.", (table_lines(text, "server") or [0])[0])
    server.check_keys({"images", "state", "transport", "listen", "interface", "mac", "mtu", "buffer_count", "log_level", "workers"})
    config = ServerConfig(
        images=os.path.join(base, server.get("images", str, "images")),
        state=os.path.join(base, server.get("state", str, "state")),
        path=path,
    )
    config.transport = server.get("transport", str, "udp")
    if config.transport not in TRANSPORTS:
        raise server.fail("transport", f"must be one of {', '.join(TRANSPORTS)}, got {config.transport!r}")
    config.listen = parse_listen(server, server.get("listen", str, DEFAULT_LISTEN))
    config.interface = server.get("interface", str, "")
    if config.transport == "raw" and not config.interface:
        raise server.fail("interface", "the raw transport needs the name of a network interface")
    try:
        config.mac = parse_mac(server.get("mac", str, DEFAULT_SERVER_MAC))
    except ValueError as e:
        raise server.fail("mac", str(e)) from None
    config.mtu = server.integer("mtu", DEFAULT_MTU, MIN_MTU, MAX_MTU)
    config.buffer_count = server.integer("buffer_count", DEFAULT_BUFFER_COUNT, 2, 65535)
    config.log_level = server.get("log_level", str, "info")
    config.workers = server.integer("workers", 0, 0, MAX_WORKERS)
    if config.log_level not in LOG_LEVELS:
        raise server.fail("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    targets = document.get("target", [])
    if not isinstance(targets, list) or not targets:
        raise top.fail("target", "at least one [[target]] table is needed")
    headers = table_lines(text, "target")
    for number, table in enumerate(targets):
        header_line = headers[number] if number < len(headers) else 0
        config.targets.append(parse_target(_Reader(path, text, table, f"target[{number}].", header_line)))
    check_overlaps(path, config.targets)
    return config


def parse_listen(reader: _Reader, text: str) -> tuple[str, int]:
    """HOST:PORT, an IPv6 host in brackets ([::1]:5555)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise reader.fail("listen", f"an IPv6 address goes in brackets, [ADDRESS]:PORT, got {text!r}")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise reader.fail("listen", f"must be HOST:PORT, got {text!r}")
    return host, int(port)


def parse_target(reader: _Reader) -> TargetConfig:
    reader.check_keys({"shelf", "slot", "image", "clients", "read_only", "config_string"})
    image = reader.get("image", str, None)
    if not image:
        raise reader.fail("image", "every target names an image of the catalogue")
    clients_list = reader.get("clients", list, None)
    if clients_list is None:
        raise reader.fail("clients", 'list the client MAC addresses, or ["*"] for every client')
    clients: frozenset[bytes] | None
    if ANY_CLIENT in clients_list:
        clients = None
    else:
        try:
            clients = frozenset(parse_mac(str(c)) for c in clients_list)
        except ValueError as e:
            raise reader.fail("clients", str(e)) from None
    config_string = reader.get("config_string", str, "").encode()
    if len(config_string) > MAX_CONFIG_STRING:
        raise reader.fail("config_string", f"longer than {MAX_CONFIG_STRING} bytes")
    return TargetConfig(
        shelf=reader.integer("shelf", 0, 0, MAX_SHELF),
        slot=reader.integer("slot", 0, 0, MAX_SLOT),
        image=image,
        clients=clients,
        read_only=reader.get("read_only", bool, False),
        config_string=config_string,
    )


def check_overlaps(path: str, targets: list[TargetConfig]) -> None:
    """A client has at most one explicit target per shelf/slot, and at most one catch-all per address."""
    seen: dict[tuple, int] = {}
    for number, t in enumerate(targets):
        for client in [None] if t.clients is None else t.clients:
            key = (t.shelf, t.slot, client)
            if key in seen:
                who = "every client" if client is None else f"client {client.hex(':')}"
                raise ConfigError(f"{path}: target[{number}]: {who} already has shelf {t.shelf} slot {t.slot} in target[{seen[key]}]")
            seen[key] = number
