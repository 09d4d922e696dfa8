"""The storage manager against the ideal disk, over the spec AoE initiator and target, with every fault a rule.

Guest reads, writes and flushes on LBAs drawn from a bundle (so operations
collide), device completions in any order, frames delivered, lost or
duplicated, clock ticks, client power cuts with restart, server crashes,
policy changes and de-virtualization. After every read the data must be the
ideal disk's; after every step every invariant of the catalogue holds. The
single test runs the machine and then asserts that every per-block
transition and every policy transition was reached.
"""

from collections import Counter

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from spec import invariants as inv
from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, WriteSectors
from spec.storage.block_state import BLOCK_TRANSITIONS
from spec.storage.devices import Completion
from spec.storage.devirtualize import DevirtualizeError
from spec.storage.manager import ERROR_IDNF, Phase
from spec.storage.parameters import TESTS
from spec.storage.policy import POLICY_TRANSITIONS, Policy, PolicyError, is_legal_transition
from tests.storage.links import TIMING, AoeLink
from tests.storage.world import World, sector_data

GEOMETRY = TESTS.geometry
REACHED: Counter = Counter()


def observe(kind: str, detail: tuple) -> None:
    """Coverage: every block and policy transition the manager takes."""
    REACHED[(kind, detail)] += 1
    event(f"{kind}: " + " -> ".join(getattr(d, "value", str(d)) for d in detail))


class StorageMachine(RuleBasedStateMachine):
    lbas = Bundle("lbas")

    @initialize(policy=st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL]))
    def boot(self, policy):
        self.world = World(preset=TESTS, policy=policy, link_type=AoeLink, observer=observe)
        self.version = 0

    # Addresses: block boundaries and their neighbours are the interesting ones.

    @rule(target=lbas, lba=st.integers(0, GEOMETRY.data_sectors - 1))
    def add_lba(self, lba):
        return lba

    # Guest requests, one at a time as the ATA device issues them.

    def idle(self):
        return self.world.guest_request is None

    @precondition(idle)
    @rule(lba=lbas, count=st.integers(1, 2 * GEOMETRY.sectors_per_block + 1))
    def guest_read(self, lba, count):
        self.world.start(ReadSectors(lba, count))
        self.expect_out_of_range(lba, count)

    @precondition(idle)
    @rule(lba=lbas, count=st.integers(1, 2 * GEOMETRY.sectors_per_block + 1))
    def guest_write(self, lba, count):
        self.version += 1
        self.world.start(WriteSectors(lba, sector_data(lba, count, self.version)))
        self.expect_out_of_range(lba, count)

    def expect_out_of_range(self, lba, count):
        """A request reaching past the capacity fails at once with IDNF and touches no device (reserved_region_hidden)."""
        if lba + count <= GEOMETRY.data_sectors:
            return
        result = self.world.poll()
        assert result is not None and not result.ok and result.error == ERROR_IDNF
        event("guest: out of range")

    @precondition(idle)
    @rule()
    def guest_flush(self):
        self.world.start(Flush())

    @precondition(lambda self: not self.idle())
    @rule()
    def poll(self):
        result = self.world.poll()
        if result is not None:
            event(f"guest: {type(self.world.results[-1][0]).__name__} {'ok' if result.ok else 'failed'}")

    # The devices: completion order and faults are inputs.

    @precondition(lambda self: self.world.local.pending_ids())
    @rule(index=st.integers(0, 7))
    def complete_local(self, index):
        self.world.complete_local(index, ok=True)

    @precondition(lambda self: self.world.local.pending_ids())
    @rule(index=st.integers(0, 7))
    def fail_local(self, index):
        """The local disk reports an error (ABRT); a failed write may still have reached its cache."""
        self.world.complete_local(index, ok=False)

    @precondition(lambda self: self.world.link.items())
    @rule(index=st.integers(0, 7))
    def deliver_frame(self, index):
        self.world.complete_remote(index, True)

    @precondition(lambda self: self.world.link.items())
    @rule(index=st.integers(0, 7))
    def drop_frame(self, index):
        self.world.complete_remote(index, False)

    @precondition(lambda self: self.world.link.items())
    @rule(index=st.integers(0, 7))
    def duplicate_frame(self, index):
        self.world.link.duplicate(index)

    @precondition(lambda self: self.world.link.items())
    @rule()
    def server_silent(self):
        """Every frame is lost until the initiator's deadline passes: what was outstanding fails."""
        while self.world.link.items():
            self.world.complete_remote(0, False)
        self.world.tick(TIMING.deadline + 1)
        event("server silent past the deadline")

    @rule(ticks=st.sampled_from([1, 5, 30, 500]))
    def tick(self, ticks):
        self.world.tick(ticks)

    @rule()
    def settle(self):
        """Let everything in flight finish in order: time passes without faults."""
        self.world.settle()

    @precondition(lambda self: self.world.local.pending_ids() or self.world.link.items())
    @rule(remote=st.booleans())
    def stale_completion(self, remote):
        """A completion nobody is waiting for changes nothing (stale_response_ignored)."""
        manager = self.world.manager
        before = manager.comparable_state()
        stale = Completion(10**9 + self.version, True, bytes(SECTOR_BYTES))
        (manager.on_remote_completion if remote else manager.on_local_completion)(stale)
        inv.check("stale_response_ignored", inv.stale_response_ignored(before, manager.comparable_state()))

    # Power and crashes

    @rule(data=st.data(), keep_remote_write=st.booleans())
    def client_power_cut(self, data, keep_remote_write):
        choose = lambda lba, versions: data.draw(st.integers(0, versions - 1), label=f"sector {lba} keeps version")
        self.world.power_cut(choose, keep_remote_write)
        event("client power cut")

    @precondition(lambda self: not isinstance(self.world.guest_request, WriteSectors))
    @rule()
    def server_crash(self):
        self.world.server_crash()
        event("server crash")

    # Policy and de-virtualization

    @rule(wanted=st.sampled_from(list(Policy)))
    def change_policy(self, wanted):
        manager = self.world.manager
        legal = manager.phase is Phase.RUNNING and is_legal_transition(manager.policy, wanted)
        legal = legal and wanted is not Policy.PASSTHROUGH
        try:
            manager.request_policy(wanted)
        except PolicyError:
            assert not legal, f"{manager.policy.value} -> {wanted.value} refused although legal"
            return
        assert legal, f"{wanted.value} accepted although illegal"

    @rule()
    def devirtualize(self):
        manager = self.world.manager
        if manager.may_devirtualize():
            self.world.devirtualize()
            event("devirtualized")
            return
        with pytest.raises(DevirtualizeError):
            manager.devirtualize()

    @invariant()
    def invariants_hold(self):
        self.world.check_invariants()


def test_storage_stateful_reaches_every_transition():
    REACHED.clear()
    profile = settings.default  # ci or deep (conftest.py); the machine needs more, longer runs than a plain test
    machine_settings = settings(
        profile,
        max_examples=5 * profile.max_examples,
        stateful_step_count=2 * profile.stateful_step_count,
        derandomize=True,  # the coverage assertion below must not depend on the seed of the day
    )
    run_state_machine_as_test(StorageMachine, settings=machine_settings)
    missing_blocks = [t for t in BLOCK_TRANSITIONS.items() if ("block", (t[0][0], t[0][1], t[1])) not in REACHED]
    missing_policies = [t for t in POLICY_TRANSITIONS if ("policy", t) not in REACHED]
    assert not missing_blocks, f"block transitions never reached: {missing_blocks}"
    assert not missing_policies, f"policy transitions never reached: {missing_policies}"
