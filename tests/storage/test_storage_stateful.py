"""The storage manager against the ideal disk, over the AoE models, with every fault a rule.

The world: the spec storage manager, the spec AoE initiator, the faulty
network (`model/network.py`), the queueing and crashing server around the spec
target (`model/aoe_server.py`), the local disk with its volatile cache
(`model/local_disk.py`) and the clock (`model/clock.py`). Rules: guest reads,
writes and flushes on LBAs drawn from a bundle (so operations collide), local
completions in any order and local failures, network conditions (loss,
duplication, delay, reordering), a silent server, clock ticks, client power
cuts with restart, server crashes and restarts, policy changes and
de-virtualization. After every read the data must be the ideal disk's; after
every step every invariant of the catalogue holds, including "a power cut now
would be safe" over every way the media could come out. The single test runs
the machine and then asserts that every per-block transition and every policy
transition was reached.
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

from model.network import Faults
from spec import invariants as inv
from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, WriteSectors
from spec.ata.constants import IDNF
from spec.storage.block_state import BLOCK_TRANSITIONS
from spec.storage.devices import Completion
from spec.storage.devirtualize import DevirtualizeError
from spec.storage.manager import Device, Phase
from spec.storage.parameters import TESTS
from spec.storage.policy import POLICY_TRANSITIONS, Policy, PolicyError, is_legal_transition
from tests.storage.links import TIMING, ModelLink

NETWORK_CONDITIONS = [
    Faults(),
    Faults(drop=0.2),
    Faults(duplicate=0.3, min_delay=0, max_delay=4),
    Faults(drop=0.1, duplicate=0.2, min_delay=1, max_delay=4),
]
from tests.storage.world import World, sector_data

GEOMETRY = TESTS.geometry
SPB = GEOMETRY.sectors_per_block
BLOCK_STARTS = st.integers(0, GEOMETRY.block_count - 1).map(GEOMETRY.first_lba)  # whole-block writes need them
COUNTS = st.sampled_from([SPB, 2 * SPB]) | st.integers(1, 2 * SPB + 1)
REACHED: Counter = Counter()
RUNS_TO_COVER = 480  # with derandomize, enough runs to reach every transition (asserted at the end)


def observe(kind: str, detail: tuple) -> None:
    """Coverage: every block and policy transition the manager takes."""
    REACHED[(kind, detail)] += 1
    event(f"{kind}: " + " -> ".join(getattr(d, "value", str(d)) for d in detail))


class StorageMachine(RuleBasedStateMachine):
    lbas = Bundle("lbas")

    @initialize(policy=st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL]), rng=st.randoms())
    def boot(self, policy, rng):
        self.world = World(preset=TESTS, policy=policy, link_type=lambda image: ModelLink(image, rng=rng), observer=observe)
        self.version = 0

    # Addresses: block boundaries and their neighbours are the interesting ones.

    @rule(target=lbas, lba=BLOCK_STARTS | st.integers(0, GEOMETRY.data_sectors - 1))
    def add_lba(self, lba):
        return lba

    # Guest requests, one at a time as the ATA device issues them.

    def idle(self):
        return self.world.guest_request is None

    @precondition(idle)
    @rule(lba=lbas, count=COUNTS)
    def guest_read(self, lba, count):
        self.world.start(ReadSectors(lba, count))
        self.expect_out_of_range(lba, count)

    @precondition(idle)
    @rule(lba=lbas, count=COUNTS)
    def guest_write(self, lba, count):
        self.version += 1
        self.world.start(WriteSectors(lba, sector_data(lba, count, self.version)))
        self.expect_out_of_range(lba, count)

    @precondition(idle)
    @rule(lba=lbas, count=COUNTS)
    def guest_write_meets_a_local_error(self, lba, count):
        """A guest write whose local part the disk fails, as a bad sector would: it fails, nothing else is lost."""
        self.version += 1
        world = self.world
        world.start(WriteSectors(lba, sector_data(lba, count, self.version)))
        self.expect_out_of_range(lba, count)
        for _ in range(500):
            if world.guest_request is None or self.guest_local_writes():
                break
            world.tick()
            world.poll()
            world.check_invariants()
            if world.local.pending_ids():
                world.complete_local()
            elif world.link.items():
                world.complete_remote()
        if self.guest_local_writes():
            world.local.complete(self.guest_local_writes()[0], ok=False)
            event("guest write: local error")

    def expect_out_of_range(self, lba, count):
        """A request reaching past the capacity fails at once with IDNF and touches no device (reserved_region_hidden)."""
        if lba + count <= GEOMETRY.data_sectors:
            return
        result = self.world.poll()
        assert result is not None and not result.ok and result.error == IDNF
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
        """The local disk reports an error (ABRT) for any request."""
        self.world.complete_local(index, ok=False)

    def guest_local_writes(self):
        pending = set(self.world.local.pending_ids())  # submitted and not yet completed by the disk
        outstanding = self.world.manager.local_purpose.items()
        return [i for i, o in outstanding if i in pending and o.purpose[0] == "guest" and o.kind is WriteSectors]

    @precondition(lambda self: self.guest_local_writes())
    @rule()
    def fail_guest_local_write(self):
        """The local disk fails the guest's own write: the sectors are indeterminate, the block is not lost."""
        self.world.local.complete(self.guest_local_writes()[0], ok=False)

    @precondition(lambda self: self.world.link.items())
    @rule()
    def next_network_event(self):
        """Time passes until the network delivers a frame or the server answers one."""
        self.world.complete_remote()

    @rule(faults=st.sampled_from(NETWORK_CONDITIONS))
    def network_conditions(self, faults):
        """Frames are lost, duplicated, delayed and reordered from now on (model/network.py), or not."""
        self.world.link.set_faults(faults)
        event(f"network: {faults}")

    @precondition(lambda self: self.world.manager.outstanding(Device.REMOTE))
    @rule()
    def server_silent(self):
        """Every frame is lost until the initiator's deadline passes: what was outstanding fails."""
        link = self.world.link
        faults = link.network.faults
        link.set_faults(Faults(drop=1.0))
        self.world.tick(TIMING.deadline + 1)
        link.set_faults(faults)
        event("server silent past the deadline")

    @rule(ticks=st.sampled_from([1, 5, 30, 500]))
    def tick(self, ticks):
        self.world.tick(ticks)

    @rule()
    def settle(self):
        """Let everything in flight finish: the server is back up, time passes until nothing is left to do."""
        if not self.world.link.server.up:
            self.world.link.server_restart()
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

    @precondition(lambda self: self.world.link.server.up and not isinstance(self.world.guest_request, WriteSectors))
    @rule(survives=st.booleans())
    def server_crash(self, survives):
        """The server loses power; each unflushed sector in its cache may or may not have reached its medium."""
        self.world.server_crash(lambda lba: survives)
        event("server crash")

    @precondition(lambda self: not self.world.link.server.up)
    @rule()
    def server_restart(self):
        self.world.link.server_restart()

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
        max_examples=max(RUNS_TO_COVER, profile.max_examples),
        stateful_step_count=2 * profile.stateful_step_count,
        derandomize=True,  # the coverage assertion below must not depend on the seed of the day
    )
    run_state_machine_as_test(StorageMachine, settings=machine_settings)
    missing_blocks = [t for t in BLOCK_TRANSITIONS.items() if ("block", (t[0][0], t[0][1], t[1])) not in REACHED]
    missing_policies = [t for t in POLICY_TRANSITIONS if ("policy", t) not in REACHED]
    assert not missing_blocks, f"block transitions never reached: {missing_blocks}"
    assert not missing_policies, f"policy transitions never reached: {missing_policies}"
