"""Chapter 10 — the channel as the guest sees it: port reads, port writes, clock ticks.

`AtaChannel` is the public interface, shaped as events in and observable
outputs: `read(port, width)` returns the value the guest's IN instruction
gets, `write(port, width, value)` is an OUT, `tick()` lets time pass. The
outputs are those values, the INTRQ line (`intrq`), and the guest-memory
accesses the bus master makes through the `GuestMemory` it was given. The C
core exposes the same three events and is compared with `observe()`.

The channel decodes three port ranges: the command block (8 ports from
`command_base`), the control port, and the bus-master block (8 ports from
`bus_master_base`, the IDE function's BAR4). Device 0 is present, device 1 is
absent.
"""

from spec.ata.backing_store import BackingStore
from spec.ata.bus_master import (
    command_register,
    is_dma_ready,
    read_bus_master_byte,
    run_bus_master,
    status_register,
    write_bus_master_byte,
)
from spec.ata.constants import (
    BSY,
    BUS_MASTER_SPAN,
    DEVICE_DEV,
    DIAGNOSTIC_PASSED,
    DRDY,
    DRQ,
    DSC,
    HOB,
    NIEN,
    PRIMARY_COMMAND_BASE,
    PRIMARY_CONTROL_PORT,
    QEMU_BUS_MASTER_BASE,
    RESET_TICKS,
    SRST,
    CommandBlock,
)
from spec.ata.errors import CannotHappen
from spec.ata.handlers import execute_command, write_signature
from spec.ata.prd import GuestMemory
from spec.ata.protocols import current_transfer, pio_in_block_read, pio_out_block_written, set_busy, store_answered
from spec.ata.state import ChannelState, Observation, Phase

ACCESS_WIDTHS = (1, 2, 4)  # IN/OUT move a byte, a word or a dword
OPEN_BUS = 0xFF  # a byte no register drives reads as all ones
NO_DATA_WORD = 0xFFFF  # the Data register read without DRQ (the standard leaves it undefined)
ABSENT_DEVICE_STATUS = 0x00  # Status of an absent device 1, as device 0 answers for it (V1 §7, Status register)
EXECUTE_DEVICE_DIAGNOSTIC = 0x90  # the one command both devices execute whichever is selected (V1 §6)


class AtaChannel:
    """A PIIX IDE channel with one ATA disk (device 0) whose sectors live in `store`."""

    def __init__(
        self,
        store: BackingStore,
        memory: GuestMemory,
        command_base: int = PRIMARY_COMMAND_BASE,
        control_port: int = PRIMARY_CONTROL_PORT,
        bus_master_base: int = QEMU_BUS_MASTER_BASE,
    ):
        self.state = ChannelState()
        self.store = store
        self.memory = memory
        self.command_base = command_base
        self.control_port = control_port
        self.bus_master_base = bus_master_base

    # --- Events in ---------------------------------------------------------------------------

    def read(self, port: int, width: int) -> int:
        """An IN of `width` bytes from `port`: the value the guest receives."""
        self._check_access(port, width)
        if port == self.command_base + CommandBlock.DATA:
            value = self._read_data(width)
        else:
            # A wide access to byte registers reads consecutive ports, lowest address in the lowest byte.
            value = sum(self._read_byte(port + i) << (8 * i) for i in range(width))
        self._update_intrq()
        return value

    def write(self, port: int, width: int, value: int) -> None:
        """An OUT of `width` bytes to `port`."""
        self._check_access(port, width)
        if not 0 <= value < 1 << (8 * width):
            raise ValueError(f"value {value:#x} does not fit in {width} bytes")
        if port == self.command_base + CommandBlock.DATA:
            self._write_data(width, value)
        else:
            for i in range(width):
                self._write_byte(port + i, (value >> (8 * i)) & 0xFF)
        self._update_intrq()

    def tick(self) -> None:
        """One step of time: the store may answer, an accepted command runs, the bus master moves data."""
        state = self.state
        if state.store_busy:
            result = self.store.poll()
            if result is not None:
                store_answered(state, self.store, result)
        if state.phase is Phase.COMMAND_ACCEPTED:
            execute_command(state, self.store, state.command_code)
        elif state.phase is Phase.RESET_EXECUTING and not state.store_busy:
            # The reset waits for an abandoned store request to finish, then completes (V2 §11, software reset).
            state.reset_ticks -= 1
            if state.reset_ticks <= 0:
                self._finish_reset()
        if is_dma_ready(state):
            run_bus_master(state, self.store, self.memory)
        self._update_intrq()

    # --- Outputs -----------------------------------------------------------------------------

    @property
    def intrq(self) -> bool:
        """The level of the channel's interrupt line (IRQ 14 on the primary channel)."""
        return self.state.intrq

    def observe(self) -> Observation:
        """Everything a guest can observe, as one comparable value."""
        s, r, bm = self.state, self.state.registers, self.state.bus_master
        return Observation(
            phase=s.phase.value,
            status=s.status,
            error=r.error,
            sector_count=r.sector_count,
            lba_low=r.lba_low,
            lba_mid=r.lba_mid,
            lba_high=r.lba_high,
            device=r.device,
            previous=(r.prev_sector_count, r.prev_lba_low, r.prev_lba_mid, r.prev_lba_high),
            intrq=s.intrq,
            bm_command=command_register(bm),
            bm_status=status_register(bm),
            bm_prd_pointer=bm.prd_pointer,
        )

    # --- Decoding ----------------------------------------------------------------------------

    def decodes(self, port: int) -> bool:
        """Whether `port` is one of the channel's registers."""
        return (
            self.command_base <= port < self.command_base + 8
            or port == self.control_port
            or self.bus_master_base <= port < self.bus_master_base + BUS_MASTER_SPAN
        )

    def _check_access(self, port: int, width: int) -> None:
        # An access that starts outside the channel is a harness error, not guest behaviour.
        if width not in ACCESS_WIDTHS:
            raise ValueError(f"access width {width} is not 1, 2 or 4")
        if not self.decodes(port):
            raise ValueError(f"port {port:#x} is not a register of this channel")

    def _device1_selected(self) -> bool:
        return bool(self.state.registers.device & DEVICE_DEV)

    # --- Byte registers ----------------------------------------------------------------------

    def _read_byte(self, port: int) -> int:
        state, r = self.state, self.state.registers
        if port == self.control_port:
            # Alternate Status: the Status register without clearing the interrupt (V1 §7, Alternate Status).
            return ABSENT_DEVICE_STATUS if self._device1_selected() else state.status
        if self.bus_master_base <= port < self.bus_master_base + BUS_MASTER_SPAN:
            return read_bus_master_byte(state.bus_master, port - self.bus_master_base)
        if not self.command_base <= port < self.command_base + 8:
            return OPEN_BUS
        offset = port - self.command_base
        if offset == CommandBlock.ERROR_FEATURES:
            return r.error
        if offset == CommandBlock.DEVICE:
            return r.device
        if offset == CommandBlock.STATUS_COMMAND:
            if self._device1_selected():
                return ABSENT_DEVICE_STATUS
            # Reading Status acknowledges the interrupt (V1 §7, Status register).
            state.interrupt_pending = False
            return state.status
        # With HOB set the LBA48 registers read their previous content (V1 §7, Device Control register).
        current, previous = {
            CommandBlock.SECTOR_COUNT: (r.sector_count, r.prev_sector_count),
            CommandBlock.LBA_LOW: (r.lba_low, r.prev_lba_low),
            CommandBlock.LBA_MID: (r.lba_mid, r.prev_lba_mid),
            CommandBlock.LBA_HIGH: (r.lba_high, r.prev_lba_high),
        }[CommandBlock(offset)]
        return previous if state.hob else current

    def _write_byte(self, port: int, value: int) -> None:
        state = self.state
        if port == self.control_port:
            self._write_device_control(value)
            return
        if self.bus_master_base <= port < self.bus_master_base + BUS_MASTER_SPAN:
            write_bus_master_byte(state.bus_master, port - self.bus_master_base, value)
            return
        if not self.command_base <= port < self.command_base + 8:
            return
        # While BSY or DRQ is set the device owns the command block: host writes are ignored (V1 §7).
        if state.status & (BSY | DRQ):
            return
        # Any write to the command block clears HOB (V1 §7, Device Control register).
        state.hob = False
        offset = port - self.command_base
        if offset == CommandBlock.DEVICE:
            state.registers.device = value
        elif offset == CommandBlock.STATUS_COMMAND:
            self._write_command(value)
        else:
            self._write_two_deep(CommandBlock(offset), value)

    def _write_two_deep(self, register: CommandBlock, value: int) -> None:
        """Features, Sector Count and LBA registers: the current content becomes the previous content (V1 §7, "HOB")."""
        r = self.state.registers
        match register:
            case CommandBlock.ERROR_FEATURES:
                r.prev_features, r.features = r.features, value
            case CommandBlock.SECTOR_COUNT:
                r.prev_sector_count, r.sector_count = r.sector_count, value
            case CommandBlock.LBA_LOW:
                r.prev_lba_low, r.lba_low = r.lba_low, value
            case CommandBlock.LBA_MID:
                r.prev_lba_mid, r.lba_mid = r.lba_mid, value
            case CommandBlock.LBA_HIGH:
                r.prev_lba_high, r.lba_high = r.lba_high, value
            case _:
                raise CannotHappen(f"{register.name} is not a two-deep register")

    def _write_command(self, code: int) -> None:
        """The Command register: BSY at once; the handler runs on the next tick."""
        state = self.state
        # An absent device 1 executes nothing; EXECUTE DEVICE DIAGNOSTIC runs on device 0 whichever is selected (V1 §6).
        if self._device1_selected() and code != EXECUTE_DEVICE_DIAGNOSTIC:
            return
        # Writing the Command register clears a pending interrupt (V1 §7, Command register).
        state.interrupt_pending = False
        state.command_code = code
        set_busy(state, Phase.COMMAND_ACCEPTED)

    def _write_device_control(self, value: int) -> None:
        """Device Control: nIEN, SRST and HOB; always writable, even while BSY (V1 §7, Device Control register)."""
        state = self.state
        srst = bool(value & SRST)
        state.nien = bool(value & NIEN)
        state.hob = bool(value & HOB)
        if srst and not state.srst:
            # SRST set: abandon any command, go busy, forget the interrupt (V2 §11, software reset protocol).
            state.phase = Phase.RESET_ASSERTED
            state.status = BSY
            state.transfer = None
            state.interrupt_pending = False
        elif state.srst and not srst:
            state.phase = Phase.RESET_EXECUTING
            state.reset_ticks = RESET_TICKS
        state.srst = srst

    def _finish_reset(self) -> None:
        """The end of a software reset: the signature, diagnostics passed, ready, no interrupt (V2 §11)."""
        state = self.state
        write_signature(state)
        state.registers.error = DIAGNOSTIC_PASSED
        state.phase = Phase.IDLE
        state.status = DRDY | DSC

    # --- Data register -----------------------------------------------------------------------

    def _read_data(self, width: int) -> int:
        if width == 4:
            # A 32-bit access is two 16-bit bus cycles, low word first (PIIX, 32-bit data port accesses).
            low = self._read_data_word()
            return low | (self._read_data_word() << 16)
        word = self._read_data_word()
        # An 8-bit access still moves a whole word on the 16-bit bus; the guest keeps the low byte.
        return word & 0xFF if width == 1 else word

    def _read_data_word(self) -> int:
        state = self.state
        # Without DRQ in a data-in phase there is no data: all ones, nothing changes (departure: undefined in V1 §7).
        if state.phase is not Phase.PIO_IN_TRANSFER or self._device1_selected():
            return NO_DATA_WORD
        transfer = current_transfer(state)
        word = int.from_bytes(transfer.block[transfer.position : transfer.position + 2], "little")
        transfer.position += 2
        if transfer.position == len(transfer.block):
            pio_in_block_read(state, self.store)
        return word

    def _write_data(self, width: int, value: int) -> None:
        if width == 4:
            self._write_data_word(value & 0xFFFF)
            self._write_data_word(value >> 16)
        else:
            self._write_data_word(value & 0xFFFF)

    def _write_data_word(self, word: int) -> None:
        state = self.state
        # Without DRQ in a data-out phase a Data write is ignored (departure: undefined in V1 §7).
        if state.phase is not Phase.PIO_OUT_TRANSFER or self._device1_selected():
            return
        transfer = current_transfer(state)
        transfer.block[transfer.position : transfer.position + 2] = word.to_bytes(2, "little")
        transfer.position += 2
        if transfer.position == len(transfer.block):
            pio_out_block_written(state, self.store)

    # --- Interrupt line ----------------------------------------------------------------------

    def _update_intrq(self) -> None:
        """INTRQ shows a pending interrupt unless nIEN is set or device 0 is not selected (V1 §7, Device Control register)."""
        state = self.state
        line = state.interrupt_pending and not state.nien and not self._device1_selected()
        # The PIIX latches the rising edge of its channel's interrupt line in BMISTA (PIIX, BMISTA bit 2).
        if line and not state.intrq:
            state.bus_master.interrupt = True
        state.intrq = line

