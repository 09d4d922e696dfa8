"""The whole storage stack in C against the spec, driven through the ATA ports by a Hypothesis machine.

Spec: spec.ata.AtaChannel over a storage world (tests/storage/world.py) with the spec manager and AoE
initiator. C: the C ATA channel over the C storage world (difftest/storage_worlds.py). Both get the same
register-level guest traffic (PIO reads and writes, LBA28, LBA48 and MULTIPLE, on LBAs drawn from a
bundle so they collide, span blocks in different states and reach the reserved region; FLUSH CACHE,
IDENTIFY, SET MULTIPLE MODE; a data-port read with DRQ clear and a command while busy) and the same world
events (local-disk completions in any order and failing, frames delivered, lost and duplicated, ticks,
a server crash, client power cuts with restart, policy changes, de-virtualization). After every step every
status and data block the guests saw, both channels' observable registers, the managers' states, the wire,
the media and the guests' results must be equal, and the invariant catalogue holds in both worlds.
"""

import os
from collections import Counter
from dataclasses import dataclass

from hypothesis import event as hypothesis_event
from hypothesis import settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from difftest.binding.ata import CAtaChannel
from difftest.storage_trace_world import SURVIVORS
from difftest.storage_worlds import Pair
from spec.ata.backing_store import SECTOR_BYTES, WriteSectors
from spec.ata.constants import BSY, DRQ, ERR
from spec.ata.device import AtaChannel
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.pio_guest import (
    CODE,
    READ_MULTIPLE_EXT,
    WRITE_MULTIPLE_EXT,
    COMMAND,
    DATA,
    FLUSH_CACHE,
    IDENTIFY_DEVICE,
    READ_MULTIPLE,
    READ_SECTORS,
    READ_SECTORS_EXT,
    SET_MULTIPLE_MODE,
    WRITE_MULTIPLE,
    WRITE_SECTORS,
    WRITE_SECTORS_EXT,
    PioGuest,
)
from tests.storage.world import sector_data

GEOMETRY = TESTS.geometry
READS = {READ_SECTORS, READ_SECTORS_EXT, READ_MULTIPLE, READ_MULTIPLE_EXT}
WRITES = {WRITE_SECTORS, WRITE_SECTORS_EXT, WRITE_MULTIPLE, WRITE_MULTIPLE_EXT}
MULTIPLE = {READ_MULTIPLE, WRITE_MULTIPLE, READ_MULTIPLE_EXT, WRITE_MULTIPLE_EXT}
LBA48 = {READ_SECTORS_EXT, WRITE_SECTORS_EXT, READ_MULTIPLE_EXT, WRITE_MULTIPLE_EXT}
NAMES = {code: name for name, code in CODE.items()}
REACHED = Counter()  # every coverage event of the run, for the coverage assertion
MUST_REACH = [  # what a ci run must have exercised
    *(f"{NAMES[c]}: done" for c in sorted(READS | WRITES)),
    "a data command: error", "FLUSH CACHE: done", "IDENTIFY DEVICE: done", "command while busy",
    "data port read with DRQ clear", "local completion fails", "local completion ok", "frame drop",
    "frame duplicate", "power cut during a command", "server crash", "a policy change: ok",
]


def event(label: str) -> None:
    REACHED[label] += 1
    if currently_in_test_context():
        hypothesis_event(label)


@dataclass
class Transfer:
    """The PIO command in progress, as the guest sees it."""

    code: int
    remaining: int  # sectors still to move through the data port
    data: bytes = b""  # what a write still has to send
    drq: bool = False  # the device asks for (or offers) the next data block


def idle(machine) -> bool:
    return machine.transfer is None


def busy(machine) -> bool:
    return machine.transfer is not None and not machine.transfer.drq


class FullStackComparison(RuleBasedStateMachine):
    lbas = Bundle("lbas")

    @initialize(policy=st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL]))
    def boot(self, policy):
        self.pair = Pair(preset=TESTS, policy=policy)
        self.connect()
        self.version = 0

    def connect(self) -> None:
        """Fresh channels over the worlds, as after power-on (the guest's multiple count is unknown again)."""
        self.guests = (PioGuest(self.pair.spec, AtaChannel), PioGuest(self.pair.core, CAtaChannel))
        self.checked = 0
        self.transfer: Transfer | None = None
        self.multiple = 0

    def both(self, action) -> object:
        """Apply one guest action to both sides; the outcomes must be equal."""
        outcomes = [action(guest) for guest in self.guests]
        assert outcomes[0] == outcomes[1], f"spec {outcomes[0]} but C {outcomes[1]}"
        return outcomes[0]

    @invariant()
    def same_everywhere(self):
        if not hasattr(self, "guests"):
            return
        spec, core = self.guests
        assert core.seen[self.checked :] == spec.seen[self.checked :], "the guests saw different statuses or data"
        self.checked = len(spec.seen)
        assert core.channel.observe() == spec.channel.observe(), "different observable registers"
        self.pair.compare()
        self.pair.spec.check_invariants()
        self.pair.core.check_invariants()

    # The LBAs commands use: anywhere, block starts, and the reserved region past the end

    @rule(
        target=lbas,
        lba=st.one_of(
            st.integers(0, GEOMETRY.data_sectors - 1),
            st.integers(0, GEOMETRY.block_count - 1).map(GEOMETRY.first_lba),  # whole-block writes skip the fill
            st.sampled_from([0, 1, 5, 1 << 28, 1 << 40]).map(lambda beyond: GEOMETRY.data_sectors + beyond),
        ),
    )
    def add_lba(self, lba):
        return lba

    # Guest commands

    def idle(self) -> bool:
        return idle(self)

    def busy(self) -> bool:
        return busy(self)

    def start(self, code: int, lba: int = 0, count: int = 0, data: bytes = b"") -> None:
        self.both(lambda g: g.start(code, lba, count))
        self.transfer = Transfer(code, count or (1 if code == IDENTIFY_DEVICE else 0), data)
        event(f"command {NAMES[code]}")

    @precondition(idle)
    @rule(
        code=st.sampled_from(sorted(READS | WRITES) + [FLUSH_CACHE, IDENTIFY_DEVICE]),
        lba=lbas,
        count=st.one_of(st.just(GEOMETRY.sectors_per_block), st.integers(1, 2 * GEOMETRY.sectors_per_block + 1)),
        then=st.sampled_from(["run", "run", "leave", "overwrite", "power cut"]),
        multiple=st.sampled_from([0, 2, GEOMETRY.sectors_per_block]),
    )
    def pio_command(self, code, lba, count, then, multiple):
        """A PIO data command, FLUSH CACHE or IDENTIFY; `run` drives it to its end at once, `leave` lets the world's
        events come in between, `overwrite` writes another command while this one is busy, `power cut` cuts the
        power one step into it. A MULTIPLE command may first get a multiple count (without one it is aborted:
        ATA/ATAPI-7 V1 §6, READ MULTIPLE)."""
        if code in (FLUSH_CACHE, IDENTIFY_DEVICE):
            lba = count = 0
        if code in MULTIPLE and multiple:
            self.set_multiple_mode(multiple)
        if lba >= 1 << 28 and code not in LBA48:
            lba &= (1 << 28) - 1  # LBA28 commands reach only 28 bits
        data = b""
        if code in WRITES:
            self.version += 1
            data = sector_data(lba, count, self.version)
        self.start(code, lba, count, data)
        if then == "run":
            self.finish()
        elif then == "overwrite":
            self.nonsense(READ_SECTORS if code in WRITES else WRITE_SECTORS)
        elif then == "power cut":
            if self.busy():
                self.step()
            self.power_cut_and_restart("newest" if self.version % 2 else "oldest-delivered")

    @precondition(idle)
    @rule(count=st.sampled_from([0, 1, 2, 3, 4, 8]))
    def set_multiple_mode(self, count):
        status = self.both(lambda g: g.issue(SET_MULTIPLE_MODE, count=count))
        if not status & ERR:
            self.multiple = count
        event(f"SET MULTIPLE MODE {count}: {'error' if status & ERR else 'ok'}")

    def classify(self, status: int) -> None:
        """After BSY clears: DRQ means a data block; otherwise the command is over (ERR or done)."""
        if status & DRQ and not status & ERR and self.transfer.remaining:
            self.transfer.drq = True
            return
        event(f"{NAMES[self.transfer.code]}: {'error' if status & ERR else 'done'}")
        if status & ERR and self.transfer.code in READS | WRITES:
            event("a data command: error")
        self.transfer = None

    @precondition(busy)
    @rule()
    def step(self):
        """One world step, device requests completing in order."""
        status = self.both(lambda g: g.step())
        if not status & BSY:
            self.classify(self.both(lambda g: g.channel.read(COMMAND, 1)))

    @precondition(busy)
    @rule()
    def wait(self):
        self.classify(self.both(lambda g: g.run_until_ready()))

    @precondition(lambda self: self.transfer is not None and self.transfer.drq)
    @rule()
    def move_block(self):
        """One DRQ data block through the data port (the multiple count's sectors for MULTIPLE)."""
        t = self.transfer
        sectors = min(self.multiple or 1, t.remaining) if t.code in MULTIPLE else 1
        if t.code in WRITES:
            block, t.data = t.data[: sectors * SECTOR_BYTES], t.data[sectors * SECTOR_BYTES :]
            self.both(lambda g: g.write_block(block))
        else:
            block = self.both(lambda g: g.read_block(sectors))
            for guest in self.guests:
                guest.seen.append(("data", block))
        t.remaining -= sectors
        t.drq = False

    @precondition(lambda self: self.transfer is not None)
    @rule()
    def finish(self) -> None:
        """What a polling driver does: wait for the device and move every block until the command ends."""
        while self.transfer is not None:
            if self.transfer.drq:
                self.move_block()
            else:
                self.wait()

    # Nonsense both sides must take alike

    def nonsense(self, code):
        """Idle: a data-port read with DRQ clear. Busy: a new command written over the one running."""
        if self.transfer is not None and self.transfer.drq:
            return  # a data-port access now is a transfer, which move_block makes
        if self.idle():
            self.both(lambda g: g.channel.read(DATA, 2))
            event("data port read with DRQ clear")
        else:
            self.both(lambda g: g.channel.write(COMMAND, 1, code))
            event("command while busy")

    # World events, applied to both worlds by the pair

    @rule(
        happening=st.one_of(
            st.tuples(st.just("tick"), st.sampled_from([1, 5, 30, 500])),
            st.tuples(st.just("power cut"), st.sampled_from(["oldest", "newest", "oldest-delivered", "newest-delivered"])),
            st.tuples(st.just("policy"), st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL])),
            st.just(("server crash", None)),
            st.tuples(st.just("nonsense"), st.sampled_from([READ_SECTORS, WRITE_SECTORS, FLUSH_CACHE, IDENTIFY_DEVICE])),
        )
    )
    def world_event(self, happening):
        """Time, a power cut, an operator, a server crash or guest nonsense: one rule, so commands stay frequent."""
        kind, argument = happening
        if kind == "nonsense":
            self.nonsense(argument)
        elif kind == "tick":
            self.tick(argument)
        elif kind == "power cut":
            self.power_cut_and_restart(argument)
        elif kind == "policy":
            self.change_policy(argument)
        elif not isinstance(self.pair.spec.guest_request, WriteSectors):  # a cut-short write's fate is unknown
            self.server_crash()

    @precondition(lambda self: self.pair.spec.local.pending_ids())
    @rule(index=st.integers(0, 7), ok=st.booleans())
    def complete_local(self, index, ok):
        ids = self.pair.spec.local.pending_ids()
        self.pair.both(lambda w: w.local.complete(ids[index % len(ids)], ok))
        event(f"local completion {'ok' if ok else 'fails'}{' out of order' if index % len(ids) else ''}")

    @precondition(lambda self: self.pair.spec.link.items())
    @rule(index=st.integers(0, 7), action=st.sampled_from(["deliver", "drop", "duplicate"]))
    def network(self, index, action):
        if action == "duplicate":
            self.pair.both(lambda w: w.link.duplicate(index))
        else:
            self.pair.both(lambda w: w.complete_remote(index, action == "deliver"))
        event(f"frame {action}")

    def tick(self, ticks):
        self.pair.both(lambda w: w.tick(ticks))
        self.both(lambda g: g.channel.tick())

    def server_crash(self):
        self.pair.both(lambda w: w.server_crash())
        event("server crash")

    def power_cut_and_restart(self, survivors):
        newest, delivered = SURVIVORS[survivors]
        during = " during a command" if self.transfer is not None else ""
        self.pair.both(lambda w: w.power_cut(lambda lba, versions: versions - 1 if newest else 0, delivered))
        self.connect()
        event(f"power cut{during}")
        event(f"power cut, {survivors} survive")

    def change_policy(self, wanted):
        outcome = self.pair.both(lambda w: w.manager.request_policy(wanted))
        event(f"policy {wanted.value}: {outcome[0]}")
        event(f"a policy change: {outcome[0]}")


def test_a_guest_at_the_ports_sees_the_same_stack_in_the_spec_and_in_c():
    """The machine over the profile's examples; then every command outcome and world event was reached."""
    REACHED.clear()
    profile = settings.default
    # Longer sequences than the profile's default: a command takes several steps and the faults come between them.
    # The ci profile runs a fixed set of sequences, so its coverage assertion does not depend on the seed.
    run_state_machine_as_test(
        FullStackComparison,
        settings=settings(
            profile,
            max_examples=max(40, profile.max_examples * 2 // 3),
            stateful_step_count=max(100, profile.stateful_step_count),
            derandomize=os.environ.get("STORVISOR_HYPOTHESIS", "ci") == "ci",
        ),
    )
    missing = [label for label in MUST_REACH if not REACHED[label]]
    assert not missing, f"never exercised: {missing}"
