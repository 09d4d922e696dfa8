"""Counting duplicates: a request repeats one of the client's last RECENT_REQUESTS when it has the
same tag, or the same command and ATA argument; the data path's O(1) set agrees with a plain list."""

from hypothesis import given
from hypothesis import strategies as st

from impl.server.datapath import RECENT_REQUESTS
from impl.server.disks import ClientCounters
from impl.server.frames import ATA_HEADER_BYTES
from spec.aoe.target import READ_COMMANDS, READ_SECTORS_EXT, WRITE_COMMANDS

# few distinct tags and arguments, so repeats are common and the ring wraps
requests = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from(sorted(READ_COMMANDS | WRITE_COMMANDS))), max_size=600)


def frame(tag: int, lba: int, command: int) -> bytes:
    header = bytearray(ATA_HEADER_BYTES)
    header[20:24] = tag.to_bytes(4, "big")
    header[19] = 0  # AoE command: ATA
    header[24:36] = bytes([0, 0, 8, command]) + lba.to_bytes(6, "little") + b"\0\0"
    return bytes(header)


def model_duplicates(stream) -> int:
    recent, duplicates = [], 0
    for tag, lba, command in stream:
        request = (lba, command)
        duplicates += any(t == tag or r == request for t, r in recent[-RECENT_REQUESTS:])
        recent.append((tag, request))
    return duplicates


@given(requests)
def test_duplicates_are_the_repeats_of_the_last_requests(stream):
    counters = ClientCounters()
    for tag, lba, command in stream:
        counters.saw_request(frame(tag, lba, command))
    assert counters.duplicates == model_duplicates(stream)


def test_a_request_older_than_the_window_is_not_a_duplicate():
    counters = ClientCounters()
    counters.saw_request(frame(1, 1, READ_SECTORS_EXT))
    for i in range(RECENT_REQUESTS):
        counters.saw_request(frame(1000 + i, 1000 + i, READ_SECTORS_EXT))
    counters.saw_request(frame(1, 1, READ_SECTORS_EXT))
    assert counters.duplicates == 0
    counters.saw_request(frame(1, 5, READ_SECTORS_EXT))  # the same tag as the request just before
    assert counters.duplicates == 1
