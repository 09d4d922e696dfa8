"""A load generator: many clients, each with a window of outstanding AoE ATA requests, for benchmarks.

One process, one socket. Every client keeps `window` requests in flight; each
response frees a slot that is refilled at once. A request unanswered after
`retransmit_seconds` is sent again under a new tag (as Linux's aoe does) and
counted. Requests are sequential or random, reads or writes, of `sectors`
sectors, and never cross the end of the disk.

    python -m impl.server.loadgen --interface IF --server-mac MAC --workload randread ...
"""

import argparse
import json
import os
import random
import socket
import time

from spec.aoe.constants import (
    ETHERTYPE_AOE,
    SECTOR_BYTES,
    AoeCommand,
    AtaFlag,
    sectors_per_frame,
)

from .frames import AOE_HEADER, ATA_ARG, ATA_HEADER_BYTES, ETHERNET, parse_mac
from .initiator import RawLink, UdpLink, client_mac, wait_readable

SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux ≥ 4.20: do not hand our own transmissions back to us
WORKLOADS = ("seqread", "seqwrite", "randread", "randwrite")
TAG_CLIENT_SHIFT = 24
BUSY_POLLS = 200  # empty polls before sleeping in select: a sleeping receiver makes every sender pay a wake-up  # tag = client index << 24 | sequence


def ignore_outgoing(sock: socket.socket) -> None:
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernels: RawLink.receive filters them instead


def run(link, server_mac: bytes, clients: int, window: int, workload: str, sectors: int, disk_sectors: int, seconds: float, retransmit_seconds: float = 0.25, seed: int = 1) -> dict:
    rng = random.Random(seed)
    writing = workload.endswith("write")
    sequential = workload.startswith("seq")
    cmd, aflags = (0x34, AtaFlag.EXTENDED | AtaFlag.WRITE) if writing else (0x24, AtaFlag.EXTENDED)
    payload = bytes(range(256)) * (sectors * SECTOR_BYTES // 256) if writing else b""
    span = disk_sectors // clients // sectors * sectors  # each client its own region, whole requests
    headers = [ETHERNET.pack(server_mac, client_mac(c + 1), ETHERTYPE_AOE) for c in range(clients)]
    next_lba = [c * span for c in range(clients)]
    sequence = [0] * clients
    outstanding: dict[int, tuple[int, float, int]] = {}  # tag -> (client, sent at, lba)
    latencies: list[float] = []
    done_ops = errors = retransmits = 0

    def send(c: int, lba: int | None = None) -> None:
        if lba is None:
            if sequential:
                lba = next_lba[c]
                next_lba[c] = lba + sectors if lba + 2 * sectors <= (c + 1) * span else c * span
            else:
                lba = c * span + rng.randrange(span // sectors) * sectors
        sequence[c] = (sequence[c] + 1) & 0xFFFFFF
        tag = c << TAG_CLIENT_SHIFT | sequence[c]
        frame = headers[c] + AOE_HEADER.pack(0x10, 0, 0, 0, AoeCommand.ATA, tag) + ATA_ARG.pack(aflags, 0, sectors, cmd, lba.to_bytes(6, "little")) + payload
        outstanding[tag] = (c, time.perf_counter(), lba)
        link.send(frame)

    for c in range(clients):
        for _ in range(window):
            send(c)
    start = time.perf_counter()
    end = start + seconds
    last_check = start
    receive = link.receive
    idle = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now - last_check > retransmit_seconds / 2:
            last_check = now
            for tag, (c, sent, lba) in list(outstanding.items()):
                if now - sent > retransmit_seconds:
                    del outstanding[tag]
                    retransmits += 1
                    send(c, lba)
        frame = receive()
        if frame is None:
            idle += 1
            if idle > BUSY_POLLS:
                wait_readable(link, 0.01)
                idle = 0
            else:
                os.sched_yield()  # a target sharing this CPU gets to answer
            continue
        idle = 0
        while frame is not None:
            if len(frame) >= ATA_HEADER_BYTES and frame[14] & 0x08:
                entry = outstanding.pop(int.from_bytes(frame[20:24], "big"), None)
                if entry is not None:  # else a late answer to a request already sent again
                    c, sent, _ = entry
                    if frame[15] or frame[27] & 0x01:  # AoE error or ATA ERR
                        errors += 1
                    done_ops += 1
                    latencies.append(time.perf_counter() - sent)
                    send(c)
            frame = receive()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "workload": workload, "clients": clients, "window": window, "sectors": sectors,
        "ops_per_s": done_ops / elapsed,
        "mb_per_s": done_ops * sectors * SECTOR_BYTES / elapsed / 1e6,
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else None,
        "errors": errors, "retransmits": retransmits, "seconds": elapsed,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impl.server.loadgen", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="raw Ethernet on this interface (root)")
    where.add_argument("--udp", metavar="HOST:PORT", help="UDP-encapsulated Ethernet to this server address ([ADDRESS]:PORT for IPv6)")
    parser.add_argument("--server-mac", default="ff:ff:ff:ff:ff:ff")
    parser.add_argument("--workload", choices=WORKLOADS, default="seqread")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--sectors", type=int, help="sectors per request (default: as many as a frame carries)")
    parser.add_argument("--disk-sectors", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.interface:
        link = RawLink(args.interface)
        ignore_outgoing(link.sock)
    else:
        host, _, port = args.udp.rpartition(":")
        link = UdpLink((host.strip("[]"), int(port)))
    sectors = args.sectors or sectors_per_frame(args.mtu)
    result = run(link, parse_mac(args.server_mac), args.clients, args.window, args.workload, sectors, args.disk_sectors, args.seconds)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
