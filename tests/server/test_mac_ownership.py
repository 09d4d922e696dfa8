"""UDP: a client MAC belongs to the address that used it until that address has been silent for
TAKEOVER_SECONDS (`spec/aoe/udp_peers.py`, `datapath/peers.c`), so a restarted QEMU on a new port gets
its disk back and no other sender reaches it meanwhile. The rule on the data path's table with
the clock set by the test, then on a real quick-start Server's UDP socket."""

import select
import socket

import pytest

from impl.server.config import quick_start
from impl.server.datapath import library
from impl.server.initiator import ata_body, client_mac, parse_response, request_frame
from impl.server.server import Server
from impl.server.transport import SOCKADDR_IN
from spec.aoe.constants import AoeCommand
from spec.aoe.udp_peers import TAKEOVER_SECONDS
from spec.aoe.target import READ_SECTORS_EXT, WRITE_SECTORS_EXT
from tests.server.conftest import SERVER_MAC, image_bytes


def peer(port: int) -> bytes:
    """A UDP sender's address as recvmmsg reports it."""
    return SOCKADDR_IN.pack(socket.AF_INET, port.to_bytes(2, "big"), socket.inet_aton("127.0.0.1"))


class Table:
    """The data path's MAC table (dp_peers), with its clock in the test's hands."""

    def __init__(self, limit: int = 65536):
        self.lib = library()
        self.peers = self.lib.dp_peers_new(TAKEOVER_SECONDS, limit)
        self.now = 1000.0

    def claim(self, number: int, sender: bytes) -> bool:
        return bool(self.lib.dp_peers_claim(self.peers, client_mac(number), sender, len(sender), self.now))

    def refused(self) -> int:
        return self.lib.dp_peers_refusals(self.peers).contents.count

    def close(self) -> None:
        self.lib.dp_peers_free(self.peers)


@pytest.fixture
def table():
    t = Table()
    yield t
    t.close()


def test_a_mac_stays_with_its_address_while_that_address_is_heard(table):
    owner, other = peer(40001), peer(40002)
    assert table.claim(1, owner)
    table.now += TAKEOVER_SECONDS - 1
    assert not table.claim(1, other)
    assert table.claim(1, owner)  # heard again: its silence starts anew
    table.now += TAKEOVER_SECONDS - 1
    assert not table.claim(1, other)
    assert table.refused() == 2
    refusals = table.lib.dp_peers_refusals(table.peers).contents
    assert bytes(refusals.mac) == client_mac(1)
    assert bytes(refusals.owner)[: len(owner)] == owner and bytes(refusals.sender)[: len(other)] == other
    assert table.claim(2, other), "another MAC is another client's"


def test_a_silent_address_loses_its_mac_to_the_next_sender(table):
    owner, restarted = peer(40001), peer(40003)
    assert table.claim(1, owner)
    table.now += TAKEOVER_SECONDS + 0.1
    assert table.claim(1, restarted)
    assert not table.claim(1, owner), "the old address is now the other sender"


def test_a_full_table_forgets_silent_macs_and_refuses_new_ones_while_none_is():
    table = Table(limit=4)
    try:
        for number in range(1, 5):
            assert table.claim(number, peer(40000 + number))
        assert not table.claim(5, peer(40005)), "four MACs heard within the takeover time fill the table"
        assert table.claim(1, peer(40001)), "a MAC the table holds is still served"
        table.now += TAKEOVER_SECONDS - 1
        assert table.claim(1, peer(40001))
        table.now += 2  # MACs 2..4 are silent past the takeover time, MAC 1 is not
        assert table.claim(5, peer(40005))
        assert table.lib.dp_peers_count(table.peers) == 2
        assert not table.claim(1, peer(40009)), "the MAC heard recently was kept"
        for number in range(6, 8):
            assert table.claim(number, peer(40000 + number))
        assert not table.claim(8, peer(40008))
        assert table.refused() == 3
    finally:
        table.close()


@pytest.fixture
def server(tmp_path, images):
    config = quick_start(str(images / "base.img"), str(tmp_path / "state"))
    config.listen = ("127.0.0.1", 0)
    started = Server(config)
    yield started
    started.close()


def answers(sock: socket.socket) -> list:
    """Every answer waiting on `sock`, parsed."""
    found = []
    while select.select([sock], [], [], 0.05)[0]:
        found.append(parse_response(sock.recv(65536)))
    return found


def send(sock: socket.socket, server: Server, number: int, tag: int, body: bytes) -> None:
    sock.sendto(request_frame(SERVER_MAC, client_mac(number), 0, 0, AoeCommand.ATA, tag, body), server.transport.sock.getsockname())


def sector(lba: int) -> bytes:
    return image_bytes(lba + 1)[lba * 512 :]


def test_frames_naming_another_addresss_mac_get_no_answer_and_never_join_its_write_run(server):
    """One batch holds the owner's writes of sectors 0 and 2 and, between them, another sender's
    write of sector 1 under the owner's MAC: the three continue each other on one route, but the
    other sender's frame is dropped, not written as part of the owner's run."""
    owner, intruder = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    try:
        send(owner, server, 1, 100, ata_body(WRITE_SECTORS_EXT, 10, 1, b"R" * 512, write=True))
        server.serve_frames()  # the checked path answers it and registers the client's route
        assert [a.tag for a in answers(owner)] == [100]
        for sock, tag, lba, fill in ((owner, 1, 0, b"O"), (intruder, 2, 1, b"X"), (owner, 3, 2, b"P")):
            send(sock, server, 1, tag, ata_body(WRITE_SECTORS_EXT, lba, 1, fill * 512, write=True))
        server.serve_frames()
        assert answers(intruder) == []
        assert sorted(a.tag for a in answers(owner)) == [1, 3]
        assert server.refused_frames == 1
        for lba, expected in ((0, b"O" * 512), (1, sector(1)), (2, b"P" * 512)):
            send(owner, server, 1, 200 + lba, ata_body(READ_SECTORS_EXT, lba, 1))
            server.serve_frames()
            (answer,) = answers(owner)
            assert answer.data == expected, f"sector {lba}"
    finally:
        owner.close()
        intruder.close()


def test_each_answer_goes_back_to_its_own_sender(server):
    """Two clients on two addresses in one batch, reads answered by the data path: each gets its own sectors."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for number, sock in enumerate(socks, 1):
            send(sock, server, number, 0, ata_body(READ_SECTORS_EXT, 0, 1))
        server.serve_frames()  # the checked path registers both routes
        for sock in socks:
            assert [a.tag for a in answers(sock)] == [0]
        for round_ in range(1, 4):
            for number, sock in enumerate(socks, 1):
                send(sock, server, number, round_, ata_body(READ_SECTORS_EXT, 7 * number + round_, 1))
            server.serve_frames()
            for number, sock in enumerate(socks, 1):
                (answer,) = answers(sock)
                assert answer.tag == round_ and answer.data == sector(7 * number + round_)
        assert library().dp_route_count(server.target.datapath) == 2, "the data path answered the rounds"
    finally:
        for sock in socks:
            sock.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_senders_are_answered_and_keep_their_macs(tmp_path, images, caplog):
    config = quick_start(str(images / "base.img"), str(tmp_path / "state"))
    config.listen = ("::1", 0)
    server = Server(config)
    owner, intruder = (socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(2))
    try:
        assert server.transport.address.startswith("[::1]:")
        send(owner, server, 1, 1, ata_body(WRITE_SECTORS_EXT, 3, 1, b"6" * 512, write=True))
        send(owner, server, 1, 2, ata_body(READ_SECTORS_EXT, 3, 1))
        send(intruder, server, 1, 3, ata_body(READ_SECTORS_EXT, 3, 1))
        server.serve_frames()
        assert [(a.tag, a.data) for a in answers(owner)] == [(1, b""), (2, b"6" * 512)]
        assert answers(intruder) == [] and server.refused_frames == 1
        port = owner.getsockname()[1]
        assert f"owner=[::1]:{port} sender=[::1]:{intruder.getsockname()[1]}" in caplog.text
    finally:
        owner.close()
        intruder.close()
        server.close()
