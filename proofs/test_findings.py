"""Defects the proofs found in the spec, kept as strict expected failures until the spec is fixed.

When a fix lands, the test passes, `strict=True` turns that into a failure,
and the mark comes off: the finding becomes a regression test.
"""

import pytest

from proofs.harness import record
from proofs.storage_model import Variant
from proofs.storage_proofs import prove_inductive
from spec.ata.backing_store import Flush, ReadSectors, WriteSectors
from spec.invariants import InvariantViolation
from spec.storage.policy import Policy
from tests.storage.links import DirectLink
from tests.storage.world import World, sector_data


def test_failed_switch_commit_leaves_a_trusted_cache_map_z3():
    """Without the assumption that a policy change's map commit succeeds, network may run under a trusted map."""
    outcome = prove_inductive("network_has_no_trusted_map", Variant.SWITCH_COMMIT_FAILS)
    outcome.name = "network_has_no_trusted_map [finding: switch commit may fail]"
    record(outcome)
    print(outcome.trace)
    assert outcome.refuted
    assert "commit" in outcome.trace and "ok no" in outcome.trace


@pytest.mark.xfail(strict=True, raises=InvariantViolation, reason="spec: a failed cache->network map commit is not retried")
def test_failed_switch_commit_then_restart_serves_stale_data():
    """cache -> network whose dirty-map commit fails; network writes; back to cache; power cut: the old clean map is trusted."""
    world = World(policy=Policy.CACHE, link_type=DirectLink)
    world.settle()
    world.run(ReadSectors(0, 4))  # copy-on-read fills block 0
    world.settle()
    world.run(Flush())  # a clean cache map marks block 0 present
    world.settle()
    world.manager.request_policy(Policy.NETWORK)
    world.tick()  # the switch submits the first flush of its dirty-map commit
    world.complete_local(0, ok=False)  # ... which fails: the manager runs network with the clean map on disk
    world.tick()
    world.run(WriteSectors(0, sector_data(0, 4, 1)))  # the server gets newer data for block 0
    world.run(Flush())
    world.settle()
    world.manager.request_policy(Policy.CACHE)
    world.settle()
    world.power_cut()  # map_crash_safe: the recovered clean map marks block 0, whose local data is stale
    world.settle()
    world.run(ReadSectors(0, 1))  # guest_sees_ideal_disk, if the media check above is ever relaxed
