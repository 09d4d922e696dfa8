"""What the proofs found in the spec, now fixed there, kept as regression tests.

A failed cache->network map commit used to end the policy change, leaving the
old clean cache map on disk; after network writes, a change back to cache and
a power cut, recovery trusted that map and served stale local data. The spec
now retries the change's commit until one succeeds (`_advance_switch_commit`).
"""

from proofs.harness import record
from proofs.storage_model import Variant
from proofs.storage_proofs import prove_inductive
from spec.ata.backing_store import Flush, ReadSectors, WriteSectors
from spec.storage.policy import Policy
from tests.storage.links import DirectLink
from tests.storage.world import World, sector_data


def test_without_the_retry_network_may_run_under_a_trusted_map():
    """The control for the fix: if the change completed after a failed commit, the invariant would not be preserved."""
    outcome = prove_inductive("network_has_no_trusted_map", Variant.SWITCH_NOT_RETRIED)
    outcome.name = "network_has_no_trusted_map [control: policy change completes after its commit failed]"
    record(outcome)
    print(outcome.trace)
    assert outcome.refuted
    assert "commit" in outcome.trace and "ok no" in outcome.trace


def test_failed_switch_commit_then_restart_serves_the_newest_data():
    """cache -> network whose first dirty-map commit fails; network writes; back to cache; power cut; read."""
    world = World(policy=Policy.CACHE, link_type=DirectLink)
    world.settle()
    world.run(ReadSectors(0, 4))  # copy-on-read fills block 0
    world.settle()
    world.run(Flush())  # a clean cache map marks block 0 present
    world.settle()
    world.manager.request_policy(Policy.NETWORK)
    for _ in range(10):
        if world.local.pending_ids():
            break
        world.tick()  # until the switch submits the first flush of its dirty-map commit
    assert world.local.pending_ids(), "the policy change started no map commit"
    world.complete_local(0, ok=False)  # ... which fails, and is retried
    world.tick()
    world.settle()
    assert world.manager.policy is Policy.NETWORK and not world.manager.durable_clean
    world.run(WriteSectors(0, sector_data(0, 4, 1)))  # the server gets newer data for block 0
    world.run(Flush())
    world.settle()
    world.manager.request_policy(Policy.CACHE)
    world.settle()
    world.power_cut()  # checks map_crash_safe and flush_is_durable on the media the cut left
    world.settle()
    assert world.run(ReadSectors(0, 1)).ok  # checked against the ideal disk: the newest data
