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
