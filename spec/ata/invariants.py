"""Chapter 6 — the device invariants: named predicates that hold after every event.

Each invariant is a pure predicate of the channel state (and the capacity
where it speaks of sectors). The tests check all of them after every step;
the differential tests and proofs refer to them by these names.
"""

from collections.abc import Callable

from spec.ata.backing_store import SECTOR_BYTES
from spec.ata.constants import BSY, DEVICE_DEV, DF, DRDY, DRQ, ERR, PRD_TABLE_ALIGN
from spec.ata.errors import InvariantViolation
from spec.ata.state import BUSY_PHASES, DATA_PHASES, RESET_PHASES, ChannelState, Phase

STORE_PHASES = frozenset(
    {Phase.NON_DATA_EXECUTING, Phase.PIO_IN_FETCHING, Phase.PIO_OUT_STORING, Phase.DMA_FETCHING, Phase.DMA_STORING}
)
NO_COMMAND_PHASES = frozenset({Phase.IDLE, Phase.COMMAND_ACCEPTED}) | RESET_PHASES


def bsy_excludes_drq(state: ChannelState, capacity: int) -> bool:
    """BSY and DRQ are never both set (V1 §7, Status register)."""
    return not (state.status & BSY and state.status & DRQ)


def bsy_only_while_busy(state: ChannelState, capacity: int) -> bool:
    """BSY is set exactly in the phases where the device owns the registers."""
    return bool(state.status & BSY) == (state.phase in BUSY_PHASES)


def drq_only_in_data_phase(state: ChannelState, capacity: int) -> bool:
    """DRQ is set exactly while a DRQ data block (or a DMA transfer) is in progress."""
    return bool(state.status & DRQ) == (state.phase in DATA_PHASES)


def drdy_unless_resetting(state: ChannelState, capacity: int) -> bool:
    """The device is ready for commands except during a software reset."""
    return bool(state.status & DRDY) == (state.phase not in RESET_PHASES)


def err_only_when_idle(state: ChannelState, capacity: int) -> bool:
    """ERR is set only by a command's completion, so only while idle, and then the Error register says why."""
    return not state.status & ERR or (state.phase is Phase.IDLE and state.registers.error != 0)


def df_never_set(state: ChannelState, capacity: int) -> bool:
    """This device has no fault condition: DF stays clear (departure: V1 §7 lets a device report one)."""
    return not state.status & DF


def intrq_only_when_enabled(state: ChannelState, capacity: int) -> bool:
    """INTRQ is asserted only for a pending interrupt, with nIEN clear and device 0 selected."""
    return not state.intrq or (state.interrupt_pending and not state.nien and not state.registers.device & DEVICE_DEV)


def store_busy_only_when_waiting(state: ChannelState, capacity: int) -> bool:
    """A store request is outstanding in every phase that waits for one, and otherwise only while a reset drains it."""
    if state.phase in STORE_PHASES:
        return state.store_busy
    return not state.store_busy or state.phase in RESET_PHASES


def transfer_only_during_command(state: ChannelState, capacity: int) -> bool:
    """A command's transfer record exists exactly from its handler to its completion."""
    return (state.transfer is None) == (state.phase in NO_COMMAND_PHASES)


def transfer_within_capacity(state: ChannelState, capacity: int) -> bool:
    """A media command in progress addresses only sectors that exist."""
    t = state.transfer
    return t is None or t.count == 0 or t.lba + t.count <= capacity


def position_within_block(state: ChannelState, capacity: int) -> bool:
    """The data pointer lies inside the block; in a data phase there is still something to move."""
    t = state.transfer
    if t is None:
        return True
    if len(t.block) % SECTOR_BYTES or not 0 <= t.position <= len(t.block):
        return False
    return state.phase not in DATA_PHASES or t.position < len(t.block)


def bus_master_active_only_when_started(state: ChannelState, capacity: int) -> bool:
    """The bus master is active only while START is set (PIIX, BMISTA active bit)."""
    return not state.bus_master.active or state.bus_master.start


def prd_pointer_aligned(state: ChannelState, capacity: int) -> bool:
    """The PRD table pointer is dword aligned (PIIX, BMIDTP bits 1:0 reserved)."""
    return state.bus_master.prd_pointer % PRD_TABLE_ALIGN == 0 and 0 <= state.bus_master.prd_pointer < 1 << 32


def registers_are_bytes(state: ChannelState, capacity: int) -> bool:
    """Every byte register, current and previous content, holds 0..255."""
    return all(0 <= v <= 0xFF for v in vars(state.registers).values()) and 0 <= state.status <= 0xFF


INVARIANTS: dict[str, Callable[[ChannelState, int], bool]] = {
    f.__name__: f
    for f in (
        bsy_excludes_drq,
        bsy_only_while_busy,
        drq_only_in_data_phase,
        drdy_unless_resetting,
        err_only_when_idle,
        df_never_set,
        intrq_only_when_enabled,
        store_busy_only_when_waiting,
        transfer_only_during_command,
        transfer_within_capacity,
        position_within_block,
        bus_master_active_only_when_started,
        prd_pointer_aligned,
        registers_are_bytes,
    )
}


def broken_invariants(state: ChannelState, capacity: int) -> list[str]:
    """The names of the invariants that do not hold."""
    return [name for name, holds in INVARIANTS.items() if not holds(state, capacity)]


def check_invariants(state: ChannelState, capacity: int) -> None:
    """Raise InvariantViolation naming the first invariant that does not hold."""
    broken = broken_invariants(state, capacity)
    if broken:
        raise InvariantViolation(broken[0], f"phase {state.phase.value}, status {state.status:#04x}")
