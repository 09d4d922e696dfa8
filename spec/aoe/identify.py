"""The IDENTIFY DEVICE data an AoE target returns (ATA/ATAPI-7 V1 §6.17, Table 16).

Only the words an initiator relies on are filled in; every other word is 0.
Strings are ATA strings: ASCII, space padded, the two bytes of each word swapped.
"""

from spec.aoe.constants import LBA28_MASK, SECTOR_BYTES

WORDS = SECTOR_BYTES // 2


def ata_string(text: str, words: int) -> list[int]:
    """`text` as `words` ATA string words (ATA/ATAPI-7 V1 §3.2.9: first character in the high byte)."""
    padded = text.encode("ascii", "replace")[: words * 2].ljust(words * 2, b" ")
    return [padded[2 * i] << 8 | padded[2 * i + 1] for i in range(words)]


def identify_device_data(sector_count: int, serial: str, model: str, firmware: str) -> bytes:
    """512 bytes of IDENTIFY DEVICE data for a disk of `sector_count` sectors."""
    w = [0] * WORDS
    w[0] = 0x0040  # word 0: fixed device, ATA
    w[10:20] = ata_string(serial, 10)  # words 10-19: serial number
    w[23:27] = ata_string(firmware, 4)  # words 23-26: firmware revision
    w[27:47] = ata_string(model, 20)  # words 27-46: model number
    w[47] = 0x8000  # word 47: READ/WRITE MULTIPLE not supported (0 sectors per block)
    w[49] = 0x0200  # word 49 bit 9: LBA supported
    w[50] = 0x4000  # word 50: bit 14 shall be one
    lba28 = min(sector_count, LBA28_MASK)
    w[60], w[61] = lba28 & 0xFFFF, lba28 >> 16  # words 60-61: user-addressable sectors, 28-bit
    w[80] = 0x00F0  # word 80: ATA/ATAPI-4 to -7
    w[83] = 0x7400  # word 83: bit 14 one; 13 FLUSH CACHE EXT, 12 FLUSH CACHE, 10 48-bit address supported
    w[84] = 0x4000  # word 84: bit 14 shall be one
    w[86] = 0x3400  # word 86: FLUSH CACHE EXT, FLUSH CACHE and 48-bit addressing enabled
    w[87] = 0x4000  # word 87: bit 14 shall be one
    for i in range(4):  # words 100-103: user-addressable sectors, 48-bit
        w[100 + i] = (sector_count >> (16 * i)) & 0xFFFF
    return b"".join(word.to_bytes(2, "little") for word in w)
