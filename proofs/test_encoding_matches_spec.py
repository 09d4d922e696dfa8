"""The z3 encoding agrees with the executable spec: exhaustively where the domain is small, with Hypothesis elsewhere.

The block and policy tables are generated from the spec (`sorts.py`), and
checked here entry by entry; every guard and every restated formula of the
proofs is evaluated on concrete inputs next to the spec function it stands
for, and the results must be identical.
"""

import itertools
from types import SimpleNamespace

import pytest
import z3
from hypothesis import example, given
from hypothesis import strategies as st

from proofs import address_proofs as ap
from proofs.concrete import choice_assignment, is_true, state_assignment, value
from proofs.sorts import COMMIT, FILL, FLUSH_WAIT, POLICY, block, block_legal, block_next, policy_change_legal
from proofs.storage_model import Choices, State, Variant, events, routes_local
from spec.aoe.constants import sectors_per_frame
from spec.aoe.initiator import AoeInitiator, Kind, Request
from spec.ata.addressing import sector_count_28, sector_count_48
from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.block_state import BLOCK_TRANSITIONS, BlockEvent, BlockState
from spec.storage.devices import Completion
from spec.storage.devirtualize import devirtualize_blockers
from spec.storage.fill_engine import choose_fills
from spec.storage.parameters import SMALL, Geometry
from spec.storage.routing import Device, route_read, route_write, split_by_block
from spec.storage.policy import Policy, is_legal_transition

GEOMETRY = SMALL.geometry


def event(name: str, s: State, c: Choices):
    return next(e for e in events(s, c, Variant.SPEC) if e.name == name)


# Tables generated from the spec.


@pytest.mark.parametrize("state, event_", list(itertools.product(BlockState, BlockEvent)))
def test_block_table_matches_spec(state, event_):
    legal = z3.simplify(block_legal(block(state), event_))
    assert z3.is_true(legal) == ((state, event_) in BLOCK_TRANSITIONS)
    if (state, event_) in BLOCK_TRANSITIONS:
        assert z3.simplify(block_next(block(state), event_)).eq(block(BLOCK_TRANSITIONS[(state, event_)]))


@pytest.mark.parametrize("current, wanted", list(itertools.product(Policy, Policy)))
def test_policy_table_matches_spec(current, wanted):
    encoded = z3.simplify(policy_change_legal(POLICY[current.name], POLICY[wanted.name]))
    assert z3.is_true(encoded) == is_legal_transition(current, wanted)


# Guards of the storage model against the spec's functions.


@pytest.mark.parametrize(
    "state, persisted, fill, commit, guest, policy",
    list(itertools.product(BlockState, (False, True), (False, True), (False, True), (False, True), Policy)),
)
def test_devirtualize_guard_matches_spec(state, persisted, fill, commit, guest, policy):
    s, c = State("c"), Choices("c")
    fields = dict(state=state, persisted=persisted, policy=policy)
    fields["fill"] = FILL["READING"] if fill else FILL["NONE"]
    fields["commit"] = COMMIT["FLUSH_BEFORE"] if commit else COMMIT["NONE"]
    fields["flush_wait"] = FLUSH_WAIT["QUEUED"] if guest else FLUSH_WAIT["IDLE"]
    encoded = is_true(event("de-virtualized", s, c).guard, {**state_assignment(s, **fields), **choice_assignment(c)})
    blockers = devirtualize_blockers([state], frozenset({0}) if persisted else frozenset(), 1, int(fill), guest, commit, policy is Policy.INSTALL)
    assert encoded == (not blockers)


@pytest.mark.parametrize("state, write, policy", list(itertools.product(BlockState, (False, True), Policy)))
def test_fill_guard_covers_spec_choice(state, write, policy):
    """Whenever the spec's fill engine picks the block, the model's guard allows the fill to start."""
    s, c = State("c"), Choices("c")
    assignment = {**state_assignment(s, state=state, write=write, policy=policy), **choice_assignment(c)}
    encoded = is_true(event("fill started", s, c).guard, assignment)
    for background, guest_active in itertools.product((False, True), repeat=2):
        chosen, _ = choose_fills([state], [0], {0} if write else set(), 0, 1, SMALL.fill, background, guest_active)
        spec_fills_here = bool(chosen) and policy in (Policy.CACHE, Policy.INSTALL)  # `_advance_fills` policy check
        assert not spec_fills_here or encoded


@pytest.mark.parametrize("state, policy", list(itertools.product(BlockState, Policy)))
def test_read_routing_matches_spec(state, policy):
    s = State("c")
    encoded = is_true(routes_local(s), state_assignment(s, state=state, policy=policy))
    route = route_read(policy, [state] * GEOMETRY.block_count, GEOMETRY, 0, 1)
    assert encoded == (route.segments[0].device is Device.LOCAL)


@pytest.mark.parametrize(
    "state, policy, whole, durable_clean, committing",
    list(itertools.product(BlockState, Policy, (False, True), (False, True), (False, True))),
)
def test_write_route_matches_spec(state, policy, whole, durable_clean, committing):
    """Whether a guest write may be issued, its local and server segments, and the block's next state."""
    if state is not BlockState.PRESENT and policy is Policy.PASSTHROUGH:
        return  # passthrough holds every block present (devirtualize_only_when_quiescent)
    if state is not BlockState.ABSENT and policy is Policy.NETWORK:
        return  # network holds no local copy (busy_only_in_local_policies)
    s, c = State("c"), Choices("c")
    e = event("guest write issued", s, c)
    commit = COMMIT["FLUSH_BEFORE"] if committing else COMMIT["NONE"]
    assignment = {
        **state_assignment(s, state=state, policy=policy, durable_clean=durable_clean, commit=commit),
        **choice_assignment(c, covers=True, whole=whole, data=7),
    }
    data = bytes(SECTOR_BYTES * (GEOMETRY.sectors_per_block if whole else 1))
    blocks = [state] * GEOMETRY.block_count
    route = route_write(policy, blocks, GEOMETRY, 0, data, map_may_be_clean=durable_clean or committing)
    assert is_true(z3.And(e.guard, e.extra), assignment) == (route.wait is None)
    if route.wait is None:
        assert is_true(e.updates["write_local"], assignment) == any(seg.device is Device.LOCAL for seg in route.segments)
        assert is_true(e.updates["write_remote"], assignment) == any(seg.device is Device.REMOTE for seg in route.segments)
        next_state = BlockState.WRITING if 0 in route.whole_blocks else state
        assert value(e.updates["state"], assignment).eq(block(next_state))


# Address arithmetic restated in z3, against the spec functions.


def test_sector_count_48_matches_spec_for_every_register_pair():
    """The spec equals the closed form on all 65536 pairs, and z3 shows the term equals it on all of them too."""
    closed_form = lambda n, p: ((p << 8) | n) or 65536  # noqa: E731
    assert all(sector_count_48(n, p) == closed_form(n, p) for p in range(256) for n in range(256))
    count, previous = z3.BitVecs("count previous", ap.WORD)
    combined = (previous << 8) | count
    solver = z3.Solver()
    solver.add(z3.ULE(count, 255), z3.ULE(previous, 255))
    solver.add(ap.sector_count_48_term(count, previous) != z3.If(combined == 0, z3.BitVecVal(65536, ap.WORD), combined))
    assert solver.check() == z3.unsat


def test_sector_count_28_matches_spec_for_every_register():
    count = z3.BitVec("count", ap.WORD)
    term = ap.sector_count_28_term(count)
    for n in range(256):
        assert value(term, {count: z3.BitVecVal(n, ap.WORD)}).as_long() == sector_count_28(n)


def test_sectors_per_frame_matches_spec_for_every_mtu():
    for mtu in range(0, 65536):
        spf = sectors_per_frame(mtu)
        assert spf == (0 if mtu < 36 else (mtu - 36) // 512)
        assert spf * SECTOR_BYTES + 36 <= mtu or spf == 0
        assert (spf + 1) * SECTOR_BYTES + 36 > mtu


@given(lba=st.integers(0, 2**48 - 1), count=st.integers(1, 2**17), max_sectors=st.integers(1, 255))
@example(lba=0, count=3, max_sectors=2)
@example(lba=2**48 - 256, count=256, max_sectors=255)
def test_frame_split_matches_spec(lba, count, max_sectors):
    """`AoeInitiator.split` produces exactly the fragments `prove_frame_split_exact` reasons about."""
    count = min(count, 2**48 - lba)
    holder = SimpleNamespace(max_sectors=max_sectors, pending=[])
    request = Request(1, Kind.READ, lba, count, b"", 0)
    AoeInitiator.split(holder, request)
    fragments = [(f.lba, f.count) for f in request.fragments]
    expected = [(lba + k * max_sectors, min(max_sectors, count - k * max_sectors)) for k in range(-(-count // max_sectors))]
    assert fragments == expected


@given(lba=st.integers(0, 2**40), count=st.integers(1, 4096), shift=st.integers(0, 10))
@example(lba=1, count=3, shift=1)
def test_block_split_matches_spec(lba, count, shift):
    """`split_by_block` produces exactly the pieces `prove_block_split_exact` reasons about."""
    spb = 1 << shift
    pieces = [(p.block, p.lba, p.count) for p in split_by_block(Geometry(spb, 1), lba, count)]
    first_block, last_block = lba // spb, (lba + count - 1) // spb
    expected = []
    for blk in range(first_block, last_block + 1):
        start, stop = max(lba, blk * spb), min(lba + count, (blk + 1) * spb)
        expected.append((blk, start, stop - start))
    assert pieces == expected


# A response to a tag not outstanding changes nothing, in the spec too.


@given(st.data())
def test_stale_completion_changes_nothing_in_spec(data):
    from tests.storage.links import DirectLink
    from tests.storage.world import World, sector_data

    from spec.ata.backing_store import Flush, ReadSectors, WriteSectors

    world = World(preset=SMALL, policy=data.draw(st.sampled_from([Policy.CACHE, Policy.INSTALL])), link_type=DirectLink)
    g = SMALL.geometry
    for _ in range(data.draw(st.integers(0, 25))):
        choice = data.draw(st.sampled_from(["read", "write", "flush", "local", "remote", "tick"]))
        if choice in ("read", "write", "flush") and world.guest_request is None:
            lba = data.draw(st.integers(0, g.data_sectors - 1))
            request = {"read": ReadSectors(lba, 1), "write": WriteSectors(lba, sector_data(lba, 1, 1)), "flush": Flush()}[choice]
            world.start(request)
        elif choice == "local" and world.local.pending_ids():
            world.complete_local(data.draw(st.integers(0, 7)))
        elif choice == "remote" and world.link.items():
            world.complete_remote(data.draw(st.integers(0, 7)))
        else:
            world.tick()
            if world.guest_request is not None:
                world.poll()
    manager = world.manager
    before = manager.comparable_state()
    used = set(manager.local_purpose) | set(manager.remote_purpose)
    stale = max(used | {0}) + 1000 + data.draw(st.integers(0, 100))
    manager.on_local_completion(Completion(stale, data.draw(st.booleans()), bytes(SECTOR_BYTES)))
    manager.on_remote_completion(Completion(stale, data.draw(st.booleans()), bytes(SECTOR_BYTES)))
    assert manager.comparable_state() == before
