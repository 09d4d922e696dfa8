"""Unit checks of the storage chapter's pure parts: geometry, policy table, block table, fill engine, routing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spec.storage.block_state import BLOCK_TRANSITIONS, BlockEvent, BlockState, next_block_state
from spec.storage.fill_engine import choose_fills, refill_tokens
from spec.storage.parameters import REALISTIC, SMALL, TESTS, FillParameters, Geometry
from spec.storage.policy import POLICY_TRANSITIONS, Policy, PolicyError, boot_policy, check_transition
from spec.storage.routing import Device, Piece, route_flush, route_read, route_write, split_by_block

A, F, P = BlockState.ABSENT, BlockState.FETCHING, BlockState.PRESENT


@pytest.mark.parametrize("spb", [0, 3, 6, -2])
def test_a_block_is_a_power_of_two_of_sectors(spb):
    with pytest.raises(ValueError, match="power of two"):
        Geometry(spb, 4)


def test_presets_come_from_one_definition_and_leave_room_for_two_map_slots():
    for preset in (SMALL, TESTS, REALISTIC):
        g = preset.geometry
        assert g.local_disk_sectors == g.data_sectors + 2 * (1 + g.bitmap_sectors)
        assert g.bitmap_sectors * 512 * 8 >= g.block_count
        assert g.slot_lba(1) == g.slot_lba(0) + g.slot_sectors
    assert SMALL.geometry.data_sectors == 8 and REALISTIC.geometry.data_sectors * 512 == 8 << 30


def test_policy_table_refuses_everything_it_does_not_list():
    for current in Policy:
        for wanted in Policy:
            if (current, wanted) in POLICY_TRANSITIONS and wanted is not Policy.PASSTHROUGH:
                check_transition(current, wanted)
            else:
                with pytest.raises(PolicyError):
                    check_transition(current, wanted)


@pytest.mark.parametrize(
    "configured, recovered, expected",
    [
        (Policy.INSTALL, None, Policy.INSTALL),
        (Policy.NETWORK, Policy.INSTALL, Policy.INSTALL),  # the local disk holds writes the server lacks
        (Policy.CACHE, Policy.INSTALL, Policy.INSTALL),
        (Policy.NETWORK, Policy.CACHE, Policy.NETWORK),
        (Policy.INSTALL, Policy.CACHE, Policy.INSTALL),
        (Policy.PASSTHROUGH, Policy.INSTALL, Policy.INSTALL),  # passthrough only through de-virtualization
    ],
)
def test_boot_policy(configured, recovered, expected):
    assert boot_policy(configured, recovered) is expected


def test_every_block_transition_is_in_the_table_and_nothing_else_is_allowed():
    for state in BlockState:
        for event in BlockEvent:
            if (state, event) in BLOCK_TRANSITIONS:
                assert next_block_state(state, event) is BLOCK_TRANSITIONS[(state, event)]
            else:
                with pytest.raises(AssertionError, match="illegal block transition"):
                    next_block_state(state, event)


def test_only_a_fill_or_a_whole_block_guest_write_makes_a_block_present():
    into_present = {key for key, new in BLOCK_TRANSITIONS.items() if new is P and key[0] is not P}
    assert into_present == {(F, BlockEvent.FILL_DONE), (BlockState.WRITING, BlockEvent.WRITE_DONE)}


PARAMETERS = FillParameters(max_in_flight=2, tokens_per_tick=1, token_burst=3, commit_every=4)


def test_demanded_blocks_come_first_and_ignore_the_rate_limit():
    states = [A] * 6
    assert choose_fills(states, [4, 5], [], 0, 0, PARAMETERS, background=True, guest_active=True) == ([4, 5], 0)


def test_background_fill_yields_to_guest_io_and_respects_tokens_and_exclusions():
    states = [P, A, A, A]
    assert choose_fills(states, [], [], 0, 3, PARAMETERS, background=True, guest_active=True) == ([], 0)
    assert choose_fills(states, [], [1], 0, 3, PARAMETERS, background=True, guest_active=False) == ([2, 3], 2)
    assert choose_fills(states, [], [], 0, 1, PARAMETERS, background=True, guest_active=False) == ([1], 1)
    assert choose_fills(states, [], [], 1, 3, PARAMETERS, background=True, guest_active=False) == ([1], 1)
    assert choose_fills(states, [], [], 0, 3, PARAMETERS, background=False, guest_active=False) == ([], 0)


@given(st.lists(st.sampled_from(list(BlockState)), min_size=1, max_size=12), st.integers(0, 12), st.integers(0, 5))
def test_fills_start_only_on_absent_blocks_and_never_exceed_the_window(states, demanded, in_flight):
    demand = [b % len(states) for b in range(demanded)]
    chosen, spent = choose_fills(states, demand, [0], min(in_flight, 2), 5, PARAMETERS, True, False)
    assert all(states[b] is A and b != 0 for b in chosen) and len(set(chosen)) == len(chosen)
    assert len(chosen) <= PARAMETERS.max_in_flight - min(in_flight, 2) and spent <= len(chosen)


def test_tokens_accumulate_per_tick_up_to_the_burst():
    assert refill_tokens(0, 2, PARAMETERS) == 2
    assert refill_tokens(2, 100, PARAMETERS) == 3
    assert refill_tokens(1, -5, PARAMETERS) == 1


G = TESTS.geometry
W = BlockState.WRITING


def test_split_by_block_cuts_at_block_boundaries():
    assert split_by_block(G, 3, 6) == [Piece(0, 3, 1), Piece(1, 4, 4), Piece(2, 8, 1)]


def test_reads_go_local_only_for_present_blocks_and_demand_absent_ones():
    route = route_read(Policy.INSTALL, [P, A, F, P] + [A] * 4, G, 2, 12)
    assert [(s.device, s.lba, s.count, s.offset) for s in route.segments] == [
        (Device.LOCAL, 2, 2, 0),
        (Device.REMOTE, 4, 8, 2),
        (Device.LOCAL, 12, 2, 10),
    ]
    assert route.demanded == [1] and route.wait is None


def test_install_writes_wait_for_busy_or_partly_written_absent_blocks_and_shortcut_whole_ones():
    data = bytes(512 * 4)
    assert route_write(Policy.INSTALL, [F] + [A] * 7, G, 0, data, False).wait is not None
    assert route_write(Policy.INSTALL, [W] + [A] * 7, G, 0, data, False).wait is not None
    partial = route_write(Policy.INSTALL, [A] * 8, G, 1, data[:512], False)
    assert partial.wait is not None and partial.demanded == [0] and not partial.segments
    whole = route_write(Policy.INSTALL, [A] * 8, G, 4, data, False)
    assert whole.whole_blocks == [1] and [s.device for s in whole.segments] == [Device.LOCAL]


def test_cache_writes_go_to_the_server_always_and_locally_only_where_the_block_is_kept():
    data = bytes(512 * 6)
    assert route_write(Policy.CACHE, [P] * 8, G, 0, data, map_may_be_clean=True).needs_dirty_map
    route = route_write(Policy.CACHE, [P, A] + [A] * 6, G, 2, data, map_may_be_clean=False)
    assert [(s.device, s.lba, s.count) for s in route.segments] == [(Device.REMOTE, 2, 6), (Device.LOCAL, 2, 2), (Device.LOCAL, 4, 4)]
    assert route.whole_blocks == [1]


def test_flush_per_policy():
    assert [s.device for s in route_flush(Policy.NETWORK).segments] == [Device.REMOTE] and not route_flush(Policy.NETWORK).needs_commit
    assert [s.device for s in route_flush(Policy.CACHE).segments] == [Device.REMOTE] and route_flush(Policy.CACHE).needs_commit
    assert not route_flush(Policy.INSTALL).segments and route_flush(Policy.INSTALL).needs_commit
    assert [s.device for s in route_flush(Policy.PASSTHROUGH).segments] == [Device.LOCAL]
