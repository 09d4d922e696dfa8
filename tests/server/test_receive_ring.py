"""Raw Ethernet receives through the data path's ring, and the workers' fanout group still sends
each client to its owner (root): making a ring re-registers a socket, which would move it within
the group; the transports make their rings before they join it."""

import json
import os
import subprocess
import sys
import time

import pytest

from difftest.server.netns import ROOT, VethNamespace
from impl.server.fanout import owner_of
from impl.server.initiator import RawLink, ata_body, request_frame
from spec.aoe.constants import AoeCommand
from spec.aoe.target import READ_SECTORS_EXT

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]
WORKERS = 2
CLIENTS = [bytes([2, 0, 0, 0, 0, n]) for n in range(1, 9)]
RECEIVER_SECONDS = 3.0

# In the namespace: one raw transport per worker, joined as workers.py joins them; each frame that
# reaches a transport's ring is handed over by dp_link_serve (no route is registered) and recorded.
RECEIVER = """
import ctypes, json, os, sys, time
from impl.server.datapath import library
from impl.server.fanout import join_fanout
from impl.server.transport import RawTransport
lib = library()
transports = [RawTransport(sys.argv[1]) for _ in range({workers})]
join_fanout([t.sock for t in transports], os.getpid() & 0xFFFF)
server = lib.dp_server_new(17)
seen = {{i: [] for i in range(len(transports))}}
print(json.dumps([t.ring for t in transports]), flush=True)
length = ctypes.c_uint32()
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    for i, t in enumerate(transports):
        index = lib.dp_link_serve(server, t.link, 1_000_000)
        if index >= 0:
            frame = ctypes.string_at(lib.dp_link_frame(t.link, index, ctypes.byref(length)), length.value)
            seen[i].append(frame[6:12].hex())
            lib.dp_link_done(t.link)
print(json.dumps(seen), flush=True)
"""


def test_each_client_reaches_its_owner_through_the_ring():
    with VethNamespace(1500) as net:
        code = RECEIVER.format(workers=WORKERS, seconds=RECEIVER_SECONDS)
        receiver = subprocess.Popen(["ip", "netns", "exec", net.namespace, sys.executable, "-c", code, net.far_interface],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rings = json.loads(receiver.stdout.readline())
        assert rings == [True] * WORKERS, "every raw transport receives through a ring"
        link = RawLink(net.host_interface)
        try:
            server_mac = net.far_mac()
            for round in range(3):
                for tag, client in enumerate(CLIENTS):
                    link.sock.send(request_frame(server_mac, client, 0, 0, AoeCommand.ATA, round * 100 + tag, ata_body(READ_SECTORS_EXT, 0, 1)))
                time.sleep(0.05)
        finally:
            link.close()
        out, err = receiver.communicate(timeout=RECEIVER_SECONDS + 20)
        assert receiver.returncode == 0, err[-2000:]
        seen = {int(worker): macs for worker, macs in json.loads(out).items()}
        for worker, macs in seen.items():
            assert {owner_of(bytes.fromhex(mac), WORKERS) for mac in macs} <= {worker}, f"worker {worker} got another's client"
        assert sorted(mac for macs in seen.values() for mac in macs) == sorted(c.hex() for c in CLIENTS * 3), "every frame, once"


# In the namespace: a raw socket whose ring cannot be mapped (the address space is full): the ring
# must be taken down again, else it would take every frame while the loop reads with recvmmsg.
NO_ROOM_FOR_A_RING = """
import ctypes, resource, socket, sys, time
from impl.server.datapath import library
from impl.server.transport import BATCH_FRAMES, MAX_FRAME_BYTES, RING_FRAMES, SOL_PACKET, PACKET_IGNORE_OUTGOING
from spec.aoe.constants import ETHERTYPE_AOE
lib = library()
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_AOE))
sock.bind((sys.argv[1], ETHERTYPE_AOE))
sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
link = lib.dp_link_new(sock.fileno(), BATCH_FRAMES, MAX_FRAME_BYTES, 60)
server = lib.dp_server_new(17)
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 10), hard))
error = lib.dp_link_use_ring(link, 1522, RING_FRAMES)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print(error, flush=True)
length, deadline, got = ctypes.c_uint32(), time.monotonic() + 5, b""
while not got and time.monotonic() < deadline:
    index = lib.dp_link_serve(server, link, 100_000_000)
    if index >= 0:
        got = ctypes.string_at(lib.dp_link_frame(link, index, ctypes.byref(length)), length.value)
print(got[6:12].hex(), flush=True)
"""


def test_a_ring_that_cannot_be_mapped_is_taken_down_and_recvmmsg_receives():
    with VethNamespace(1500) as net:
        receiver = subprocess.Popen(["ip", "netns", "exec", net.namespace, sys.executable, "-c", NO_ROOM_FOR_A_RING, net.far_interface],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert int(receiver.stdout.readline()) == -12, "mmap of the ring fails: ENOMEM"
        link = RawLink(net.host_interface)
        try:
            for tag in range(20):
                link.sock.send(request_frame(net.far_mac(), CLIENTS[0], 0, 0, AoeCommand.ATA, tag, ata_body(READ_SECTORS_EXT, 0, 1)))
                time.sleep(0.05)
        finally:
            link.close()
        out, err = receiver.communicate(timeout=20)
        assert receiver.returncode == 0, err[-2000:]
        assert out.strip() == CLIENTS[0].hex(), "a frame reached the loop through recvmmsg"
