"""Every value on which QEMU 7.2's IDE disk and the spec are known to differ, and why.

Each entry is (sequence, label) → (QEMU's value, the spec's value, reason). The test fails on a
difference not listed here, on a listed difference whose values change, and on a listed
difference that has gone away, so the table always says exactly where the two disagree.
Two kinds of reason: the standard leaves the value open and the two choose differently
(both conform), or QEMU departs from ATA/ATAPI-7 and the spec keeps the standard.
"""

# --- the standard leaves the value open ---
OUTPUTS_NOT_DEFINED = (
    "V1 §6 normal outputs of a data command leave Sector Count and LBA 'na'; QEMU advances them "
    "past the last sector as old drives did, the spec leaves the host's values"
)
ERROR_STATUS_BIT4 = (
    "V1 §7 Status bit 4 is command dependent (formerly DSC) and not defined for an error; "
    "QEMU clears it with ERR (41h), the spec keeps it set whenever the device is ready (51h)"
)
OUT_OF_RANGE_ABRT_OR_IDNF = (
    "V1 §6 READ SECTORS error outputs: an address beyond the capacity reports IDNF, or ABRT "
    "when IDNF is not set; QEMU chooses ABRT, the spec IDNF"
)
DEVICE_OBSOLETE_BITS = (
    "V1 §7 Device register bits 7 and 5 are obsolete; QEMU reads them as one (as in ATA-1's "
    "1 LBA 1 DEV), the spec reads back what the host wrote and 00h after reset (V2 §11 signature)"
)
DATA_WITHOUT_DRQ = (
    "V1 §7 leaves the Data register undefined without DRQ; QEMU reads 0, the spec all ones "
    "(a departure the spec documents, spec/ata/README.md)"
)
ABSENT_DEVICE_1_ERROR = (
    "device 1 selected and absent: both read Status 00h (V1 §7); for Error QEMU answers 00h, the spec "
    "device 0's register as for every other command block register (not fixed by the standard as read here)"
)
IDENTIFY_STRING = "IDENTIFY serial number, firmware revision and model: each device names itself"
IDENTIFY_RETIRED = "IDENTIFY word retired or obsolete in ATA/ATAPI-7; QEMU keeps its ATA-1 era value, the spec reports 0"
IDENTIFY_NEWER_STANDARD = "IDENTIFY word reserved in ATA/ATAPI-7 and defined by later standards (ACS), which QEMU follows"
IDENTIFY_VENDOR_CHOICE = "IDENTIFY word whose content each device chooses: what it supports or reports (V1 §6, IDENTIFY DEVICE)"
IDENTIFY_CHECKSUM = "word 255: the spec gives the integrity word (A5h + checksum); QEMU reports none (0), which the standard allows"

# --- QEMU departs from ATA/ATAPI-7 ---
QEMU_STALE_WORD59 = (
    "QEMU departs: word 59 must show the current multiple count (V1 §6, IDENTIFY DEVICE word 59); "
    "QEMU caches the IDENTIFY data of its first IDENTIFY and keeps 16 after SET MULTIPLE MODE 8"
)
QEMU_VERIFY_UNCHECKED = (
    "QEMU departs: READ VERIFY SECTORS past the capacity must fail with IDNF (or ABRT) like READ SECTORS "
    "(V1 §6, READ VERIFY SECTORS error outputs); QEMU verifies nothing and completes without error"
)
QEMU_WORD50_BIT14 = "QEMU departs: IDENTIFY word 50 bit 14 shall be one (V1 §6, IDENTIFY DEVICE); QEMU reports 0"

EXPECTED_DIFFERENCES: dict[tuple[str, str], tuple[int, int, str]] = {
    ("software reset", "after reset: device"): (0xA0, 0x00, DEVICE_OBSOLETE_BITS),
    ("software reset again", "after reset: device"): (0xA0, 0x00, DEVICE_OBSOLETE_BITS),
    ("read sectors x3", "after: sector count"): (0x00, 0x03, OUTPUTS_NOT_DEFINED),
    ("read sectors x3", "after: lba low"): (0x20, 0x1D, OUTPUTS_NOT_DEFINED),
    ("write sectors x2 then read", "after write: sector count"): (0x00, 0x02, OUTPUTS_NOT_DEFINED),
    ("write sectors x2 then read", "after write: lba low"): (0x2E, 0x2C, OUTPUTS_NOT_DEFINED),
    ("lba48 read sectors ext", "after, hob 0: sector count"): (0x00, 0x02, OUTPUTS_NOT_DEFINED),
    ("lba48 read sectors ext", "after, hob 0: lba low"): (0x42, 0x40, OUTPUTS_NOT_DEFINED),
    ("lba48 read sectors ext", "after, hob 0: device"): (0xE0, 0x40, DEVICE_OBSOLETE_BITS),
    ("lba48 read sectors ext", "after, hob 1: device"): (0xE0, 0x40, DEVICE_OBSOLETE_BITS),
    ("unknown command", "settled"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("unknown command", "after: status"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("lba beyond capacity", "lba28 settled"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("lba beyond capacity", "lba28 after: error"): (0x04, 0x10, OUT_OF_RANGE_ABRT_OR_IDNF),
    ("lba beyond capacity", "lba28 after: status"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("lba beyond capacity", "lba48 settled"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("lba beyond capacity", "lba48 after: error"): (0x04, 0x10, OUT_OF_RANGE_ABRT_OR_IDNF),
    ("lba beyond capacity", "lba48 after: device"): (0xE0, 0x40, DEVICE_OBSOLETE_BITS),
    ("lba beyond capacity", "lba48 after: status"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("set features bad subcommand", "settled"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("set features bad subcommand", "after: status"): (0x41, 0x51, ERROR_STATUS_BIT4),
    ("read verify sectors", "past end settled"): (0x50, 0x51, QEMU_VERIFY_UNCHECKED),
    ("read verify sectors", "past end: error"): (0x00, 0x10, QEMU_VERIFY_UNCHECKED),
    ("execute device diagnostic", "after: device"): (0xA0, 0x00, DEVICE_OBSOLETE_BITS),
    ("software reset during drq", "after reset: device"): (0xA0, 0x00, DEVICE_OBSOLETE_BITS),
    ("absent device 1", "device 1: error"): (0x00, 0x01, ABSENT_DEVICE_1_ERROR),
    ("data without drq", "idle word 0"): (0x0000, 0xFFFF, DATA_WITHOUT_DRQ),
    ("data without drq", "idle word 1"): (0x0000, 0xFFFF, DATA_WITHOUT_DRQ),
}

# IDENTIFY DEVICE words that differ: word → (QEMU, spec, reason); a `None` value is any value.
IDENTIFY_DIFFERENCES: dict[int, tuple[int | None, int | None, str]] = {
    4: (0x7E00, 0x0000, IDENTIFY_RETIRED),  # unformatted bytes per track
    5: (0x0200, 0x0000, IDENTIFY_RETIRED),  # unformatted bytes per sector
    **{word: (None, None, IDENTIFY_STRING) for word in range(10, 20)},  # serial number
    20: (0x0003, 0x0000, IDENTIFY_RETIRED),  # buffer type
    21: (0x0200, 0x0000, IDENTIFY_RETIRED),  # buffer size
    22: (0x0004, 0x0000, IDENTIFY_RETIRED),  # ECC bytes of READ/WRITE LONG
    **{word: (None, None, IDENTIFY_STRING) for word in range(23, 47)},  # firmware revision, model
    48: (0x0001, 0x0000, IDENTIFY_RETIRED),  # "can do doubleword I/O"
    49: (0x0B00, 0x0F00, IDENTIFY_VENDOR_CHOICE + ": QEMU does not claim bit 10, IORDY may be disabled"),
    50: (0x0000, 0x4000, QEMU_WORD50_BIT14),
    51: (0x0200, 0x0000, IDENTIFY_RETIRED),  # PIO timing mode
    52: (0x0200, 0x0000, IDENTIFY_RETIRED),  # single-word DMA timing mode
    59: (0x0110, 0x0108, QEMU_STALE_WORD59),
    62: (0x0007, 0x0000, IDENTIFY_RETIRED),  # single-word DMA modes
    69: (0x4000, 0x0000, IDENTIFY_NEWER_STANDARD),  # additional supported
    81: (0x0016, 0x0000, IDENTIFY_VENDOR_CHOICE + ": minor version number (0 = not reported)"),
    82: (0x4021, 0x0028, IDENTIFY_VENDOR_CHOICE + ": QEMU claims NOP and SMART, the spec the power management feature set"),
    85: (0x4021, 0x0028, IDENTIFY_VENDOR_CHOICE + ": the enabled counterparts of word 82"),
    93: (0x6001, 0x400B, IDENTIFY_VENDOR_CHOICE + ": hardware reset results; QEMU leaves device 0's bits 3:1 at 0 and reports an 80-conductor cable (bit 13)"),
    106: (0x6000, 0x0000, IDENTIFY_VENDOR_CHOICE + ": physical/logical sector size (0 = not reported)"),
    169: (0x0001, 0x0000, IDENTIFY_NEWER_STANDARD),  # DATA SET MANAGEMENT (TRIM) supported
    255: (0x0000, None, IDENTIFY_CHECKSUM),
}

# IDENTIFY words (and bits) that must agree: what a host needs to address and drive the disk.
IDENTIFY_MUST_AGREE: dict[int, int] = {
    0: 0x8000,  # ATA device
    47: 0xFFFF,  # largest multiple count
    49: 0x0300,  # LBA and DMA supported
    53: 0xFFFF,  # words 54-58, 64-70 and 88 valid
    **{word: 0xFFFF for word in range(54, 59)},  # current CHS translation and its capacity
    60: 0xFFFF,  # LBA28 capacity
    61: 0xFFFF,
    63: 0xFFFF,  # multiword DMA modes supported and selected
    64: 0xFFFF,  # PIO modes
    83: 0x3400,  # FLUSH CACHE EXT, FLUSH CACHE, 48-bit address supported
    86: 0x3400,  # ... and enabled
    88: 0xFFFF,  # Ultra DMA modes supported and selected
    **{word: 0xFFFF for word in range(100, 104)},  # LBA48 capacity
}
