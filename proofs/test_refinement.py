"""Every step of the spec's storage manager, on random runs, is explained by a short run of the z3 model."""

from hypothesis import given
from hypothesis import strategies as st

from proofs.refinement import explains, project
from spec.ata.backing_store import Flush, ReadSectors, WriteSectors
from spec.storage.manager import Phase
from spec.storage.parameters import SMALL
from spec.storage.policy import Policy, PolicyError
from tests.storage.links import DirectLink
from tests.storage.world import World, sector_data

GEOMETRY = SMALL.geometry
# Completions are listed often so runs get far: fills finish, commits complete, blocks become present.
ACTIONS = ["read", "write", "write", "flush", "local", "local", "local", "fail local", "remote", "remote", "fail remote"]
ACTIONS += ["tick", "settle", "policy", "power cut", "devirtualize", "devirtualize"]


def act(world: World, data, action: str) -> None:
    g = GEOMETRY
    if action in ("read", "write", "flush"):
        if world.guest_request is not None:
            return
        lba = data.draw(st.integers(0, g.data_sectors - 1))
        count = data.draw(st.integers(1, min(2 * g.sectors_per_block, g.data_sectors - lba)))
        world.version = getattr(world, "version", 0) + 1
        request = {"read": ReadSectors(lba, count), "write": WriteSectors(lba, sector_data(lba, count, world.version)), "flush": Flush()}[action]
        world.start(request)
    elif action in ("local", "fail local") and world.local.pending_ids():
        world.complete_local(data.draw(st.integers(0, 7)), ok=action == "local")
    elif action in ("remote", "fail remote") and world.link.items():
        world.complete_remote(data.draw(st.integers(0, 7)), ok=action == "remote")
    elif action == "policy":
        try:
            world.manager.request_policy(data.draw(st.sampled_from(list(Policy))))
        except PolicyError:
            pass
    elif action == "power cut":
        world.power_cut(lambda lba, versions: data.draw(st.integers(0, versions - 1)))
    elif action == "devirtualize" and world.manager.may_devirtualize():
        world.devirtualize()
    world.tick()
    if world.guest_request is not None:
        world.poll()


def settle_steps(world: World) -> list[str]:
    """One completion, in submission order, per step, while anything is pending."""
    if world.local.pending_ids():
        return ["local"]
    return ["remote"] if world.link.items() else []


@given(st.data())
def test_every_spec_step_is_a_model_run(data):
    world = World(preset=SMALL, policy=data.draw(st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL])), link_type=DirectLink)
    world.tick()
    seen = None

    def check(action: str) -> None:
        nonlocal seen
        if world.manager.phase is Phase.STARTING:
            return  # the map is being read: the model's restart completes when recovery does
        now = [project(world.manager, b) for b in range(GEOMETRY.block_count)]
        if seen is not None:
            for block, (before, after) in enumerate(zip(seen, now)):
                assert explains(before, after), f"after '{action}', block {block}: no model run from {before} to {after}"
        seen = now

    check("boot")
    for _ in range(data.draw(st.integers(1, 40))):
        action = data.draw(st.sampled_from(ACTIONS))
        if action == "settle":
            for _ in range(12):
                pending = settle_steps(world)
                if not pending:
                    break
                world.complete_local(0) if pending[0] == "local" else world.complete_remote(0)
                world.tick()
                if world.guest_request is not None:
                    world.poll()
                check("settle")
            continue
        act(world, data, action)
        check(action)


def test_impossible_steps_are_not_explained():
    """The check is not vacuous: steps no spec run takes have no model run either."""
    idle = ("NETWORK", False, "ABSENT", "NONE", False, False, False, False, "NONE", False, False, False)
    network_copy = ("NETWORK", False, "PRESENT", "NONE", False, False, False, False, "NONE", False, False, False)
    assert not explains(idle, network_copy)  # network never keeps a local copy
    passthrough = ("PASSTHROUGH", True, "PRESENT", "NONE", False, False, False, False, "NONE", False, True, False)
    back_to_cache = ("CACHE", False, "PRESENT", "NONE", False, False, False, False, "NONE", False, True, False)
    assert not explains(passthrough, back_to_cache)  # passthrough restarts into install, never cache
    install = ("INSTALL", False, "PRESENT", "NONE", False, False, False, False, "NONE", False, True, False)
    assert not explains(install, ("INSTALL", False, "FETCHING", "READING") + install[4:])  # a persisted block is never filled again


def test_passthrough_write_over_two_blocks_is_explained():
    """Regression (shrunk by Hypothesis): passthrough writes one segment for the whole range, touching every block in it."""
    world = World(preset=SMALL, policy=Policy.INSTALL, link_type=DirectLink)
    world.settle()
    assert world.manager.may_devirtualize()
    world.devirtualize()
    before = [project(world.manager, b) for b in range(2)]
    world.start(WriteSectors(1, sector_data(1, 2, 1)))  # sectors 1 and 2: blocks 0 and 1
    world.tick()
    world.poll()
    after = [project(world.manager, b) for b in range(2)]
    assert all(p[4] and p[5] for p in after), "both blocks see the write and its local segment"
    assert all(explains(b, a) for b, a in zip(before, after))
