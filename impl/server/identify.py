"""The IDENTIFY DEVICE data a client's disk reports (ATA/ATAPI-7 V1 §6.17, table 16)."""

import struct

SECTOR_WORDS = 256
LBA28_MAX_SECTORS = 0x0FFFFFFF  # ATA/ATAPI-7 V1 §6.17.23: words 60-61 saturate at 268,435,455

WORD_CAPABILITIES = 49
CAPABILITY_LBA = 0x0200  # word 49 bit 9: LBA supported
WORD_SUPPORTED_83 = 83
WORD_ENABLED_86 = 86
LBA48_AND_FLUSH = 0x3400  # bits 13 FLUSH CACHE EXT, 12 FLUSH CACHE, 10 48-bit address feature set
VALID_SIGNATURE = 0x4000  # words 83/84/87: bit 14 set, bit 15 clear means the word is valid


def ata_string(text: str, words: int) -> list[int]:
    """An ATA string field: space padded, two characters a word, first character in the high byte (§6.17)."""
    raw = text.encode("ascii", "replace")[: words * 2].ljust(words * 2, b" ")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def identify_device_data(sectors: int, serial: str, model: str, firmware: str) -> bytes:
    """512 bytes of IDENTIFY DEVICE data for a disk of `sectors` sectors that supports LBA48 and flush."""
    w = [0] * SECTOR_WORDS
    w[10:20] = ata_string(serial, 10)
    w[23:27] = ata_string(firmware, 4)
    w[27:47] = ata_string(model, 20)
    w[47] = 0x8000  # §6.17.11: no READ/WRITE MULTIPLE over AoE
    w[WORD_CAPABILITIES] = CAPABILITY_LBA
    w[50] = VALID_SIGNATURE
    lba28 = min(sectors, LBA28_MAX_SECTORS)
    w[60], w[61] = lba28 & 0xFFFF, lba28 >> 16
    w[WORD_SUPPORTED_83] = VALID_SIGNATURE | LBA48_AND_FLUSH
    w[84] = VALID_SIGNATURE
    w[WORD_ENABLED_86] = LBA48_AND_FLUSH
    w[87] = VALID_SIGNATURE
    for i in range(4):  # words 100-103: the 48-bit sector count, least significant word first
        w[100 + i] = (sectors >> (16 * i)) & 0xFFFF
    return struct.pack("<256H", *w)
