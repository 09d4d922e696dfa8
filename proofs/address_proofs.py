"""Address arithmetic over every 48-bit value: no wrap, no reach into the reserved region, exact splitting.

Where a spec function is plain arithmetic (`lba_48`, `lba_28`,
`is_addressable`), it is called with z3 terms, so the proof is about the
spec's own expression. Where it branches in Python (`sector_count_48`,
`sector_count_28`, `sectors_per_frame`, `AoeInitiator.split`,
`split_by_block`), the z3 term below restates it and
`test_encoding_matches_spec.py` checks the two agree: exhaustively over the
register values, and with Hypothesis for the splitting loops.

Registers are 8-bit; sums are computed in 64-bit words, as the C core does
(`uint64_t`), and compared with the exact integer result.
"""

import time

import z3

from proofs.harness import Outcome, check
from spec.ata.addressing import is_addressable, lba_28, lba_48
from spec.ata.constants import IDENTIFY_LBA28_MAX, LBA28_MAX_SECTORS, LBA48_MAX_SECTORS

WORD = 64  # bits of the C core's sector arithmetic


def _byte(name: str) -> z3.BitVecRef:
    return z3.ZeroExt(WORD - 8, z3.BitVec(name, 8))


def registers_48() -> dict[str, z3.BitVecRef]:
    names = ("lba_low", "lba_mid", "lba_high", "prev_low", "prev_mid", "prev_high", "count", "prev_count")
    return {n: _byte(n) for n in names}


def sector_count_48_term(count: z3.BitVecRef, previous_count: z3.BitVecRef) -> z3.BitVecRef:
    """`sector_count_48`: 0 means 65536."""
    combined = (previous_count << 8) | count
    return z3.If(combined == 0, z3.BitVecVal(LBA48_MAX_SECTORS, WORD), combined)


def sector_count_28_term(count: z3.BitVecRef) -> z3.BitVecRef:
    """`sector_count_28`: 0 means 256."""
    return z3.If(count == 0, z3.BitVecVal(LBA28_MAX_SECTORS, WORD), count)


def command_48(r: dict) -> tuple[z3.BitVecRef, z3.BitVecRef]:
    """A 48-bit command's first sector (the spec's `lba_48` on z3 words) and its sector count."""
    lba = lba_48(r["lba_low"], r["lba_mid"], r["lba_high"], r["prev_low"], r["prev_mid"], r["prev_high"])
    return lba, sector_count_48_term(r["count"], r["prev_count"])


def prove_lba_plus_count_never_wraps(width: int = WORD) -> Outcome:
    """For every 48-bit LBA and every count (0 meaning 65536), lba + count in `width` bits is the exact sum.

    The exact sum is below 2**48 + 2**16, so a 64-bit word holds it; the controls compute it in
    fewer bits, as an implementation with a narrower type would, and z3 must find the wrap.
    """
    r = registers_48()
    lba, count = command_48(r)
    if width == WORD:
        claim = z3.And(z3.BVAddNoOverflow(lba, count, False), z3.ULE(lba + count, 2**48 + 2**16))
    else:
        narrow = lambda x: z3.Extract(width - 1, 0, x)  # noqa: E731
        claim = z3.ZeroExt(WORD - width, narrow(lba) + narrow(count)) == lba + count
    name = "lba_plus_count_never_wraps" + ("" if width == WORD else f" [control: {width}-bit sum]")
    outcome = check(name, [], claim)
    if outcome.refuted:
        m = outcome.model
        l, c = m.eval(lba).as_long(), m.eval(count).as_long()
        outcome.trace = f"lba_48 = {l:#x}, count = {c}: the {width}-bit sum is {(l + c) % (1 << width):#x}, not {l + c:#x}"
    return outcome


def prove_lba28_plus_count_never_wraps() -> Outcome:
    """The same for 28-bit commands: LBA from the Device nibble and three registers, count 0 meaning 256."""
    device, low, mid, high, count = (_byte(n) for n in ("device", "lba_low", "lba_mid", "lba_high", "count"))
    lba = lba_28(low, mid, high, device)
    total = sector_count_28_term(count)
    claim = z3.And(z3.BVAddNoOverflow(lba, total, False), z3.ULT(lba, 1 << 28), z3.ULE(lba + total, (1 << 28) + 256))
    return check("lba28_plus_count_never_wraps", [], claim)


def _reaches_reserved(lba, count, capacity, accepted) -> z3.BoolRef:
    """Some sector of an accepted command lies at or beyond the capacity: in the map slots behind it."""
    i = z3.Int("i")
    return z3.And(accepted, z3.Exists([i], z3.And(0 <= i, i < count, lba + i >= capacity)))


def prove_reserved_region_hidden(first_sector_only: bool = False) -> Outcome:
    """No accepted 48- or 28-bit command names a sector at or beyond the guest's capacity (`media_range`).

    The storage manager's `sector_count()` is the geometry's `data_sectors`, and the reserved region
    starts there (`Geometry.slot_lba(0)`), so capacity is the first reserved sector; any capacity is covered.
    """
    r = registers_48()
    lba_bv, count_bv = command_48(r)
    lba, count = z3.BV2Int(lba_bv), z3.BV2Int(count_bv)
    capacity = z3.Int("capacity")  # data_sectors of any geometry
    accepted = lba < capacity if first_sector_only else is_addressable(lba, count, capacity)
    device, low, mid, high, count28 = (_byte(n + "_28") for n in ("device", "lba_low", "lba_mid", "lba_high", "count"))
    lba28, total28 = z3.BV2Int(lba_28(low, mid, high, device)), z3.BV2Int(sector_count_28_term(count28))
    limit28 = z3.If(capacity < IDENTIFY_LBA28_MAX, capacity, IDENTIFY_LBA28_MAX)  # `min(capacity, IDENTIFY_LBA28_MAX)`
    accepted28 = lba28 < limit28 if first_sector_only else is_addressable(lba28, total28, limit28)
    bad = z3.Or(_reaches_reserved(lba, count, capacity, accepted), _reaches_reserved(lba28, total28, capacity, accepted28))
    name = "reserved_region_hidden" + (" [control: only the first sector checked]" if first_sector_only else "")
    outcome = check(name, [capacity >= 1, capacity < 2**48], z3.Not(bad))
    if outcome.refuted:
        m = outcome.model
        for first, n, label in ((lba, count, "48-bit"), (lba28, total28, "28-bit")):
            f, c, cap = (m.eval(x, model_completion=True).as_long() for x in (first, n, capacity))
            if f < cap < f + c:
                outcome.trace = f"{label} command at lba {f} for {c} sectors on a disk of {cap}: sectors {cap}..{f + c - 1} are map slots"
    return outcome


# Splitting a request into pieces.


def prove_frame_split_exact(last_fragment_short: bool = True) -> Outcome:
    """`AoeInitiator.split`: fragment k is (lba + k*m, min(m, count - k*m)) for k < ceil(count/m); every sector in exactly one.

    `last_fragment_short=False` is the control: every fragment m sectors long, the last one overrunning.
    """
    count, m, k, k2, x = z3.Ints("count max_sectors k k2 x")
    fragments = (count + m - 1) / m  # ceil, for positive integers

    def length(j):
        return z3.If(last_fragment_short, z3.If(count - j * m < m, count - j * m, m), m)

    def holds(j, sector):
        return z3.And(0 <= j, j < fragments, j * m <= sector, sector < j * m + length(j))

    claim = z3.And(
        z3.ForAll([k], z3.Implies(z3.And(0 <= k, k < fragments), z3.And(1 <= length(k), length(k) <= m))),
        z3.Implies(z3.And(0 <= x, x < count), holds(x / m, x)),  # covered, by fragment x div m
        z3.Implies(z3.And(holds(k, x), holds(k2, x)), k == k2),  # ... and by no other
        z3.ForAll([k], z3.Implies(holds(k, x), z3.And(0 <= x, x < count))),  # nothing outside the request
    )
    name = "frame_split_exact" + ("" if last_fragment_short else " [control: last fragment not shortened]")
    outcome = check(name, [count >= 1, m >= 1, m <= 255], claim)
    if outcome.refuted:
        mm = outcome.model
        c, s = mm.eval(count).as_long(), mm.eval(m).as_long()
        outcome.trace = f"count {c} in frames of {s}: the last frame covers sectors past the request's end"
    return outcome


def prove_block_split_exact(cross_boundary: bool = False) -> Outcome:
    """`split_by_block`: each piece lies in one block and the pieces cover [lba, lba+count) exactly once.

    Piece j is in block lba div spb + j, from max(lba, block*spb) to min(lba+count, (block+1)*spb),
    for any block size (the spec's powers of two included) and any LBA and count.
    `cross_boundary=True` is the control: pieces of spb sectors from lba, ignoring block boundaries.
    """
    lba, count, spb, j, j2, x = z3.Ints("lba count sectors_per_block j j2 x")
    first_block = lba / spb
    pieces = z3.If(cross_boundary, (count + spb - 1) / spb, (lba + count - 1) / spb - first_block + 1)

    def bounds(p):
        if cross_boundary:
            start = lba + p * spb
            return start, z3.If(lba + count < start + spb, lba + count, start + spb)
        blk = first_block + p
        start = z3.If(lba > blk * spb, lba, blk * spb)
        return start, z3.If(lba + count < (blk + 1) * spb, lba + count, (blk + 1) * spb)

    def holds(p, sector):
        start, stop = bounds(p)
        return z3.And(0 <= p, p < pieces, start <= sector, sector < stop)

    start, stop = bounds(j)
    claim = z3.And(
        z3.Implies(z3.And(0 <= j, j < pieces), z3.And(start < stop, start / spb == (stop - 1) / spb)),  # one block
        z3.Implies(z3.And(lba <= x, x < lba + count), holds(x / spb - first_block, x)),  # covered
        z3.Implies(z3.And(holds(j, x), holds(j2, x)), j == j2),  # once
        z3.Implies(holds(j, x), z3.And(lba <= x, x < lba + count)),  # nothing outside
    )
    name = "block_split_exact" + (" [control: pieces ignore block boundaries]" if cross_boundary else "")
    outcome = check(name, [lba >= 0, count >= 1, spb >= 1], claim)
    if outcome.refuted:
        m = outcome.model
        l, c, s = (m.eval(v).as_long() for v in (lba, count, spb))
        outcome.trace = f"lba {l}, count {c}, {s} sectors per block: a piece crosses a block boundary"
    return outcome


def prove_frame_fits_mtu() -> Outcome:
    """`sectors_per_frame(mtu)` sectors and the 36 header bytes fit in the MTU, and one more sector would not."""
    from spec.aoe.constants import MTU_OVERHEAD_BYTES, SECTOR_BYTES

    mtu = z3.Int("mtu")
    spf = z3.If(mtu - MTU_OVERHEAD_BYTES < 0, 0, (mtu - MTU_OVERHEAD_BYTES) / SECTOR_BYTES)
    claim = z3.And(
        spf >= 0,
        z3.Implies(spf >= 1, spf * SECTOR_BYTES + MTU_OVERHEAD_BYTES <= mtu),
        (spf + 1) * SECTOR_BYTES + MTU_OVERHEAD_BYTES > mtu,
    )
    return check("sectors_per_frame_fits_mtu", [mtu >= 0, mtu <= 65535], claim)


def timed(function, *args) -> Outcome:
    started = time.perf_counter()
    outcome = function(*args)
    outcome.seconds = time.perf_counter() - started
    return outcome
