"""A stream of writes killed mid-way, and the check after the restart: every write answered before
the kill survives (the page cache outlives the process), and no sector goes back to an older write.
Used over UDP (`test_process.py`) and raw Ethernet with several workers (`test_workers.py`)."""

import signal
import time

from impl.server.initiator import ata_body, request_frame
from spec.aoe.constants import SECTOR_BYTES, AoeCommand, AtaStatus, HeaderFlag
from spec.aoe.target import FLUSH_CACHE_EXT, WRITE_SECTORS_EXT

STREAM_SECTORS = 64  # the stream's sectors: each is overwritten many times, flushed and not
STREAM_WINDOW = 16  # writes outstanding at once, as an initiator with a queue keeps them
FLUSH_EVERY = 50
STALL_SECONDS = 10.0  # a busy machine may need longer than the stream's time to acknowledge every sector once
FLUSH_TAG = 1 << 31  # a flush's tag: the write it follows, with the top bit set


def sector_of_write(number: int) -> bytes:
    return number.to_bytes(4, "big") * (SECTOR_BYTES // 4)


def stream_writes_then_kill(process, client, first: int, seconds: float) -> tuple[dict[int, int], dict[int, list[int]], int]:
    """Writes `first`, `first`+1, ... to sectors number % STREAM_SECTORS, STREAM_WINDOW outstanding,
    a FLUSH CACHE EXT after every FLUSH_EVERY, for `seconds`; then a full window more is sent and
    `process` (the server, or the worker serving the client) is killed at once. Returns the newest acknowledged write per sector, every write
    sent per sector (in order), and how many were acknowledged after the last flush's answer."""
    mac = client.mac
    outstanding, last_acknowledged, sent = set(), {}, {}
    flush_tags, unflushed = set(), 0
    number, deadline = first, time.monotonic() + seconds

    def send(n: int) -> None:
        lba = n % STREAM_SECTORS
        client.send_only(request_frame(client.server_mac, mac, 0, 0, AoeCommand.ATA, n, ata_body(WRITE_SECTORS_EXT, lba, 1, sector_of_write(n), write=True)))
        outstanding.add(n)
        sent.setdefault(lba, []).append(n)
        if (n - first) % FLUSH_EVERY == FLUSH_EVERY - 1:
            flush_tags.add(n | FLUSH_TAG)
            client.send_only(request_frame(client.server_mac, mac, 0, 0, AoeCommand.ATA, n | FLUSH_TAG, ata_body(FLUSH_CACHE_EXT, 0, 0)))

    def take(responses) -> None:
        nonlocal unflushed
        for r in responses:
            assert not r.flags & HeaderFlag.ERROR and not r.fields[3] & AtaStatus.ERR, f"request {r.tag:#x} failed"
            if r.tag in flush_tags:
                flush_tags.discard(r.tag)
                unflushed = 0
            elif r.tag in outstanding:
                outstanding.discard(r.tag)
                lba = r.tag % STREAM_SECTORS
                last_acknowledged[lba] = max(r.tag, last_acknowledged.get(lba, r.tag))
                unflushed += 1

    give_up = deadline + STALL_SECONDS
    # the kill must find every sector written and writes acknowledged since the last flush
    while (time.monotonic() < deadline or not unflushed or len(last_acknowledged) < STREAM_SECTORS) and time.monotonic() < give_up:
        # a sector's next write waits for its previous one: the order they land in is then the order sent
        while len(outstanding) < STREAM_WINDOW and number - STREAM_SECTORS not in outstanding:
            send(number)
            number += 1
        take(client.collect(0.002))
    for _ in range(STREAM_WINDOW):
        if number - STREAM_SECTORS not in outstanding:
            send(number)
            number += 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    take(client.collect(0.2))  # answers the server sent before it died count as acknowledged
    return last_acknowledged, sent, unflushed


def check_sectors(reader, sectors: int, before: list[bytes], last_acknowledged: dict[int, int], sent: dict[int, list[int]]) -> list[bytes]:
    """Each sector holds its newest acknowledged write or a write sent after it (never an older one),
    and a sector the stream did not touch holds what it held before. Returns the sectors read."""
    after = []
    for lba in range(sectors):
        sector = reader.read(lba, 1)
        newest = last_acknowledged.get(lba)
        allowed = {before[lba]} if newest is None else set()
        allowed |= {sector_of_write(n) for n in sent.get(lba, ()) if newest is None or n >= newest}
        assert sector in allowed, f"sector {lba}: lost its acknowledged write {newest} or holds an older one"
        after.append(sector)
    return after
