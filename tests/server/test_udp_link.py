"""The UDP transport's batch loop (datapath/link.c with datapath/peers.c) answers as the checked path would.

A real UDP socket on loopback (`UdpTransport`) served with the loop of `Server.serve_link`, several
sender sockets, and Hypothesis bursts mixing reads, writes (often continuing each other, so the
data path writes runs), IDENTIFY (Python's) and cut frames, from senders that own a client MAC
and senders that name another sender's. The MAC rule's specification (spec/aoe/udp_peers.py; the
test's clock never reaches the takeover time) and a checked twin over a copy of the images say what
every sender must get back, in order, and what every disk must hold.
"""

import socket
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from impl.server.initiator import parse_response
from impl.server.transport import UdpTransport
from spec.aoe.constants import MAC_BYTES
from spec.aoe.udp_peers import PeerTable
from tests.server.conftest import make_target
from tests.server.test_datapath_answers import IDENTIFY, READ_EXT, WRITE_EXT, A, B
from tests.server.test_datapath_link import ata, serve_until_idle
from tests.server.test_datapath_ring import disk_contents

SENDERS = 3
SOURCE_END = 2 * MAC_BYTES  # a frame this long names its client (the Ethernet source)
CONTINUE = -1  # an LBA that starts where the frame before ended: writes that continue each other make a run
OPERATIONS = st.one_of(
    st.tuples(st.sampled_from([READ_EXT, WRITE_EXT, WRITE_EXT]), st.sampled_from([CONTINUE, CONTINUE, CONTINUE, 0, 7, 14]), st.integers(1, 2), st.none()),
    st.just((IDENTIFY, 0, 1, None)),
    st.tuples(st.just(READ_EXT), st.just(0), st.just(1), st.integers(0, 40)),  # a frame cut after this many bytes
)
BURSTS = st.lists(st.tuples(st.integers(0, SENDERS - 1), st.sampled_from([A, A, B]), OPERATIONS), min_size=1, max_size=30)
WRITE = (WRITE_EXT, CONTINUE, 1, None)


def drain(sock: socket.socket) -> list:
    """Every answer waiting on `sock`, parsed, in the order they came."""
    answers = []
    while True:
        try:
            answers.append(parse_response(sock.recv(1 << 16)).key())
        except BlockingIOError:
            return answers


@example(burst=[(0, A, WRITE), (0, A, WRITE), (1, A, WRITE), (0, A, WRITE)])  # an intruder's frame that would continue A's run
@given(burst=BURSTS)
def test_a_burst_from_several_senders_is_answered_as_the_checked_path_would(images_factory, burst):
    images = images_factory()
    with tempfile.TemporaryDirectory() as directory:
        served, checked = (make_target(Path(directory) / name, images) for name in ("served", "checked"))
        transport = UdpTransport("127.0.0.1", 0)
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SENDERS)]
        try:
            for sender in senders:
                sender.bind(("127.0.0.1", 0))
                sender.setblocking(False)
            rule = PeerTable()
            expected: list[list] = [[] for _ in senders]
            end = 0
            for tag, (sender, client, (command, lba, count, cut)) in enumerate(burst):
                lba = end if lba == CONTINUE else lba
                end = lba + count
                frame = ata(command, lba, count, src=client, tag=tag)[:cut]
                senders[sender].sendto(frame, transport.sock.getsockname())
                if len(frame) >= SOURCE_END and not rule.claim(frame[MAC_BYTES:SOURCE_END], bytes([sender]), 0.0):
                    continue  # another address's client: dropped
                expected[sender] += [parse_response(r).key() for r in checked.process_frame_checked(frame)]
            serve_until_idle(transport.lib, transport.link, served)
            assert [drain(sender) for sender in senders] == expected
            assert transport.refusals().count == rule.refused
            for client in (A, B):
                assert disk_contents(served, client) == disk_contents(checked, client)
        finally:
            for sender in senders:
                sender.close()
            transport.close()
            for target in (served, checked):
                target.disks.close()
                target.close()
