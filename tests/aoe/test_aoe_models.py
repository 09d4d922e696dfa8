"""The models around AoE: clock, faulty network, crashing server."""

import random

import pytest

from model.aoe_server import AoeServerModel
from model.clock import Clock
from model.network import Faults, FaultyNetwork
from spec.aoe.constants import SECTOR_BYTES, ConfigCommand
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.frames import decode_frame
from spec.aoe.target import Port, TargetConfig
from tests.aoe.target_helpers import HOST_A, HOST_B, SHELF, SLOT, TARGET_MAC, ata, config

BROADCAST = b"\xff" * 6


def frame_to(destination: bytes, source: bytes, body: bytes = b"x") -> bytes:
    return destination + source + b"\x88\xa2" + body


def test_clock_only_moves_forward():
    clock = Clock()
    assert clock.advance(5) == 5 and clock.advance_to(9) == 9
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(3)


def network(faults=Faults(), seed=1, mtu=1500) -> FaultyNetwork:
    net = FaultyNetwork(faults, random.Random(seed), mtu=mtu)
    for mac in (HOST_A, HOST_B, TARGET_MAC):
        net.attach(mac)
    return net


def test_a_perfect_network_delivers_padded_frames_to_the_addressee_only():
    net = network()
    net.send(frame_to(TARGET_MAC, HOST_A), 0)
    assert net.receive(HOST_B, 0) == []
    (got,) = net.receive(TARGET_MAC, 0)
    assert len(got) == 60 and got.startswith(frame_to(TARGET_MAC, HOST_A)) and got[17:] == bytes(43)


def test_broadcast_reaches_everyone_but_the_sender():
    net = network()
    net.send(frame_to(BROADCAST, HOST_A), 0)
    assert [len(net.receive(m, 0)) for m in (HOST_A, HOST_B, TARGET_MAC)] == [0, 1, 1]


def test_oversized_frames_are_dropped():
    net = network(mtu=1500)
    net.send(frame_to(TARGET_MAC, HOST_A, bytes(1501)), 0)
    assert net.receive(TARGET_MAC, 10) == [] and net.stats.oversized == 1


def test_faults_are_deterministic_from_the_seed():
    def run(seed):
        net = network(Faults(drop=0.3, duplicate=0.3, min_delay=0, max_delay=20), seed)
        for i in range(50):
            net.send(frame_to(TARGET_MAC, HOST_A, bytes([i])), i)
        return net.receive(TARGET_MAC, 1000), net.stats

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_the_network_drops_duplicates_delays_and_reorders():
    net = network(Faults(drop=0.2, duplicate=0.2, min_delay=3, max_delay=40), seed=3)
    for i in range(200):
        net.send(frame_to(TARGET_MAC, HOST_A, bytes([i])), i)
    assert net.receive(TARGET_MAC, 2) == [], "nothing arrives before min_delay"
    order = [f[14] for f in net.receive(TARGET_MAC, 10_000)]
    assert net.stats.dropped > 0 and net.stats.duplicated > 0
    assert len(order) != len(set(order)), "some frame arrived twice"
    assert order != sorted(order), "some frames overtook others"
    assert net.next_delivery() is None


def server(buffer_count=2, service_time=0, sectors=8) -> AoeServerModel:
    config = TargetConfig(SHELF, SLOT, buffer_count=buffer_count)
    return AoeServerModel(config, Port(TARGET_MAC, 1500), MemoryDurableStore(sectors), service_time)


def sector(fill: int) -> bytes:
    return bytes([fill]) * SECTOR_BYTES


def test_the_server_queue_drops_what_exceeds_the_buffer_count_and_serves_in_order():
    s = server(buffer_count=2, service_time=5)
    for tag in range(3):
        s.deliver(ata(0x20, tag=tag), 0)
    assert s.dropped_full == 1
    assert s.poll(4) == [] and s.next_completion() == 5
    assert [decode_frame(r).header.tag for r in s.poll(10)] == [0, 1]


def test_a_crash_loses_unflushed_writes_the_queue_and_the_target_state():
    s = server()
    s.deliver(ata(0x30, lba=1, data=sector(1)), 0)
    s.deliver(ata(0xE7), 0)
    s.deliver(ata(0x30, lba=2, data=sector(2)), 0)
    s.deliver(config(ConfigCommand.FORCE_SET, b"owner"), 0)
    s.poll(0)
    s.poll(0)
    s.deliver(ata(0x20, lba=1), 0)
    s.crash()
    assert s.poll(100) == [] and s.next_completion() is None
    s.deliver(ata(0x20, lba=1), 100)
    assert s.poll(100) == [], "a server that is down hears nothing"
    s.restart(200)
    assert s.store.read(1, 2) == sector(1) + sector(0)
    assert s.target.state.config_string == b"", "the config string was held in memory"
    s.deliver(ata(0x20, lba=1), 200)
    assert decode_frame(s.poll(200)[0]).argument.data == sector(1)


def test_a_crash_may_let_some_cached_sectors_reach_the_medium():
    s = server()
    for lba in range(4):
        s.deliver(ata(0x30, lba=lba, data=sector(lba + 1)), 0)
        s.poll(0)
    s.crash(lambda lba: lba % 2 == 1)
    assert [s.store.durable_sector(lba) for lba in range(4)] == [sector(0), sector(2), sector(0), sector(4)]
