/* Chapter 5 — the IDENTIFY DEVICE data (spec/ata/identify.py; V1 §6, IDENTIFY DEVICE). */
#include "ata_core.h"
#include "core_lib.h"

/* An ASCII field padded with spaces; each word holds two characters, the first in bits 15:8. */
static void ata_string(uint16_t *words, const char *text, uint32_t word_count)
{
    uint32_t length = 0;
    while (text[length])
        length++;
    for (uint32_t i = 0; i < word_count; i++) {
        uint8_t first = 2 * i < length ? (uint8_t)text[2 * i] : ' ';
        uint8_t second = 2 * i + 1 < length ? (uint8_t)text[2 * i + 1] : ' ';
        words[i] = (uint16_t)((first << 8) | second);
    }
}

/* Word 63 or 88 bits 15:8: which mode of a DMA family SET FEATURES selected, if any. */
static uint16_t ata_selected_mode_bits(uint8_t transfer_mode, uint8_t family, uint8_t max_mode)
{
    uint8_t mode = transfer_mode & 0x07;
    if ((transfer_mode & 0xF8) != family || mode > max_mode)
        return 0;
    return (uint16_t)(1u << (8 + mode));
}

/* Word 63 or 88 bits 7:0: every mode up to `max_mode` is supported. */
static uint16_t ata_supported_modes(uint8_t max_mode)
{
    return (uint16_t)((1u << (max_mode + 1)) - 1);
}

/* Word 255 bits 15:8: the two's complement of the sum of bytes 0..510, with byte 510 = A5h (V1 §6, IDENTIFY DEVICE word 255). */
static uint8_t ata_integrity_checksum(const uint16_t *words)
{
    uint32_t total = ATA_INTEGRITY_SIGNATURE;
    for (uint32_t i = 0; i < ATA_IDENTIFY_WORDS - 1; i++)
        total += (words[i] & 0xFF) + (words[i] >> 8);
    return (uint8_t)(-total & 0xFF);
}

/* The 256 IDENTIFY DEVICE words of a disk of `capacity` sectors with the given settings (spec identify_words). */
static void ata_identify_words(uint64_t capacity, const struct ata_settings *s, uint16_t *words)
{
    uint32_t default_cylinders = ata_cylinders_for(capacity, 16, 63);
    uint32_t current_cylinders = ata_cylinders_for(capacity, s->heads, s->sectors_per_track);
    uint32_t lba28_sectors = capacity < ATA_IDENTIFY_LBA28_MAX ? (uint32_t)capacity : ATA_IDENTIFY_LBA28_MAX;
    uint32_t chs_sectors = current_cylinders * s->heads * s->sectors_per_track;
    for (uint32_t i = 0; i < ATA_IDENTIFY_WORDS; i++)
        words[i] = 0;
    words[0] = ATA_WORD0_FIXED_ATA;
    words[1] = (uint16_t)(default_cylinders < ATA_MAX_CYLINDERS ? default_cylinders : ATA_MAX_CYLINDERS);
    words[3] = 16;
    words[6] = 63;
    ata_string(words + 10, ATA_SERIAL_NUMBER, 10);
    ata_string(words + 23, ATA_FIRMWARE_REVISION, 4);
    ata_string(words + 27, ATA_MODEL_NUMBER, 20);
    words[47] = 0x8000 | ATA_MAX_MULTIPLE; /* bits 15:8 are 80h; bits 7:0 the largest multiple count */
    words[49] = ATA_WORD49_CAPABILITIES;
    words[50] = ATA_WORD50_CAPABILITIES;
    words[53] = ATA_WORD53_VALID;
    words[54] = (uint16_t)current_cylinders;
    words[55] = s->heads;
    words[56] = s->sectors_per_track;
    words[57] = (uint16_t)(chs_sectors & 0xFFFF);
    words[58] = (uint16_t)(chs_sectors >> 16);
    words[59] = s->multiple_count ? (uint16_t)(ATA_WORD59_MULTIPLE_VALID | s->multiple_count) : 0;
    words[60] = (uint16_t)(lba28_sectors & 0xFFFF);
    words[61] = (uint16_t)(lba28_sectors >> 16);
    words[63] = ata_supported_modes(ATA_MAX_MULTIWORD_DMA_MODE) |
                ata_selected_mode_bits(s->transfer_mode, ATA_TRANSFER_MULTIWORD_DMA, ATA_MAX_MULTIWORD_DMA_MODE);
    words[64] = ATA_WORD64_PIO_MODES;
    for (uint32_t i = 65; i < 69; i++)
        words[i] = ATA_WORD65_CYCLE_NS;
    words[80] = ATA_WORD80_MAJOR_VERSION;
    words[82] = ATA_WORD82_SUPPORTED;
    words[83] = ATA_WORD83_SUPPORTED;
    words[84] = ATA_WORD84_SUPPORTED;
    words[85] = ATA_WORD85_POWER_MANAGEMENT | (s->write_cache ? ATA_WORD85_WRITE_CACHE : 0);
    words[86] = ATA_WORD86_ENABLED;
    words[87] = ATA_WORD87_ENABLED;
    words[88] = ata_supported_modes(ATA_MAX_ULTRA_DMA_MODE) |
                ata_selected_mode_bits(s->transfer_mode, ATA_TRANSFER_ULTRA_DMA, ATA_MAX_ULTRA_DMA_MODE);
    words[93] = ATA_WORD93_RESET_RESULT;
    for (uint32_t i = 0; i < 4; i++)
        words[100 + i] = (uint16_t)((capacity >> (16 * i)) & 0xFFFF);
    words[255] = (uint16_t)(ATA_INTEGRITY_SIGNATURE | (ata_integrity_checksum(words) << 8));
}

/* The 512 bytes the Data register delivers: each word little-endian, as every PIO word is. */
void ata_identify_bytes(uint64_t capacity, const struct ata_settings *settings, uint8_t bytes[CORE_SECTOR_BYTES])
{
    uint16_t words[ATA_IDENTIFY_WORDS];
    ata_identify_words(capacity, settings, words);
    for (uint32_t i = 0; i < ATA_IDENTIFY_WORDS; i++)
        core_store_le16(bytes + 2 * i, words[i]);
}
