"""Several worker processes on raw Ethernet (root): clients sharded by MAC, one owner per overlay.

A real server with `--workers 2` on a veth pair whose far end sits in a network
namespace; clients whose MACs the fanout program sends to different workers.
"""

import os
import signal
import time

import pytest

from difftest.server.netns import VethNamespace
from impl.server.control import request
from impl.server.fanout import owner_of
from impl.server.initiator import Initiator, RawLink, Timeout, client_mac
from spec.aoe.constants import SECTOR_BYTES, AoeError, HeaderFlag, MaskCommand, MaskDirective, ReserveCommand

from tests.server.conftest import IMAGE_SECTORS, image_bytes

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

WORKERS = 2
ZERO_CLIENT, ONE_CLIENT = client_mac(2), client_mac(1)  # served by worker 0 and worker 1


class ShardedServer:
    def __init__(self, tmp_path):
        self.net = VethNamespace(1500)
        self.image = tmp_path / "disk.img"
        self.image.write_bytes(image_bytes(IMAGE_SECTORS))
        self.state = str(tmp_path / "state")
        self.log = str(tmp_path / "server.log")
        self.process = self.net.start_server(str(self.image), self.state, self.log, ["--workers", str(WORKERS)])
        self.mac = self.net.far_mac()
        self.links = []

    def client(self, mac: bytes) -> Initiator:
        link = RawLink(self.net.host_interface)
        self.links.append(link)
        return Initiator(link, mac, self.mac, timeout=0.3, tries=3)

    def workers(self) -> list[int]:
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
            return [int(pid) for pid in f.read().split()]

    def close(self):
        for link in self.links:
            link.close()
        self.net.close()


@pytest.fixture
def server(tmp_path):
    s = ShardedServer(tmp_path)
    yield s
    s.close()


def test_clients_of_different_workers_are_served_and_operated_on(server):
    assert owner_of(ZERO_CLIENT, WORKERS) == 0 and owner_of(ONE_CLIENT, WORKERS) == 1
    assert len(server.workers()) == WORKERS
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    zero.write(0, b"Z" * SECTOR_BYTES)
    one.write(0, b"O" * SECTOR_BYTES)
    assert zero.read(0, 1) == b"Z" * SECTOR_BYTES
    assert one.read(0, 1) == b"O" * SECTOR_BYTES
    listed = request(server.state, "clients")
    assert listed["ok"], listed
    assert [(row["client"], row["overlay_sectors"]) for row in listed["result"]] == [("02:00:00:00:00:01", 1), ("02:00:00:00:00:02", 1)]
    assert request(server.state, "client", mac="02:00:00:00:00:02")["result"][0]["overlay_sectors"] == 1
    assert request(server.state, "reset", mac="02:00:00:00:00:01")["ok"]
    assert one.read(0, 1) == image_bytes(1)
    assert zero.read(0, 1) == b"Z" * SECTOR_BYTES
    bad = request(server.state, "reset", mac="not a mac")
    assert not bad["ok"] and "not a MAC address" in bad["error"]
    assert request(server.state, "images")["ok"]
    server.process.terminate()  # SIGTERM: every worker flushes and stops, then the parent
    assert server.process.wait(15) == 0
    assert not os.path.exists(os.path.join(server.state, "control.sock"))
    assert "event=worker-exited" not in open(server.log).read()


def test_mask_list_and_reservation_set_on_one_worker_hold_on_the_other(server):
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]
    # AoEr11 §3.3: a non-empty mask list admits only its initiators, whichever worker serves them
    edit = zero.mask(MaskCommand.EDIT, [(MaskDirective.ADD, ZERO_CLIENT)])
    assert not edit.flags & HeaderFlag.ERROR
    with pytest.raises(Timeout):
        one.read(1, 1)
    zero.mask(MaskCommand.EDIT, [(MaskDirective.DELETE, ZERO_CLIENT)])
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]
    # AoEr11 §3.4: a reservation held by another initiator refuses the command
    zero.reserve(ReserveCommand.SET, [ZERO_CLIENT])
    refused = one.ata(0x24, 1, 1)
    assert refused.flags & HeaderFlag.ERROR and refused.error == AoeError.TARGET_RESERVED
    zero.reserve(ReserveCommand.FORCE_SET, [])
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]


def test_a_worker_that_dies_stops_the_server(server):
    zero = server.client(ZERO_CLIENT)
    zero.write(3, b"k" * SECTOR_BYTES)
    os.kill(server.workers()[1], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.process.returncode == 1
    assert "event=worker-exited worker=1" in open(server.log).read()
    assert not os.path.exists(os.path.join(server.state, "control.sock"))
