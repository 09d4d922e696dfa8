"""Chapter 5 — the IDENTIFY DEVICE data (V1 §6, IDENTIFY DEVICE, Table "IDENTIFY DEVICE information").

256 words that tell the host what the device is: its capacity (words 60-61
for 28-bit commands, 100-103 for 48-bit ones), the commands and transfer
modes it supports and which are enabled, its CHS translation. Built from the
device's settings by pure functions whose contracts crosshair checks. Words
the table below does not name are 0 ("not reported" or reserved).
"""

from spec.ata.addressing import cylinders_for
from spec.ata.constants import (
    IDENTIFY_LBA28_MAX,
    MAX_CYLINDERS,
    MAX_MULTIPLE,
    MAX_MULTIWORD_DMA_MODE,
    MAX_ULTRA_DMA_MODE,
    TRANSFER_MULTIWORD_DMA,
    TRANSFER_ULTRA_DMA,
)

IDENTIFY_WORDS = 256
MODEL_NUMBER = "STORVISOR VIRTUAL ATA DISK"  # words 27-46, 40 characters
SERIAL_NUMBER = "SV-0001"  # words 10-19, 20 characters
FIRMWARE_REVISION = "0.1"  # words 23-26, 8 characters
INTEGRITY_SIGNATURE = 0xA5  # word 255 bits 7:0; bits 15:8 are the checksum

WORD0_FIXED_ATA = 0x0040  # bit 15 clear: ATA device; bit 6: not removable
WORD49_CAPABILITIES = 0x0F00  # bit 11 IORDY supported, 10 IORDY may be disabled, 9 LBA, 8 DMA
WORD50_CAPABILITIES = 0x4000  # bit 14 shall be one
WORD53_VALID = 0x0007  # words 54-58, 64-70 and 88 are valid
WORD64_PIO_MODES = 0x0003  # PIO modes 3 and 4 supported
WORD65_CYCLE_NS = 120  # words 65-68: fastest cycle times in ns, as for PIO mode 4 / multiword DMA mode 2
WORD80_MAJOR_VERSION = 0x00F0  # ATA-4 .. ATA/ATAPI-7
WORD82_SUPPORTED = 0x0028  # bit 5 write cache, bit 3 power management feature set
WORD83_SUPPORTED = 0x7400  # bit 14 shall be one, 13 FLUSH CACHE EXT, 12 FLUSH CACHE, 10 48-bit address
WORD84_SUPPORTED = 0x4000  # bit 14 shall be one
WORD85_POWER_MANAGEMENT = 0x0008  # power management is always enabled
WORD85_WRITE_CACHE = 0x0020  # enabled when the write cache is on
WORD86_ENABLED = 0x3400  # FLUSH CACHE EXT, FLUSH CACHE and 48-bit address are always enabled
WORD87_ENABLED = 0x4000  # bit 14 shall be one
WORD93_RESET_RESULT = 0x400B  # bit 14 one, bit 3 diagnostics passed, bits 2:1 jumper, bit 0 one
WORD59_MULTIPLE_VALID = 0x0100


def ata_string(text: str, words: int) -> list[int]:
    """An ASCII field padded with spaces; each word holds two characters, the first in bits 15:8 (V1 §6, IDENTIFY DEVICE).

    pre: 1 <= words <= 20 and len(text) <= 2 * words and all(32 <= ord(c) < 127 for c in text)
    post: len(__return__) == words
    post: all(0 <= w <= 0xFFFF for w in __return__)
    """
    padded = text.ljust(2 * words).encode("ascii")
    return [(padded[2 * i] << 8) | padded[2 * i + 1] for i in range(words)]


def selected_mode_bits(transfer_mode: int, family: int, max_mode: int) -> int:
    """Word 63 or 88 bits 15:8: which mode of a DMA family SET FEATURES selected, if any.

    pre: 0 <= transfer_mode <= 0xFF and family in (0x20, 0x40) and 0 <= max_mode <= 7
    post: __return__ == 0 or __return__ in [1 << (8 + m) for m in range(max_mode + 1)]
    """
    mode = transfer_mode & 0x07
    if transfer_mode & 0xF8 != family or mode > max_mode:
        return 0
    return 1 << (8 + mode)


def supported_modes(max_mode: int) -> int:
    """Word 63 or 88 bits 7:0: every mode up to `max_mode` is supported.

    pre: 0 <= max_mode <= 7
    post: __return__ == 2 ** (max_mode + 1) - 1
    """
    return (1 << (max_mode + 1)) - 1


def identify_words(
    capacity: int,
    multiple_count: int,
    transfer_mode: int,
    write_cache: bool,
    heads: int,
    sectors_per_track: int,
) -> list[int]:
    """The 256 IDENTIFY DEVICE words of a disk of `capacity` sectors with the given settings.

    pre: 1 <= capacity < 2**48
    pre: 0 <= multiple_count <= 16 and 0 <= transfer_mode <= 0xFF
    pre: 1 <= heads <= 16 and 1 <= sectors_per_track <= 0xFF
    post: len(__return__) == 256 and all(0 <= w <= 0xFFFF for w in __return__)
    post: __return__[60] | (__return__[61] << 16) == min(capacity, 0x0FFFFFFF)
    post: sum(__return__[100 + i] << (16 * i) for i in range(4)) == capacity
    post: sum((w & 0xFF) + (w >> 8) for w in __return__) % 256 == 0
    """
    words = [0] * IDENTIFY_WORDS
    default_cylinders = cylinders_for(capacity, 16, 63)
    current_cylinders = cylinders_for(capacity, heads, sectors_per_track)
    lba28_sectors = min(capacity, IDENTIFY_LBA28_MAX)
    chs_sectors = current_cylinders * heads * sectors_per_track
    words[0] = WORD0_FIXED_ATA
    words[1] = min(default_cylinders, MAX_CYLINDERS)
    words[3] = 16
    words[6] = 63
    words[10:20] = ata_string(SERIAL_NUMBER, 10)
    words[23:27] = ata_string(FIRMWARE_REVISION, 4)
    words[27:47] = ata_string(MODEL_NUMBER, 20)
    words[47] = 0x8000 | MAX_MULTIPLE  # bits 15:8 are 80h; bits 7:0 the largest multiple count
    words[49] = WORD49_CAPABILITIES
    words[50] = WORD50_CAPABILITIES
    words[53] = WORD53_VALID
    words[54] = current_cylinders
    words[55] = heads
    words[56] = sectors_per_track
    words[57] = chs_sectors & 0xFFFF
    words[58] = chs_sectors >> 16
    words[59] = (WORD59_MULTIPLE_VALID | multiple_count) if multiple_count else 0
    words[60] = lba28_sectors & 0xFFFF
    words[61] = lba28_sectors >> 16
    words[63] = supported_modes(MAX_MULTIWORD_DMA_MODE) | selected_mode_bits(
        transfer_mode, TRANSFER_MULTIWORD_DMA, MAX_MULTIWORD_DMA_MODE
    )
    words[64] = WORD64_PIO_MODES
    words[65:69] = [WORD65_CYCLE_NS] * 4
    words[80] = WORD80_MAJOR_VERSION
    words[82] = WORD82_SUPPORTED
    words[83] = WORD83_SUPPORTED
    words[84] = WORD84_SUPPORTED
    words[85] = WORD85_POWER_MANAGEMENT | (WORD85_WRITE_CACHE if write_cache else 0)
    words[86] = WORD86_ENABLED
    words[87] = WORD87_ENABLED
    words[88] = supported_modes(MAX_ULTRA_DMA_MODE) | selected_mode_bits(
        transfer_mode, TRANSFER_ULTRA_DMA, MAX_ULTRA_DMA_MODE
    )
    words[93] = WORD93_RESET_RESULT
    words[100:104] = [(capacity >> (16 * i)) & 0xFFFF for i in range(4)]
    words[255] = INTEGRITY_SIGNATURE | (integrity_checksum(words) << 8)
    return words


def integrity_checksum(words: list[int]) -> int:
    """Word 255 bits 15:8: the two's complement of the sum of bytes 0..510, with byte 510 = A5h (V1 §6, IDENTIFY DEVICE word 255)."""
    return checksum_byte(sum((w & 0xFF) + (w >> 8) for w in words[:255]) + INTEGRITY_SIGNATURE)


def checksum_byte(byte_sum: int) -> int:
    """The byte that makes `byte_sum` plus itself a multiple of 256.

    pre: byte_sum >= 0
    post: 0 <= __return__ <= 0xFF
    post: (byte_sum + __return__) % 256 == 0
    """
    return -byte_sum & 0xFF


def identify_bytes(words: list[int]) -> bytes:
    """The 512 bytes the Data register delivers: each word little-endian, as every PIO word is."""
    return b"".join(w.to_bytes(2, "little") for w in words)
