"""recvmmsg/sendmmsg batches: every waiting frame in one call, answers out in one call, in order."""

import socket

from impl.server.mmsg import FrameBatches
from impl.server.transport import SOCKADDR_IN, UdpTransport, peer_text


def test_a_burst_is_received_and_answered_in_order():
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.setblocking(False)
    client.settimeout(2)
    batches = FrameBatches(server.fileno(), count=4, receive_bytes=64, send_bytes=128)
    assert batches.receive() == []
    frames = [bytes([i]) * (10 + i) for i in range(6)]
    for frame in frames:
        client.send(frame)
    first, second = batches.receive(), batches.receive()
    assert [f for f, _ in first] == frames[:4] and [f for f, _ in second] == frames[4:]
    for i, (frame, _) in enumerate(first):
        batches.outgoing[i][: len(frame) * 2] = frame * 2
        batches.set_length(i, len(frame) * 2)
    batches.send(len(first))
    assert [client.recv(256) for _ in first] == [f * 2 for f in frames[:4]]
    server.close()
    client.close()


def test_a_frame_longer_than_the_buffer_is_cut_not_merged():
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.setblocking(False)
    batches = FrameBatches(server.fileno(), count=2, receive_bytes=8, send_bytes=8)
    client.send(b"0123456789")
    client.send(b"ab")
    assert batches.receive() == [(b"01234567", None), (b"ab", None)]
    server.close()
    client.close()


def test_udp_answers_go_back_to_each_sender():
    transport = UdpTransport("127.0.0.1", 0)
    transport.open_batches(1024)
    host, port = transport.sock.getsockname()
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for number, sender in enumerate(senders):
            sender.settimeout(2)
            sender.sendto(bytes([number]) * 20, (host, port))
        received = []
        while len(received) < len(senders):
            received += transport.receive_batch()
        for i, (frame, peer) in enumerate(received):
            assert SOCKADDR_IN.unpack(peer)[0] == socket.AF_INET
            transport.outgoing[i][:3] = b"re" + frame[:1]
            transport.queue(i, 3, peer)
        transport.send_queued(len(received))
        for number, sender in enumerate(senders):
            assert sender.recv(64) == b"re" + bytes([number])
            assert peer_text(next(p for f, p in received if f[0] == number)) == "127.0.0.1:%d" % sender.getsockname()[1]
    finally:
        for sender in senders:
            sender.close()
        transport.close()
