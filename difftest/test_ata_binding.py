"""One test drives either side: the same checks against spec.ata.AtaChannel and the C core's CAtaChannel."""

import pytest

from difftest.ata_world import RecordingStore
from difftest.binding.ata import CAtaChannel
from spec.ata import AtaChannel, FlatMemory, check_invariants
from spec.ata.identify import identify_words

CHANNELS = [AtaChannel, CAtaChannel]


@pytest.fixture(params=CHANNELS, ids=["spec", "c"])
def channel(request):
    return request.param(RecordingStore(100, 0), FlatMemory(0x1000))


def test_identify_device_reports_the_capacity_and_settings(channel):
    channel.write(0x1F6, 1, 0xA0)
    channel.write(0x1F7, 1, 0xEC)
    assert channel.read(0x3F6, 1) == 0xD0
    channel.tick()
    assert channel.intrq and channel.read(0x1F7, 1) == 0x58 and not channel.intrq
    words = [channel.read(0x1F0, 2) for _ in range(256)]
    assert words == identify_words(100, 0, 0, True, 16, 63)
    assert channel.read(0x1F7, 1) == 0x50
    check_invariants(channel.state, 100)


def test_a_software_reset_leaves_the_signature(channel):
    channel.write(0x1F2, 1, 0x33)
    channel.write(0x3F6, 1, 0x04)
    assert channel.read(0x3F6, 1) == 0x80
    channel.write(0x3F6, 1, 0x00)
    channel.tick()
    assert [channel.read(0x1F0 + r, 1) for r in range(1, 8)] == [0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x50]


@pytest.mark.parametrize(
    "access",
    [
        lambda c: c.read(0x1F8, 1),  # not a register of the channel
        lambda c: c.read(0x1F7, 3),  # no such access width
        lambda c: c.write(0x1F7, 1, 0x100),  # the value does not fit the width
        lambda c: c.write(0xC040, 2, -1),
    ],
)
def test_accesses_the_channel_does_not_decode_are_refused_alike(channel, access):
    before = channel.observe()
    with pytest.raises(ValueError):
        access(channel)
    assert channel.observe() == before


def test_the_c_core_refuses_a_transfer_buffer_too_small_for_the_disk():
    c = CAtaChannel(RecordingStore(100, 0), FlatMemory(16))
    assert c.core.ata_required_buffer_bytes(100) == 100 * 512
    assert c.core.ata_required_buffer_bytes(1) == 16 * 512  # room for the largest READ/WRITE MULTIPLE block
    assert c.core.ata_required_buffer_bytes(1 << 40) == 65536 * 512
    status = c.core.ata_channel_init(c._channel, c._store.struct, c._memory.struct, 0x1F0, 0x3F6, 0xC040, c._buffer, 100 * 512 - 1)
    assert status == 1  # CORE_BAD_EVENT
