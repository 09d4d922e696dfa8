"""UDP: a client MAC belongs to the address that used it until that address has been silent for
MAC_TAKEOVER_SECONDS (`server.py`), so a restarted QEMU on a new port gets its disk back and no
other sender reaches it meanwhile. The rule on a real quick-start Server, its clock set by the test."""

import socket

import pytest

from impl.server import server as server_module
from impl.server.config import quick_start
from impl.server.initiator import client_mac
from impl.server.server import MAC_TAKEOVER_SECONDS, Server
from impl.server.transport import SOCKADDR_IN
from tests.server.conftest import SERVER_MAC


def peer(port: int) -> bytes:
    """A UDP sender's address as recvmmsg reports it."""
    return SOCKADDR_IN.pack(socket.AF_INET, port.to_bytes(2, "big"), socket.inet_aton("127.0.0.1")).ljust(16, b"\0")


def frame_from(number: int) -> bytes:
    return SERVER_MAC + client_mac(number) + b"\x88\xa2" + bytes(46)


@pytest.fixture
def clock(monkeypatch):
    """The server's monotonic clock, in seconds, moved by the test."""
    now = [1000.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def server(tmp_path, images):
    config = quick_start(str(images / "base.img"), str(tmp_path / "state"))
    config.listen = ("127.0.0.1", 0)
    started = Server(config)
    yield started
    started.close()


def test_a_mac_stays_with_its_address_while_that_address_is_heard(server, clock):
    owner, other = peer(40001), peer(40002)
    assert server.peer_owns_mac(frame_from(1), owner)
    clock[0] += MAC_TAKEOVER_SECONDS - 1
    assert not server.peer_owns_mac(frame_from(1), other)
    assert server.peer_owns_mac(frame_from(1), owner)  # heard again: its silence starts anew
    clock[0] += MAC_TAKEOVER_SECONDS - 1
    assert not server.peer_owns_mac(frame_from(1), other)
    assert server.refused_frames == 2
    assert server.peer_owns_mac(frame_from(2), other), "another MAC is another client's"


def test_a_silent_address_loses_its_mac_to_the_next_sender(server, clock):
    owner, restarted = peer(40001), peer(40003)
    assert server.peer_owns_mac(frame_from(1), owner)
    clock[0] += MAC_TAKEOVER_SECONDS + 0.1
    assert server.peer_owns_mac(frame_from(1), restarted)
    assert not server.peer_owns_mac(frame_from(1), owner), "the old address is now the other sender"
