"""The server's compiled data path (C, in this folder) as Python sees it: the library and its types.

`library()` builds libstorvisor-datapath.so with make (again when a source is newer) and loads
it once per process. When the environment variable STORVISOR_DATAPATH_LIB names a library, that
one is loaded instead, unbuilt: the tests set it to `build_sanitized()`'s AddressSanitizer and
UBSan build (tests/server/test_datapath_sanitizers.py), with gcc's libasan preloaded.
`Counters` and `RouteSpec` mirror datapath.h's structs field by field; the functions are
declared with their C types, so a wrong argument is a TypeError, not a crash.
"""

import ctypes
import os
import subprocess
from functools import cache
from pathlib import Path

from spec.aoe.constants import MAC_BYTES

SOURCE = Path(__file__).resolve().parent
BUILD = SOURCE.parents[2] / "build" / "server"
LIBRARY = BUILD / "libstorvisor-datapath.so"
SANITIZED_BUILD = SOURCE.parents[2] / "build" / "server-sanitized"
SANITIZED_LIBRARY = SANITIZED_BUILD / "libstorvisor-datapath.so"
LIBRARY_ENV = "STORVISOR_DATAPATH_LIB"  # another build of the library to load (the sanitized one)
RECENT_REQUESTS = 128  # requests per client remembered for counting duplicates
RECENT_SLOTS = 512  # the set of their keys (two each), at most half full
ROUTE_KEY_BYTES = 20  # a request's bytes up to its tag: destination, client, ethertype, version/flags, error, shelf, slot, command
SERVE_IDLE, SERVE_REFRESH, SERVE_ERROR = -1, -2, -3  # enum dp_serve_result
PEER_NAME_BYTES = 28  # a UDP sender's address as the data path keeps it: struct sockaddr_in6, the longest


class DataPathError(Exception):
    """The data path library cannot be built or loaded; the message says why."""


class RecentRequest(ctypes.Structure):
    _fields_ = [("tag_key", ctypes.c_uint64), ("request_key", ctypes.c_uint64)]


class RecentSlot(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint64), ("count", ctypes.c_uint64)]


class Counters(ctypes.Structure):
    """struct dp_counters: what one client did; C adds to it on the data path, Python on the checked path."""

    _fields_ = [
        ("requests", ctypes.c_uint64),
        ("read_bytes", ctypes.c_uint64),
        ("written_bytes", ctypes.c_uint64),
        ("errors", ctypes.c_uint64),
        ("duplicates", ctypes.c_uint64),
        ("flushes", ctypes.c_uint64),
        ("last_activity", ctypes.c_double),
        ("recent_next", ctypes.c_uint64),
        ("recent", RecentRequest * RECENT_REQUESTS),
        ("recent_set", RecentSlot * RECENT_SLOTS),
    ]


class Refusals(ctypes.Structure):
    """struct dp_refusals: how many frames a UDP sender sent with a MAC another address owns, and the last one's."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("mac", ctypes.c_uint8 * MAC_BYTES),
        ("owner", ctypes.c_uint8 * PEER_NAME_BYTES),
        ("sender", ctypes.c_uint8 * PEER_NAME_BYTES),
    ]


class RouteSpec(ctypes.Structure):
    """struct dp_route_spec: what answering a plain transfer on one route needs."""

    _fields_ = [
        ("key", ctypes.c_uint8 * ROUTE_KEY_BYTES),
        ("prefix", ctypes.c_uint8 * ROUTE_KEY_BYTES),
        ("base_fd", ctypes.c_int32),
        ("read_only", ctypes.c_int32),
        ("sectors", ctypes.c_uint64),
        ("overlay", ctypes.c_void_p),
        ("blocked", ctypes.POINTER(ctypes.c_int32)),
        ("counters", ctypes.POINTER(Counters)),
    ]


def build() -> Path:
    """Build the library with make (nothing to do when it is current) and return its path."""
    _make(f"BUILD={BUILD}")
    return LIBRARY


def build_sanitized() -> Path:
    """Build the AddressSanitizer and UBSan variant (make sanitized) and return its path."""
    _make(f"SANITIZED_BUILD={SANITIZED_BUILD}", "sanitized")
    return SANITIZED_LIBRARY


def _make(*arguments: str) -> None:
    result = subprocess.run(["make", "-s", "-C", str(SOURCE), *arguments], capture_output=True, text=True)
    if result.returncode:
        raise DataPathError(f"building the server's data path (impl/server/datapath) failed:\n{result.stdout}{result.stderr}")


P, U8P, U32P = ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint32)
SIGNATURES = {  # name: (result, arguments), as datapath.h declares them
    "dp_saw_request": (None, [ctypes.POINTER(Counters), ctypes.c_char_p]),
    "dp_crc32": (ctypes.c_uint32, [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]),
    "dp_overlay_new": (P, [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64]),
    "dp_overlay_free": (None, [P]),
    "dp_overlay_fd": (ctypes.c_int, [P]),
    "dp_overlay_journal_end": (ctypes.c_uint64, [P]),
    "dp_overlay_set_journal": (None, [P, ctypes.c_uint64, ctypes.c_uint64]),
    "dp_overlay_sectors": (ctypes.c_uint64, [P]),
    "dp_overlay_clear": (None, [P, ctypes.c_uint64, ctypes.c_uint64]),
    "dp_overlay_allocate": (ctypes.c_int, [P, ctypes.c_uint64, ctypes.c_uint64]),
    "dp_overlay_run": (ctypes.c_uint64, [P, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]),
    "dp_overlay_covers_any": (ctypes.c_int, [P, ctypes.c_uint64, ctypes.c_uint64]),
    "dp_overlay_write": (ctypes.c_int, [P, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint32]),
    "dp_overlay_write_run": (ctypes.c_int, [P, ctypes.c_uint64, ctypes.POINTER(ctypes.c_char_p), U32P, ctypes.c_uint32]),
    "dp_write_run_frames": (ctypes.c_uint, []),
    "dp_overlay_read": (ctypes.c_int, [P, ctypes.c_int, ctypes.c_uint64, ctypes.c_uint32, P]),
    "dp_commit_begin": (ctypes.c_int, [P, ctypes.c_int, ctypes.c_int]),
    "dp_commit_step": (ctypes.c_int64, [P]),
    "dp_commit_end": (None, [P]),
    "dp_server_new": (P, [ctypes.c_uint32]),
    "dp_server_free": (None, [P]),
    "dp_route_add": (ctypes.c_int, [P, ctypes.POINTER(RouteSpec)]),
    "dp_routes_clear": (None, [P]),
    "dp_route_count": (ctypes.c_uint64, [P]),
    "dp_server_mapped_windows": (ctypes.c_uint, [P]),
    "dp_window_limit": (ctypes.c_uint, []),
    "dp_window_bytes": (ctypes.c_uint64, []),
    "dp_window_idle_reads": (ctypes.c_uint, []),
    "dp_server_windows_made": (ctypes.c_uint64, [P]),
    "dp_server_write_runs": (ctypes.c_uint64, [P]),
    "dp_answer": (ctypes.c_size_t, [P, ctypes.c_char_p, ctypes.c_size_t, P, ctypes.c_size_t]),
    "dp_link_new": (P, [ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]),
    "dp_link_free": (None, [P]),
    "dp_link_use_ring": (ctypes.c_int, [P, ctypes.c_uint32, ctypes.c_uint32]),
    "dp_link_watch": (None, [P, P, ctypes.c_uint64]),
    "dp_link_serve": (ctypes.c_int, [P, P, ctypes.c_uint64]),
    "dp_link_frame": (U8P, [P, ctypes.c_uint32, U32P]),
    "dp_link_queue": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_uint32]),
    "dp_link_done": (None, [P]),
    "dp_link_use_peers": (ctypes.c_int, [P, P]),
    "dp_peers_new": (P, [ctypes.c_double, ctypes.c_uint32]),
    "dp_peers_free": (None, [P]),
    "dp_peers_claim": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_double]),
    "dp_peers_count": (ctypes.c_uint32, [P]),
    "dp_peers_refusals": (ctypes.POINTER(Refusals), [P]),
}


@cache
def library() -> ctypes.CDLL:
    path = os.environ.get(LIBRARY_ENV) or build()
    try:
        lib = ctypes.CDLL(str(path), use_errno=True)
    except OSError as e:
        raise DataPathError(f"cannot load the server's data path: {e}") from None
    for name, (result, arguments) in SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib
