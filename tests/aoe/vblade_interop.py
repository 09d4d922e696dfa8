"""The spec initiator against the reference target, vblade, over a veth pair.

Run as a module inside a private network namespace (`unshare --net`): it makes
the veth pair, serves a scratch image with vblade on one end and drives the
spec initiator over a raw AF_PACKET socket on the other. Any disagreement
raises AssertionError; success prints one line per checked behaviour.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

from spec.aoe.constants import ETHERTYPE_AOE, SECTOR_BYTES, AtaErrorBit
from spec.aoe.initiator import AoeInitiator, Completion, InitiatorConfig, Timing

SHELF, SLOT, SECTORS, BUFFERS = 3, 1, 64, 4


def ticks() -> int:
    return time.monotonic_ns() // 1000  # the initiator's ticks are microseconds here


def run(initiator: AoeInitiator, sock: socket.socket, request_id: int, limit_s: float = 10.0) -> Completion:
    """Pump frames until `request_id` completes."""
    end = time.monotonic() + limit_s
    done: list[Completion] = []
    while time.monotonic() < end:
        for frame in initiator.take_outgoing():
            sock.send(frame)
        done += initiator.take_completions()
        for completion in done:
            if completion.request_id == request_id:
                return completion
        try:
            initiator.receive(sock.recv(9000), ticks())
        except socket.timeout:
            pass
        initiator.tick(ticks())
    raise AssertionError(f"request {request_id} did not complete within {limit_s} s")


def sectors(seed: int, count: int) -> bytes:
    return b"".join(bytes([(seed + i) % 251]) * SECTOR_BYTES for i in range(count))


def main() -> None:
    subprocess.run(["ip", "link", "add", "aoe-t", "type", "veth", "peer", "name", "aoe-i"], check=True)
    for link in ("aoe-t", "aoe-i", "lo"):
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        image = os.path.join(scratch, "image")
        with open(image, "wb") as f:
            f.write(bytes(SECTORS * SECTOR_BYTES))
        target = subprocess.Popen(
            ["vblade", "-b", str(BUFFERS), str(SHELF), str(SLOT), "aoe-t", image],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            check(image)
        finally:
            target.terminate()
            target.wait(5)


def check(image: str) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_AOE))
    sock.bind(("aoe-i", ETHERTYPE_AOE))
    sock.settimeout(0.05)
    timing = Timing(initial_rto=200_000, min_rto=10_000, max_rto=1_000_000, deadline=3_000_000)
    initiator = AoeInitiator(InitiatorConfig(sock.getsockname()[4], SHELF, SLOT, timing=timing), now=ticks())

    written = sectors(7, 5)
    done = run(initiator, sock, initiator.submit_write(3, written))
    assert done.ok, f"write failed: {done}"
    assert (initiator.buffer_count, initiator.max_sectors) == (BUFFERS, 2), "vblade advertises -b and (MTU-36)/512"
    print(f"discovery: buffer count {initiator.buffer_count}, {initiator.max_sectors} sectors per frame")
    print("write of 5 sectors in 3 frames: ok")

    done = run(initiator, sock, initiator.submit_read(2, 7))
    assert done.ok and done.data == bytes(SECTOR_BYTES) + written + bytes(SECTOR_BYTES), "read back differs"
    print("read of 7 sectors across the written range: ok")

    done = run(initiator, sock, initiator.submit_flush())
    assert done.ok, f"FLUSH CACHE failed: {done}"
    with open(image, "rb") as f:
        f.seek(3 * SECTOR_BYTES)
        assert f.read(5 * SECTOR_BYTES) == written, "the image file holds the written sectors"
    print("flush cache: ok, image file holds the data")

    done = run(initiator, sock, initiator.submit_read(SECTORS - 1, 2))
    assert not done.ok and done.ata_error == AtaErrorBit.IDNF, f"out of range: {done}"
    print("read past the end: ATA IDNF, as the spec target answers")
    assert initiator.in_flight() == []


if __name__ == "__main__":
    main()
    sys.exit(0)
