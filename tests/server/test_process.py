"""The real `storvisor serve` process over UDP: quick start, clear errors, operator commands while
serving, many requests outstanding, and `kill -9` during a write stream."""

import json
import os
import resource
import signal
import socket

import pytest

from impl.server.initiator import ata_body, client_mac, request_frame
from spec.aoe.constants import AoeCommand, AoeError
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, run_cli

BASE = image_bytes(IMAGE_SECTORS)


def test_quick_start_serves_reads_and_writes_and_stops_cleanly(server_process):
    server = server_process()
    client = server.initiator(1)
    assert client.read(0, 2) == BASE[:1024]
    client.write(4, b"q" * 1024)
    assert client.read(4, 2) == b"q" * 1024
    assert server.initiator(2).read(4, 2) == BASE[4 * 512 : 6 * 512]
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    assert "event=serving" in server.log()


def test_operator_commands_while_serving(server_process, tmp_path, images):
    server = server_process()
    client = server.initiator(1)
    client.write(0, b"c" * 1024)
    client.flush()
    listing = run_cli("clients", "--state", server.state, "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = json.loads(listing.stdout)
    assert (row["client"], row["image"], row["overlay_sectors"], row["requests"]) == ("02:00:00:00:00:01", "base", 2, 2)
    assert row["last_activity"] > 0
    committed = run_cli("commit", "02:00:00:00:00:01", "golden", "--state", server.state)
    assert committed.returncode == 0, committed.stderr
    assert (images / "golden.img").read_bytes() == b"c" * 1024 + BASE[1024:]
    (images / "broken.img").write_bytes(b"x" * 100)
    listing = run_cli("images", "--state", server.state).stdout
    assert "name=golden" in listing and "name=broken  problem=" in listing and "not a positive multiple of 512" in listing
    for lba in (2, 3):  # a record each
        client.write(lba, b"d" * 512)
    compacted = run_cli("compact", "02:00:00:00:00:01", "--state", server.state, "--json")
    assert compacted.returncode == 0, compacted.stderr
    sizes = json.loads(compacted.stdout)
    assert sizes["overlay_journal_bytes"] < sizes["overlay_journal_bytes_before"] and sizes["overlay_sectors"] == 4
    assert client.read(0, 2) + client.read(2, 2) == b"c" * 1024 + b"d" * 1024
    assert run_cli("reset", "02:00:00:00:00:01", "--state", server.state).returncode == 0
    assert client.read(0, 2) == BASE[:1024]
    unknown = run_cli("reset", "02:00:00:00:00:07", "--state", server.state)
    assert unknown.returncode == 1 and "has overlays over no image" in unknown.stderr
    assert run_cli("commit", "02:00:00:00:00:01", "golden", "--state", server.state).stderr.strip().endswith("exists already")


def test_operator_commands_without_a_server(tmp_path, images, server_process):
    server = server_process()
    server.initiator(3).write(1, b"o" * 512)
    server.stop()
    state = server.state
    shown = run_cli("client", "02:00:00:00:00:03", "--image", str(images / "base.img"), "--state", state, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["overlay_sectors"] == 1
    assert run_cli("reset", "02:00:00:00:00:03", "--image", str(images / "base.img"), "--state", state).returncode == 0
    assert json.loads(run_cli("client", "02:00:00:00:00:03", "--image", str(images / "base.img"), "--state", state, "--json").stdout)[0]["overlay_sectors"] == 0


def test_clear_errors(tmp_path, images, server_process):
    missing = run_cli("serve", "--image", str(tmp_path / "nope.img"), "--state", str(tmp_path / "s1"))
    assert missing.returncode == 1 and "nope.img: no such image file" in missing.stderr
    server = server_process()
    busy = run_cli("serve", "--image", str(images / "base.img"), "--state", str(tmp_path / "s2"), "--listen", f"127.0.0.1:{server.port}")
    assert busy.returncode == 1 and "is busy" in busy.stderr
    same_state = run_cli("serve", "--image", str(images / "base.img"), "--state", server.state, "--listen", "127.0.0.1:0")
    assert same_state.returncode == 1 and "in use by another storvisor process" in same_state.stderr
    no_interface = run_cli("serve", "--image", str(images / "base.img"), "--state", str(tmp_path / "s3"), "--transport", "raw", "--interface", "nosuch0")
    assert no_interface.returncode == 1 and "'nosuch0' does not exist" in no_interface.stderr
    bad_mtu = run_cli("serve", "--image", str(images / "base.img"), "--state", str(tmp_path / "s4"), "--mtu", "100")
    assert bad_mtu.returncode == 1 and "--mtu: must be between 576 and 65535, got 100" in bad_mtu.stderr
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nimages = "images"\n\n[[target]]\nimage = "base"\nclients = ["*"]\nslot = 300\n')
    bad = run_cli("serve", "--config", str(config))
    assert bad.returncode == 1 and "bad.toml:7: target[0].slot: must be between 0 and 254" in bad.stderr
    config.write_text('[server]\nimages = "images"\nstate = "state-bad"\n\n[[target]]\nimage = "missing"\nclients = ["*"]\n')
    unknown_image = run_cli("serve", "--config", str(config))
    assert unknown_image.returncode == 1 and "bad.toml:6: target[0].image: no usable image named 'missing'" in unknown_image.stderr


def test_more_requests_outstanding_than_buffers_are_all_answered(server_process):
    """Buffer count 16 is advertised; 64 at once are queued by the socket and answered, each correctly."""
    server = server_process()
    client = server.initiator(1)
    mac = client_mac(1)
    for tag in range(64):
        lba = tag % (IMAGE_SECTORS - 1)
        client.send_only(request_frame(SERVER_MAC, mac, 0, 0, AoeCommand.ATA, tag, ata_body(0x24, lba, 2)))
    responses = {r.tag: r for r in client.collect(2.0)}
    assert sorted(responses) == list(range(64))
    for tag, r in responses.items():
        lba = tag % (IMAGE_SECTORS - 1)
        assert r.data == BASE[lba * 512 : (lba + 2) * 512]


def test_kill_9_during_a_write_stream_loses_no_acknowledged_write(server_process):
    """Every acknowledged write survives the process (it is in the OS), and no sector holds anything else."""
    server = server_process()
    client = server.initiator(1)
    mac = client_mac(1)
    acknowledged = {}
    for i in range(200):
        lba = (i * 7) % IMAGE_SECTORS
        client.write(lba, i.to_bytes(2, "big") * 256)
        acknowledged[lba] = i
        if i % 50 == 49:
            client.flush()
    in_flight = {}
    for i in range(200, 232):  # sent, not waited for: the kill lands in the middle of them
        lba = (i * 7) % IMAGE_SECTORS
        client.send_only(request_frame(SERVER_MAC, mac, 0, 0, AoeCommand.ATA, i, ata_body(0x34, lba, 1, i.to_bytes(2, "big") * 256, write=True)))
        in_flight.setdefault(lba, set()).add(i)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    restarted = server_process(state=server.state, port=server.port)
    reader = restarted.initiator(1)
    for lba in range(IMAGE_SECTORS):
        sector = reader.read(lba, 1)
        allowed = {BASE[lba * 512 : (lba + 1) * 512]} if lba not in acknowledged else {acknowledged[lba].to_bytes(2, "big") * 256}
        allowed |= {i.to_bytes(2, "big") * 256 for i in in_flight.get(lba, ())}
        assert sector in allowed, f"sector {lba} holds neither its acknowledged write nor a write in flight"


def test_malformed_frames_neither_crash_nor_stall_other_clients(server_process):
    """A stream of garbage from one sender is dropped or answered with errors while a good client is served."""
    import random

    server = server_process()
    good = server.initiator(1)
    noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rng = random.Random(5)
    header = SERVER_MAC + client_mac(9) + b"\x88\xa2"
    for round_ in range(20):
        for _ in range(50):
            kind = rng.randrange(4)
            if kind == 0:
                junk = rng.randbytes(rng.randrange(0, 80))
            elif kind == 1:
                junk = header + rng.randbytes(rng.randrange(0, 60))
            elif kind == 2:
                junk = header + bytes([rng.choice([0x10, 0x20, 0x18])]) + rng.randbytes(9) + rng.randbytes(rng.randrange(0, 1200))
            else:
                junk = header + rng.randbytes(9000)
            noise.sendto(junk, ("127.0.0.1", server.port))
        assert good.read(round_, 1) == BASE[round_ * 512 : (round_ + 1) * 512]
    noise.close()
    assert server.process.poll() is None


def test_a_udp_sender_cannot_claim_another_clients_mac(server_process):
    server = server_process()
    owner = server.initiator(1)
    owner.write(7, b"s" * 512)
    impostor = server.initiator(1, timeout=0.2, tries=2)  # same MAC, another UDP address
    with pytest.raises(Exception, match="no response"):
        impostor.read(7, 1)
    assert owner.read(7, 1) == b"s" * 512
    assert "event=mac-claimed-by-other-address" in server.log()


def test_an_overlay_over_a_changed_base_is_unavailable_until_reset(server_process, images):
    server = server_process()
    server.initiator(1).write(0, b"v" * 512)
    server.stop()
    image = images / "base.img"
    image.write_bytes(b"new base " * (IMAGE_SECTORS * 512 // 9) + bytes(IMAGE_SECTORS * 512 % 9))
    restarted = server_process(state=server.state, port=server.port)
    client = restarted.initiator(1)
    response = client.ata(0x24, 0, 1)
    assert response.error == AoeError.DEVICE_UNAVAILABLE
    client.ata(0x24, 0, 1)
    assert restarted.log().count("event=overlay-unusable") == 1
    reset = run_cli("reset", "02:00:00:00:00:01", "--state", restarted.state)
    assert reset.returncode == 0, reset.stderr
    assert client.read(0, 1) == image.read_bytes()[:512]


def test_verbose_says_why_a_frame_got_no_answer(server_process, images):
    server = server_process("--image", str(images / "base.img"), "-v")
    client = server.initiator(1)
    client.send_only(request_frame(SERVER_MAC, client_mac(1), 7, 0, AoeCommand.QUERY_CONFIG, 1, bytes(8)))
    assert client.collect(0.3) == []
    client.read(0, 1)  # answered after it, so the drop has been logged
    assert "event=dropped reason='no target at this shelf/slot is assigned to the client' source=02:00:00:00:00:01" in server.log()


def test_a_client_whose_socket_number_is_past_fd_setsize_still_gets_answers(server_process):
    """select(2) refuses descriptors from 1024 on; a long-running test process has that many open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), max(hard, 2048)))  # raising the hard limit needs root, as the suite runs
    server = server_process()
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        client = server.initiator(1)
        assert client.link.fileno() >= 1024
        assert client.read(0, 2) == BASE[:1024]
    finally:
        for descriptor in filler:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
