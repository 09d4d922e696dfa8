"""The trace format: every kind of line parses, prints back to itself, and bad lines are refused with their place."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from difftest.trace import TraceError, format_trace, parse_trace
from difftest.trace import events as ev

EVERY_KIND = """\
# a comment line, then a blank line

config capacity = 64
config policy = install
out8 0x1f6 0xe0          # a trailing comment
out16 0x1f0 0xbeef
out32 0xc044 0x1000
in8 0x1f7
in16 0x1f0 = 0x5
in32 0x1f0
tick
tick 3
mem 0x1000 = [00 10 ff]
mem 0x2000 fill 0xaa 512
expect status = 0x50
expect mem 0x1000 = [00 10]
store fail 0x40
frame rx [ff ff ff ff ff ff 00 11 22 33 44 55 88 a2]
disk done 3 ok
disk done 4 error 0x40
power cut
power cut newest
restart
policy install
net drop
net delay 3
net deliver
server crash
server restart
"""

EXPECTED = [
    ev.Config("capacity", 64),
    ev.Config("policy", "install"),
    ev.PortWrite(1, 0x1F6, 0xE0),
    ev.PortWrite(2, 0x1F0, 0xBEEF),
    ev.PortWrite(4, 0xC044, 0x1000),
    ev.PortRead(1, 0x1F7),
    ev.PortRead(2, 0x1F0, 5),
    ev.PortRead(4, 0x1F0),
    ev.Tick(1),
    ev.Tick(3),
    ev.MemoryWrite(0x1000, bytes([0, 0x10, 0xFF])),
    ev.MemoryWrite(0x2000, b"\xaa" * 512),
    ev.Expect("status", 0x50),
    ev.ExpectMemory(0x1000, bytes([0, 0x10])),
    ev.StoreFail(0x40),
    ev.FrameReceived(bytes.fromhex("ffffffffffff001122334455 88a2".replace(" ", ""))),
    ev.DiskDone(3),
    ev.DiskDone(4, ok=False, error=0x40),
    ev.PowerCut(),
    ev.PowerCut("newest"),
    ev.Restart(),
    ev.PolicyChange("install"),
    ev.Network("drop"),
    ev.Network("delay", (3,)),
    ev.Network("deliver"),
    ev.Server("crash"),
    ev.Server("restart"),
]


def test_every_kind_of_line_parses_to_its_event():
    assert parse_trace(EVERY_KIND) == EXPECTED


def test_printing_and_parsing_give_the_same_events_back():
    text = format_trace(EXPECTED, "header\nsecond line")
    assert text.startswith("# header\n# second line\n")
    assert parse_trace(text) == EXPECTED


def test_a_file_without_a_final_newline_parses():
    assert parse_trace("tick\ntick 2") == [ev.Tick(1), ev.Tick(2)]


@pytest.mark.parametrize(
    "line, message",
    [
        ("inn8 0x1f7", "2:1"),
        ("out8 0x1f7", "2:11"),
        ("out8 0x1f7 0x100", "does not fit"),
        ("mem 0x0 fill 0x100 4", "not a byte"),
        ("mem 0x0 = [0]", "2:"),
        ("disk done 3 maybe", "2:"),
        ("server reboot", "2:"),
    ],
)
def test_a_bad_line_is_refused_with_its_place(line, message):
    with pytest.raises(TraceError, match=message):
        parse_trace("tick\n" + line + "\n", "example.trace")


def events():
    ports = st.integers(0, 0xFFFF)
    widths = st.sampled_from([1, 2, 4])
    return st.one_of(
        st.builds(ev.Config, st.sampled_from(["capacity", "latency", "memory"]), st.integers(0, 1 << 20)),
        st.builds(ev.Config, st.just("policy"), st.sampled_from(["network", "cache", "install"])),
        widths.flatmap(lambda w: st.builds(ev.PortRead, st.just(w), ports, st.none() | st.integers(0, (1 << 8 * w) - 1))),
        widths.flatmap(lambda w: st.builds(ev.PortWrite, st.just(w), ports, st.integers(0, (1 << 8 * w) - 1))),
        st.builds(ev.Tick, st.integers(1, 100)),
        st.builds(ev.MemoryWrite, st.integers(0, 1 << 32), st.binary(max_size=40)),
        st.builds(ev.Expect, st.sampled_from(["status", "intrq", "bm_status"]), st.integers(0, 0xFF)),
        st.builds(ev.ExpectMemory, st.integers(0, 1 << 32), st.binary(max_size=8)),
        st.builds(ev.StoreFail, st.integers(1, 0xFF)),
        st.builds(ev.FrameReceived, st.binary(max_size=64)),
        st.builds(ev.DiskDone, st.integers(0, 1000)),
        st.builds(ev.DiskDone, st.integers(0, 1000), st.just(False), st.integers(1, 0xFF)),
        st.builds(ev.PowerCut, st.none() | st.sampled_from(["oldest", "newest", "random"])),
        st.just(ev.Restart()),
        st.builds(ev.PolicyChange, st.sampled_from(["network", "cache", "install", "passthrough"])),
        st.builds(ev.Network, st.sampled_from(["drop", "duplicate", "delay", "deliver", "reorder"]), st.tuples() | st.tuples(st.integers(0, 9))),
        st.builds(ev.Server, st.sampled_from(["crash", "restart"])),
    )


@given(st.lists(events(), max_size=20))
def test_any_sequence_of_events_survives_a_round_trip(sequence):
    assert parse_trace(format_trace(sequence)) == sequence
