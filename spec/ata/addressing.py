"""Chapter 2 — how a command names sectors: LBA, CHS and sector counts.

Pure functions of register values. Their `pre:`/`post:` lines are contracts
that crosshair checks (tests/ata/test_contracts.py). Registers are bytes, so
every argument is 0..255 unless its name says otherwise.
"""

from spec.ata.constants import DEVICE_LOW_NIBBLE, LBA28_MAX_SECTORS, LBA48_MAX_SECTORS, MAX_CYLINDERS


def sector_count_28(count: int) -> int:
    """The number of sectors a 28-bit command transfers (V1 §6, READ SECTORS: 0 means 256).

    pre: 0 <= count <= 0xFF
    post: 1 <= __return__ <= 256
    post: __return__ % 256 == count
    """
    return count if count else LBA28_MAX_SECTORS


def sector_count_48(count: int, previous_count: int) -> int:
    """The number of sectors a 48-bit command transfers: previous content is bits 15:8 (V1 §6, READ SECTORS EXT: 0 means 65536).

    pre: 0 <= count <= 0xFF
    pre: 0 <= previous_count <= 0xFF
    post: 1 <= __return__ <= 65536
    post: __return__ % 65536 == (previous_count << 8) | count
    """
    combined = (previous_count << 8) | count
    return combined if combined else LBA48_MAX_SECTORS


def lba_28(lba_low: int, lba_mid: int, lba_high: int, device: int) -> int:
    """The 28-bit LBA: Device bits 3:0 are LBA bits 27:24 (V1 §7, Device register).

    pre: 0 <= lba_low <= 0xFF and 0 <= lba_mid <= 0xFF and 0 <= lba_high <= 0xFF and 0 <= device <= 0xFF
    post: 0 <= __return__ < 2**28
    post: __return__ & 0xFF == lba_low
    """
    return ((device & DEVICE_LOW_NIBBLE) << 24) | (lba_high << 16) | (lba_mid << 8) | lba_low


def lba_48(lba_low: int, lba_mid: int, lba_high: int, prev_low: int, prev_mid: int, prev_high: int) -> int:
    """The 48-bit LBA: current contents are bits 23:0, previous contents bits 47:24 (V1 §7, "HOB").

    pre: all(0 <= b <= 0xFF for b in (lba_low, lba_mid, lba_high, prev_low, prev_mid, prev_high))
    post: 0 <= __return__ < 2**48
    post: __return__ >> 24 == (prev_high << 16) | (prev_mid << 8) | prev_low
    """
    return (prev_high << 40) | (prev_mid << 32) | (prev_low << 24) | (lba_high << 16) | (lba_mid << 8) | lba_low


def chs_to_lba(cylinder: int, head: int, sector: int, heads: int, sectors_per_track: int, cylinders: int) -> int | None:
    """The LBA of a CHS address under the current translation, or None when no such sector exists (V1 §6, INITIALIZE DEVICE PARAMETERS).

    pre: 0 <= cylinder <= 0xFFFF and 0 <= head <= 0x0F and 0 <= sector <= 0xFF
    pre: 0 <= heads <= 16 and 0 <= sectors_per_track <= 0xFF and 0 <= cylinders <= 0xFFFF
    post: __return__ is None or 0 <= __return__ < cylinders * heads * sectors_per_track
    """
    # CHS sector numbers start at 1; the head and cylinder must lie inside the translation.
    if not (1 <= sector <= sectors_per_track and head < heads and cylinder < cylinders):
        return None
    return (cylinder * heads + head) * sectors_per_track + sector - 1


def cylinders_for(capacity: int, heads: int, sectors_per_track: int) -> int:
    """Cylinders of a CHS translation of `capacity` sectors, saturated as IDENTIFY words 1 and 54 require.

    pre: capacity >= 0 and 1 <= heads <= 16 and 1 <= sectors_per_track <= 0xFF
    post: 0 <= __return__ <= 16383
    post: __return__ * heads * sectors_per_track <= capacity
    """
    return min(capacity // (heads * sectors_per_track), MAX_CYLINDERS)


def is_addressable(lba: int, count: int, limit: int) -> bool:
    """Whether sectors lba .. lba+count-1 all lie below `limit`; otherwise the command fails with IDNF.

    pre: lba >= 0 and count >= 1 and limit >= 0
    post: __return__ == (lba + count <= limit)
    """
    return lba + count <= limit
