"""The steering program (`fanout.py`) run by the kernel: which worker's socket each frame reaches.

The raw fanout group's program, with read-only ("shared") addresses, attached to an SO_REUSEPORT
group of three UDP sockets on one loopback port (no root needed; there the program takes the modulo
itself, where the fanout group takes it for the program). Hypothesis frames, some at shared addresses,
some not ATA, some cut short: each must reach the socket the rule names: an ATA command at a shared
address by its tag, any other ATA command by its client MAC (`owner_of`), everything else worker 0.
"""

import select
import socket

from hypothesis import example, given
from hypothesis import strategies as st

from impl.server.fanout import (
    COMMAND_OFFSET,
    MAJOR_OFFSET,
    MINOR_OFFSET,
    SO_ATTACH_REUSEPORT_CBPF,
    TAG_OFFSET,
    attach,
    owner_of,
    steering_program,
)
from impl.server.initiator import ata_body, client_mac, request_frame
from spec.aoe.constants import MAC_BYTES, AoeCommand
from spec.aoe.target import READ_SECTORS_EXT
from tests.server.conftest import SERVER_MAC

WORKERS = 3
SHARED = [(0, 0), (2, 3), (7, 1), (7, 4)]
ADDRESSES = st.one_of(st.sampled_from(SHARED), st.tuples(st.sampled_from([0, 1, 2, 7, 0xFFFF]), st.sampled_from([0, 1, 3, 4, 0xFF])))
FRAMES = st.tuples(st.integers(1, 1000), ADDRESSES, st.sampled_from([AoeCommand.ATA, AoeCommand.ATA, AoeCommand.QUERY_CONFIG]),
                   st.integers(0, (1 << 32) - 1), st.one_of(st.none(), st.integers(0, 30)))


def expected_worker(frame: bytes) -> int:
    """The rule, with the program's one quirk: a load past the frame's end makes it return 0."""
    if len(frame) <= COMMAND_OFFSET or frame[COMMAND_OFFSET] != AoeCommand.ATA:
        return 0
    if (int.from_bytes(frame[MAJOR_OFFSET:MINOR_OFFSET], "big"), frame[MINOR_OFFSET]) not in SHARED:
        return owner_of(frame[MAC_BYTES : 2 * MAC_BYTES], WORKERS)
    if len(frame) < TAG_OFFSET + 4:
        return 0
    return int.from_bytes(frame[TAG_OFFSET : TAG_OFFSET + 4], "big") % WORKERS


class Group:
    def __init__(self):
        self.sockets = []
        port = 0
        for _ in range(WORKERS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            port = s.getsockname()[1]
            self.sockets.append(s)
        attach(self.sockets[0], socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, steering_program(0, WORKERS, SHARED))
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.address = ("127.0.0.1", port)

    def reached(self, frame: bytes) -> int:
        """The index of the socket the frame reached."""
        self.sender.sendto(frame, self.address)
        ready, _, _ = select.select(self.sockets, [], [], 5)
        assert len(ready) == 1, "exactly one socket of the group gets each frame"
        index = self.sockets.index(ready[0])
        assert ready[0].recv(1 << 16) == frame
        return index

    def close(self):
        for s in [*self.sockets, self.sender]:
            s.close()


GROUP = None


def group() -> Group:
    global GROUP
    if GROUP is None:
        GROUP = Group()  # one group for every example: the kernel's program does not change
    return GROUP


@example(frame=(1, (0, 1), AoeCommand.ATA, 0, 20))  # cut after the command: still steered by MAC, which it holds
@example(frame=(1, (2, 3), AoeCommand.ATA, 5, 22))  # at a shared address, cut inside the tag: worker 0
@given(frame=FRAMES)
def test_every_frame_reaches_the_worker_the_rule_names(frame):
    client, (shelf, slot), command, tag, cut = frame
    whole = request_frame(SERVER_MAC, client_mac(client), shelf, slot, command, tag, ata_body(READ_SECTORS_EXT, 0, 1))
    data = whole[:cut] if cut is not None else whole
    assert group().reached(data) == expected_worker(data)
