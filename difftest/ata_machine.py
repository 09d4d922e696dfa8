"""The Hypothesis state machine that drives the spec's and the C core's ATA channels together.

Every rule turns into trace events (difftest/trace) applied to an `AtaWorld`, which compares
both sides and checks every invariant after each event. The rules generate register-level guest
traffic of every kind: commands of every protocol with LBA28, LBA48 and CHS addresses (ranges
inside, across and beyond the capacity), PIO data in and out at every width, bus-master DMA with
exact, longer, shorter, faulting and unreadable PRD tables, software resets, nIEN and HOB,
device 1 selection, store failures, and nonsense (any port, any width, any value, at any time).
`drive` does what a driver would do next, so commands also run to completion.

When a run fails, `LAST_FAILURE` holds the events of the failing example; Hypothesis replays the
shrunk example last, so after the test fails it is the minimal one and becomes a corpus trace.
"""

import time
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from difftest.ata_world import AtaWorld
from difftest.trace import events as ev
from spec.ata.backing_store import SECTOR_BYTES
from spec.ata.commands import COMMANDS, Addressing, Protocol
from spec.ata.constants import (
    ABRT,
    FEATURE_DISABLE_WRITE_CACHE,
    FEATURE_ENABLE_WRITE_CACHE,
    FEATURE_SET_TRANSFER_MODE,
    IDNF,
    LBA28_MAX_SECTORS,
    LBA48_MAX_SECTORS,
    PRIMARY_COMMAND_BASE,
    PRIMARY_CONTROL_PORT,
    QEMU_BUS_MASTER_BASE,
    UNC,
    BusMasterRegister,
    CommandBlock,
)
from spec.ata.state import Phase

CMD, CTRL, BM = PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, QEMU_BUS_MASTER_BASE
PORTS = [CMD + i for i in range(8)] + [CTRL] + [BM + i for i in range(8)]
MEMORY = 0x30000  # guest memory: three 64 KiB pages; addresses beyond it are master aborts
TABLES = [0x1000, 0x1100, 0xFFF8, 0x2FFF0]  # PRD tables: ordinary, another, at a page end, at memory's end
BUFFERS = [0x4000, 0x8000, 0x10000, 0x1FE00, 0x2F000]
ANY_BYTE = st.integers(0, 0xFF)
TRANSFER_MODES = st.sampled_from([0x00, 0x01, 0x02, 0x08, 0x0C, 0x0D, 0x20, 0x22, 0x23, 0x40, 0x45, 0x46, 0x80])
NON_MEDIA_PARAMETERS = {  # (Features, Sector Count) for the commands that take parameters there
    0xC6: (ANY_BYTE, st.sampled_from([0, 1, 2, 3, 4, 8, 16, 32, 255])),  # SET MULTIPLE MODE
    0xEF: (st.sampled_from([FEATURE_SET_TRANSFER_MODE, FEATURE_ENABLE_WRITE_CACHE, FEATURE_DISABLE_WRITE_CACHE, 0x55, 0x66]), TRANSFER_MODES),
    0x91: (ANY_BYTE, st.sampled_from([0, 1, 17, 63, 255])),  # INITIALIZE DEVICE PARAMETERS: sectors per track
}
PRD_SHAPES = ["exact", "odd", "longer", "shorter", "crossing", "unreadable"]
UNKNOWN_CODES = [0x00, 0x08, 0xA0, 0xA1, 0xB0, 0xE6, 0xF8, 0xFF]

HUGE_DISKS = [(1 << 28) + 40, (1 << 33) + 7]  # beyond LBA28's reach, and beyond 32 bits: sparse disks
CAPACITIES = [1, 17, 64, 300, 2100, *HUGE_DISKS]  # 2100: room for two cylinders of the default CHS translation
DMA_READS = {c.code for c in COMMANDS if c.protocol is Protocol.DMA and c.name.startswith("READ")}


@dataclass
class Failure:
    events: list
    message: str


LAST_FAILURE: Failure | None = None
STATISTICS = {"examples": 0, "events": 0, "seconds": 0.0}


def prd_entry(address: int, byte_count: int, end_of_table: bool) -> bytes:
    """One PRD entry (PIIX): base address, byte count (0 means 64 KiB), EOT in bit 15 of the last word."""
    return address.to_bytes(4, "little") + (byte_count & 0xFFFF).to_bytes(2, "little") + (0x8000 if end_of_table else 0).to_bytes(2, "little")


class AtaDifferentialMachine(RuleBasedStateMachine):
    """Spec and C, one generated guest at a time."""

    @initialize(capacity=st.sampled_from(CAPACITIES), latency=st.integers(0, 2))
    def power_on(self, capacity, latency):
        STATISTICS["examples"] += 1
        self.started = time.perf_counter()
        self.capacity = capacity
        self.events = [ev.Config("capacity", capacity), ev.Config("latency", latency), ev.Config("memory", MEMORY)]
        self.world = AtaWorld(capacity=capacity, latency=latency, memory=MEMORY)

    def teardown(self):
        if hasattr(self, "started"):
            STATISTICS["seconds"] += time.perf_counter() - self.started

    def apply(self, event: ev.Event) -> None:
        global LAST_FAILURE
        self.events.append(event)
        STATISTICS["events"] += 1
        try:
            self.world.apply(event)
        except Exception as error:
            LAST_FAILURE = Failure(list(self.events), f"{type(error).__name__}: {error}")
            raise

    def out(self, port: int, value: int, width: int = 1) -> None:
        self.apply(ev.PortWrite(width, port, value))

    @property
    def spec_state(self):
        return self.world.spec.channel.state

    # --- Commands ---------------------------------------------------------------------------------

    @precondition(lambda self: self.spec_state.phase is Phase.IDLE)
    @rule(
        command=st.sampled_from(COMMANDS),
        lba=st.one_of(st.integers(0, 8), st.integers(0, 320), st.sampled_from([(1 << 28) - 1, 1 << 30])),
        count=st.one_of(st.integers(1, 8), st.sampled_from([0, 16, 255, 256, 300])),
        chs=st.sampled_from([False, False, False, True]),
        parameters=st.data(),
        wait=st.integers(0, 2),
        edge=st.sampled_from([None, None, -1, 0, 1]),
    )
    def issue_command(self, command, lba, count, chs, parameters, wait, edge=None):
        """Set up the task file as a driver would for this command, then write the Command register.
        `edge` puts the range's end at the capacity (0), one sector before it (-1) or after it (1).
        (Commands written while the device is busy come from `write_anything`.)"""
        if command.addressing is Addressing.LBA48 and count == 0 and self.capacity in HUGE_DISKS:
            count = 300  # a count of 0 is 65536 sectors: 32 MiB per transfer would only slow the run down
        if edge is not None:
            sectors = count or (LBA48_MAX_SECTORS if command.addressing is Addressing.LBA48 else LBA28_MAX_SECTORS)
            lba = max(self.capacity - sectors + edge, 0)
        if command.addressing is Addressing.LBA48:
            for value in ((count >> 8) & 0xFF, count & 0xFF):
                self.out(CMD + CommandBlock.SECTOR_COUNT, value)
            for offset, shift in ((CommandBlock.LBA_LOW, 0), (CommandBlock.LBA_MID, 8), (CommandBlock.LBA_HIGH, 16)):
                self.out(CMD + offset, (lba >> (shift + 24)) & 0xFF)
                self.out(CMD + offset, (lba >> shift) & 0xFF)
            self.out(CMD + CommandBlock.DEVICE, 0x40)
        elif command.addressing is Addressing.LBA28:
            self.out(CMD + CommandBlock.SECTOR_COUNT, count & 0xFF)
            if chs:
                # CHS: cylinder in LBA mid/high, head in Device bits 3:0, sector (from 1) in LBA low.
                self.out(CMD + CommandBlock.LBA_LOW, (lba % 63) + 1)
                self.out(CMD + CommandBlock.LBA_MID, (lba // 1008) & 0xFF)
                self.out(CMD + CommandBlock.LBA_HIGH, 0)
                self.out(CMD + CommandBlock.DEVICE, 0xA0 | ((lba // 63) % 16))
            else:
                for offset, shift in ((CommandBlock.LBA_LOW, 0), (CommandBlock.LBA_MID, 8), (CommandBlock.LBA_HIGH, 16)):
                    self.out(CMD + offset, (lba >> shift) & 0xFF)
                self.out(CMD + CommandBlock.DEVICE, 0xE0 | ((lba >> 24) & 0x0F))
        else:
            # Non-media commands read Features, Sector Count or Device as parameters: draw them per command.
            features_choices, count_choices = NON_MEDIA_PARAMETERS.get(command.code, (ANY_BYTE, ANY_BYTE))
            features = parameters.draw(features_choices, label="features")
            small = parameters.draw(count_choices, label="sector count")
            self.out(CMD + CommandBlock.ERROR_FEATURES, features)
            self.out(CMD + CommandBlock.SECTOR_COUNT, small)
            self.out(CMD + CommandBlock.DEVICE, 0xA0 | (small & 0x0F))
        self.out(CMD + CommandBlock.STATUS_COMMAND, command.code)
        if wait:
            self.apply(ev.Tick(wait))

    @precondition(lambda self: self.spec_state.phase is Phase.IDLE)
    @rule(command=st.sampled_from(COMMANDS), lba=st.integers(0, 40), count=st.integers(1, 4), chs=st.booleans(),
          edge=st.sampled_from([None, -1, 0, 1]), shape=st.sampled_from(PRD_SHAPES), parameters=st.data())
    def run_command(self, command, lba, count, chs, edge, shape, parameters):
        """A well-behaved driver: one command from the Command write to completion, DMA with a PRD table of `shape`."""
        self.issue_command(command, lba, count, chs, parameters, 1, edge)
        for _ in range(12):
            state = self.spec_state
            if state.phase is Phase.IDLE:
                break
            if state.phase is Phase.DMA_TRANSFER and not state.bus_master.active:
                self.prd_table_for_transfer(shape, BUFFERS[0])
            self.drive_once()

    @rule(code=st.sampled_from(UNKNOWN_CODES))
    def issue_unknown_command(self, code):
        self.out(CMD + CommandBlock.STATUS_COMMAND, code)

    # --- Time and a driver's next step -----------------------------------------------------------

    @rule(count=st.integers(1, 3))
    def tick(self, count):
        self.apply(ev.Tick(count))

    @rule(steps=st.integers(1, 6), width=st.sampled_from([2, 2, 4]))
    def drive(self, steps, width):
        """What a driver does next, `steps` times: wait while busy, move a PIO block (in words or dwords), or start the bus master."""
        for _ in range(steps):
            self.drive_once(width)

    def drive_once(self, width: int = 2):
        state = self.spec_state
        transfer = state.transfer
        if state.phase is Phase.PIO_IN_TRANSFER:
            for _ in range((len(transfer.block) - transfer.position) // width):
                self.apply(ev.PortRead(width, CMD + CommandBlock.DATA))
        elif state.phase is Phase.PIO_OUT_TRANSFER:
            for i in range((len(transfer.block) - transfer.position) // 2):
                self.apply(ev.PortWrite(2, CMD + CommandBlock.DATA, (0x5A00 + i) & 0xFFFF))
        elif state.phase is Phase.RESET_ASSERTED:
            self.out(CTRL, 0x00)  # a driver releases SRST after holding it
        elif state.phase is Phase.DMA_TRANSFER and not state.bus_master.active:
            direction = 0x08 if transfer.command.code in DMA_READS else 0x00
            self.out(BM + BusMasterRegister.COMMAND, direction)
            self.out(BM + BusMasterRegister.COMMAND, direction | 0x01)
            self.apply(ev.Tick(1))
        else:
            self.apply(ev.Tick(1))
        self.apply(ev.PortRead(1, CMD + CommandBlock.STATUS_COMMAND))

    # --- PIO data ----------------------------------------------------------------------------------

    @rule(width=st.sampled_from([1, 2, 4]), count=st.integers(1, 4))
    def read_data(self, width, count):
        for _ in range(count):
            self.apply(ev.PortRead(width, CMD + CommandBlock.DATA))

    @rule(width=st.sampled_from([1, 2, 4]), value=st.integers(0, 0xFFFFFFFF))
    def write_data(self, width, value):
        self.apply(ev.PortWrite(width, CMD + CommandBlock.DATA, value & ((1 << (8 * width)) - 1)))

    # --- Registers and nonsense ------------------------------------------------------------------

    @rule(port=st.sampled_from(PORTS), width=st.sampled_from([1, 2, 4]))
    def read_register(self, port, width):
        self.apply(ev.PortRead(width, port))

    @rule(port=st.sampled_from(PORTS), width=st.sampled_from([1, 2, 4]), value=st.integers(0, 0xFFFFFFFF))
    def write_anything(self, port, width, value):
        self.apply(ev.PortWrite(width, port, value & ((1 << (8 * width)) - 1)))

    @rule(port=st.sampled_from([0x1EF, 0x3F5, 0x3F7, BM + 8, 0x170]), width=st.sampled_from([1, 2, 4]))
    def access_outside(self, port, width):
        """An access the channel does not decode: both sides must refuse it alike."""
        self.apply(ev.PortRead(width, port))

    @rule(value=st.sampled_from([0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x80, 0x82]))
    def device_control(self, value):
        """nIEN, SRST (set and release are separate writes) and HOB."""
        self.out(CTRL, value)

    @rule(nien=st.booleans())
    def read_task_file(self, nien):
        """Read the task file back as libata does after a 48-bit command: HOB set for bits 47:24, then clear."""
        control = 0x02 if nien else 0x00
        for hob in (0x80, 0x00):
            self.out(CTRL, hob | control)
            for offset in range(CommandBlock.ERROR_FEATURES, CommandBlock.STATUS_COMMAND + 1):
                self.apply(ev.PortRead(1, CMD + offset))

    @rule(device=st.sampled_from([0xA0, 0xB0, 0xE0, 0xF0]))
    def select_device(self, device):
        self.out(CMD + CommandBlock.DEVICE, device)

    @rule(error=st.sampled_from([UNC, IDNF, ABRT, UNC | ABRT]))
    def store_fails_next(self, error):
        self.apply(ev.StoreFail(error))

    # --- Bus master ---------------------------------------------------------------------------------

    @rule(value=st.sampled_from([0x00, 0x01, 0x08, 0x09, 0xFF]))
    def bus_master_command(self, value):
        self.out(BM + BusMasterRegister.COMMAND, value)

    @rule(value=st.sampled_from([0x06, 0x04, 0x02, 0x60, 0x20]))
    def bus_master_status(self, value):
        self.out(BM + BusMasterRegister.STATUS, value)

    @rule(
        table=st.sampled_from(TABLES),
        regions=st.lists(
            st.tuples(
                st.sampled_from(BUFFERS + [0x40000, 0xFFFFF000]),
                st.sampled_from([512, 1024, 2048, 4096, 0, 254, 513]),
            ),
            min_size=1,
            max_size=3,
        ),
        eot=st.booleans(),
    )
    def prd_table(self, table, regions, eot):
        """Any PRD table: regions in or beyond memory, across 64 KiB, odd sizes, with or without EOT."""
        data = b"".join(prd_entry(a, n, eot and i == len(regions) - 1) for i, (a, n) in enumerate(regions))
        data = data[: MEMORY - table]
        self.apply(ev.MemoryWrite(table, data))
        self.out(BM + BusMasterRegister.PRD_POINTER, table, width=4)

    @precondition(lambda self: self.spec_state.transfer is not None and self.spec_state.phase in (Phase.DMA_TRANSFER, Phase.DMA_FETCHING, Phase.COMMAND_ACCEPTED))
    @rule(shape=st.sampled_from(PRD_SHAPES), buffer=st.sampled_from(BUFFERS[:3]))
    def prd_table_for_transfer(self, shape, buffer):
        """A PRD table shaped against the transfer in progress: exact, odd, longer, shorter, crossing 64 KiB, or unreadable."""
        transfer = self.spec_state.transfer
        size = max(transfer.count, 1) * SECTOR_BYTES - transfer.position
        size = min(max(size, 2), 0x8000)
        entries = {
            "exact": [(buffer, size, True)],
            "odd": [(buffer, size | 1, True)],  # byte count bit 0 is reserved: still exact
            "longer": [(buffer, size, False), (buffer + 0x2000, 512, True)],
            "shorter": [(buffer, max(size - 512, 2) if size > 512 else 2, True)],
            "crossing": [(0xFF00, 0x400, True)],
            "unreadable": [(0x40000, size, True)],
        }[shape]
        data = b"".join(prd_entry(a, n, e) for a, n, e in entries)
        self.apply(ev.MemoryWrite(0x1000, data))
        self.out(BM + BusMasterRegister.PRD_POINTER, 0x1000, width=4)
