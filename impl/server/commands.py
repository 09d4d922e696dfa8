"""The server's `storvisor` subcommands: `serve` and the operator's commands.

The operator's commands talk to a running server through its control socket;
when none runs on the state directory they take its lock and do the same work
on the files directly. Results print as a table, or as JSON with `--json`.
"""

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace

from .catalogue import CatalogueError
from .config import (
    MAX_MTU,
    MAX_WORKERS,
    MIN_MTU,
    ConfigError,
    ServerConfig,
    _Reader,
    load,
    parse_listen,
    quick_start,
)
from .control import guarded, request, run_operation
from .disks import DiskRegistry
from .frames import parse_mac
from .operations import Operations
from .overlay import OverlayError
from .server import open_catalogue, serve
from .statelock import StateBusy, StateLock
from .transport import TransportError

DEFAULT_STATE = "storvisor-state"
EXIT_USAGE = 2


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE", help="TOML configuration (see impl/server/README.md)")
    source.add_argument("--image", metavar="FILE", help="quick start: serve this one raw image to every client at shelf 0 slot 0")
    parser.add_argument("--state", metavar="DIR", help=f"overlays and control socket (default: the config's, or ./{DEFAULT_STATE})")


def register(subparsers) -> None:
    serve_parser = subparsers.add_parser("serve", help="run the AoE storage server")
    add_source_arguments(serve_parser)
    serve_parser.add_argument("--transport", choices=("udp", "raw"), help="UDP-encapsulated Ethernet (default) or raw Ethernet")
    serve_parser.add_argument("--listen", metavar="HOST:PORT", help="UDP address to listen on (default 127.0.0.1:5555; [ADDRESS]:PORT for IPv6)")
    serve_parser.add_argument("--interface", metavar="NAME", help="network interface for the raw transport")
    serve_parser.add_argument("--mtu", type=int, help="MTU of the UDP transport's virtual Ethernet (default 1500; jumbo 9000)")
    serve_parser.add_argument("--mac", help="the server's MAC address on the UDP transport")
    serve_parser.add_argument("--buffer-count", type=int, help="requests per client the server advertises it queues (default 16)")
    serve_parser.add_argument("--read-only", action="store_true",
                              help="quick start: serve the image read-only (writes fail; with several workers one client's reads use them all)")
    serve_parser.add_argument("--workers", type=int, help="processes sharing the clients by MAC (default: one per CPU on raw Ethernet, one on UDP; 1: a single process)")
    serve_parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail too")
    serve_parser.set_defaults(run=run_serve)
    for name, helptext, extra in (
        ("images", "list the image catalogue", ()),
        ("clients", "list clients: overlay size, counters, last activity", ()),
        ("client", "show one client", ("mac",)),
        ("reset", "reset a client to its base image (drops its overlay)", ("mac",)),
        ("commit", "write a client's overlay over its base as a new image", ("mac", "name")),
        ("compact", "rewrite a client's allocation journal as one record per run of sectors", ("mac",)),
    ):
        p = subparsers.add_parser(name, help=helptext)
        add_source_arguments(p)
        for argument in extra:
            p.add_argument(argument, help={"mac": "the client's MAC address", "name": "the new image's name"}[argument])
        if name in ("reset", "commit", "compact"):
            p.add_argument("--overlay-image", dest="overlay_image", metavar="NAME", help="which of the client's images, when it has several")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(run=run_operator, op=name)


def configuration(args) -> ServerConfig:
    if args.config:
        config = load(args.config)
    else:
        image = getattr(args, "image", None)
        if image is None:
            raise ConfigError("name what to serve: --config FILE or --image FILE")
        if not os.path.exists(image):
            raise ConfigError(f"{image}: no such image file")
        config = quick_start(os.path.abspath(image), DEFAULT_STATE)
    if args.state:
        config.state = args.state
    return config


def apply_overrides(config: ServerConfig, args) -> None:
    reader = _Reader("command line", "", {}, "--", 0)
    if args.transport:
        config.transport = args.transport
    if args.listen:
        config.listen = parse_listen(reader, args.listen)
    if args.interface:
        config.interface = args.interface
    if args.mtu:
        if not MIN_MTU <= args.mtu <= MAX_MTU:
            raise ConfigError(f"--mtu: must be between {MIN_MTU} and {MAX_MTU}, got {args.mtu}")
        config.mtu = args.mtu
    if args.buffer_count:
        if not 2 <= args.buffer_count <= 65535:
            raise ConfigError(f"--buffer-count: must be between 2 and 65535, got {args.buffer_count}")
        config.buffer_count = args.buffer_count
    if args.mac:
        try:
            config.mac = parse_mac(args.mac)
        except ValueError as e:
            raise ConfigError(f"--mac: {e}") from None
    if args.workers is not None:
        if not 1 <= args.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers: must be between 1 and {MAX_WORKERS}, got {args.workers}")
        config.workers = args.workers
    if args.read_only:
        if args.config:
            raise ConfigError("--read-only: for the quick start (--image); a configuration file sets read_only = true per target")
        config.targets = [replace(t, read_only=True) for t in config.targets]
    if config.transport == "raw" and not config.interface:
        raise ConfigError("the raw transport needs --interface NAME")


def run_serve(args) -> int:
    config = configuration(args)
    apply_overrides(config, args)
    level = logging.DEBUG if args.verbose else config.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    serve(config)
    return 0


def run_operator(args) -> int:
    if not args.config and not args.image and not args.state:
        args.state = DEFAULT_STATE
    arguments = {k: v for k, v in (("mac", getattr(args, "mac", None)), ("name", getattr(args, "name", None)), ("image", getattr(args, "overlay_image", None))) if v is not None}
    state = args.state or (load(args.config).state if args.config else DEFAULT_STATE)
    try:
        answer = request(state, args.op, **arguments)
    except ConnectionError:
        answer = run_offline(args, arguments)
    if not answer["ok"]:
        print(f"storvisor {args.op}: {answer['error']}", file=sys.stderr)
        return 1
    print_result(answer["result"], args.json)
    return 0


def run_offline(args, arguments: dict) -> dict:
    """No server runs on the state directory: take its lock and do the work on the files."""
    if not args.config and not args.image:
        return {"ok": False, "error": "no server is running; name the images with --config FILE or --image FILE"}
    config = configuration(args)
    lock = StateLock(config.state)
    disks = DiskRegistry(config.state)
    try:
        ops = Operations(open_catalogue(config), disks, set())
        answer = run_operation(ops, {"op": args.op, **arguments})
        if answer["ok"] and callable(answer["result"]):
            answer = guarded(args.op, answer["result"])  # a commit's copy: here, in this process
        return answer
    finally:
        disks.close()
        lock.release()


def print_result(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=1))
        return
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        if "last_activity" in row and row["last_activity"]:
            row = {**row, "last_activity": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last_activity"]))}
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    if not rows:
        print("(none)")


EXPECTED_ERRORS = (ConfigError, CatalogueError, TransportError, StateBusy, OverlayError)
