"""The data path's slicing-by-8 CRC-32 is zlib's: overlay records written in C pass Python's recovery."""

import ctypes
import zlib

from hypothesis import example, given
from hypothesis import strategies as st

from impl.server.datapath import library


def dp_crc32(start: int, data: bytes, misalign: int = 0) -> int:
    """The C CRC over `data` placed `misalign` bytes past an 8-byte boundary (the 8-byte steps read unaligned words)."""
    buffer = ctypes.create_string_buffer(len(data) + 8)
    address = ctypes.addressof(buffer) + (-ctypes.addressof(buffer) + misalign) % 8
    ctypes.memmove(address, data, len(data))
    return library().dp_crc32(start, ctypes.cast(address, ctypes.c_char_p), len(data))


@given(data=st.binary(max_size=9000), start=st.integers(0, 2**32 - 1), misalign=st.integers(0, 7))
@example(data=b"", start=0, misalign=0)
@example(data=b"", start=0xFFFFFFFF, misalign=0)
@example(data=b"123456789", start=0, misalign=0)  # the check value 0xCBF43926
@example(data=bytes(range(256)) * 35, start=0x12345678, misalign=3)
def test_dp_crc32_equals_zlib_crc32(data, start, misalign):
    assert dp_crc32(start, data, misalign) == zlib.crc32(data, start)


@given(length=st.integers(0, 17), start=st.integers(0, 2**32 - 1))
def test_every_tail_length_around_the_eight_byte_step(length, start):
    data = bytes((7 * i + 1) & 0xFF for i in range(length))
    assert dp_crc32(start, data) == zlib.crc32(data, start)


def test_the_standard_check_value():
    assert dp_crc32(0, b"123456789") == 0xCBF43926


def test_a_crc_continues_across_pieces_as_zlib_does():
    data = bytes(range(256)) * 4
    assert dp_crc32(dp_crc32(0, data[:13]), data[13:]) == zlib.crc32(data)
