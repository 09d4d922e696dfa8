"""The real `storvisor serve` process over UDP: quick start, clear errors, operator commands while
serving, many requests outstanding, and `kill -9` during a write stream."""

import json
import os
import re
import resource
import signal
import socket

import pytest

from impl.server.initiator import Initiator, UdpLink, ata_body, client_mac, request_frame
from spec.aoe.constants import SECTOR_BYTES, AoeCommand, AoeError, AtaErrorBit, AtaStatus
from spec.aoe.target import READ_SECTORS_EXT, WRITE_SECTORS_EXT
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, run_cli
from tests.server.write_stream import STREAM_SECTORS, check_sectors, stream_writes_then_kill

BASE = image_bytes(IMAGE_SECTORS)


def test_quick_start_serves_reads_and_writes_and_stops_cleanly(server_process):
    server = server_process()
    client = server.initiator(1)
    assert client.read(0, 2) == BASE[:1024]
    client.write(4, b"q" * 1024)
    assert client.read(4, 2) == b"q" * 1024
    assert server.initiator(2).read(4, 2) == BASE[4 * 512 : 6 * 512]
    for lba in range(100):
        client.read(lba, 1)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    events = [re.search(r"event=(\S+)", line).group(1) for line in server.log().splitlines()]
    assert events == ["serving", "client-disk", "client-disk", "stopped"], "quiet by default: a line per client, none per request"


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
    """Four times the advertised buffer count (AoEr11 §3.2) of reads, then of full-frame writes, at
    once: the socket queues them and every one is answered, correctly."""
    server = server_process()
    client = server.initiator(1)
    query = client.query_config()
    buffers, sectors = query.fields[0], query.fields[2]
    mac = client_mac(1)
    many = 4 * buffers
    for tag in range(many):
        lba = tag % (IMAGE_SECTORS - sectors)
        client.send_only(request_frame(SERVER_MAC, mac, 0, 0, AoeCommand.ATA, tag, ata_body(READ_SECTORS_EXT, lba, sectors)))
    responses = {r.tag: r for r in client.collect(2.0)}
    assert sorted(responses) == list(range(many))
    for tag, r in responses.items():
        lba = tag % (IMAGE_SECTORS - sectors)
        assert r.data == BASE[lba * SECTOR_BYTES : (lba + sectors) * SECTOR_BYTES]
    written = {}
    assert many * sectors <= IMAGE_SECTORS, "the writes need sectors of their own: outstanding ones are not ordered"
    for tag in range(many, 2 * many):
        lba = (tag - many) * sectors
        data = tag.to_bytes(4, "big") * (sectors * SECTOR_BYTES // 4)
        written[lba] = data
        client.send_only(request_frame(SERVER_MAC, mac, 0, 0, AoeCommand.ATA, tag, ata_body(WRITE_SECTORS_EXT, lba, sectors, data, write=True)))
    responses = {r.tag: r for r in client.collect(2.0)}
    assert sorted(responses) == list(range(many, 2 * many))
    assert all(r.fields[3] == AtaStatus.DRDY for r in responses.values()), "every write succeeded"
    for lba, data in written.items():
        assert client.read(lba, sectors) == data


def test_a_configuration_file_assigns_images_addresses_and_clients(tmp_path, images, server_process):
    """`serve --config`: each target's image at its shelf/slot, only to its clients; a read-only
    target refuses writes (ATA ABRT) and its image is never written."""
    config = tmp_path / "storvisor.toml"
    config.write_text(f"""[server]
images = "{images}"
buffer_count = 8

[[target]]
shelf = 3
slot = 1
image = "base"
clients = ["02:00:00:00:00:01"]

[[target]]
shelf = 3
slot = 2
image = "other"
clients = ["*"]
read_only = true
""")
    other = (images / "other.img").read_bytes()
    server = server_process("--config", str(config))
    links = {number: UdpLink(("127.0.0.1", server.port)) for number in (1, 2)}  # one address per client

    def client(number: int, slot: int, **options) -> Initiator:
        return Initiator(links[number], client_mac(number), SERVER_MAC, shelf=3, slot=slot, **options)

    listed = client(1, 1)
    assert listed.query_config().fields[0] == 8
    assert listed.read(5, 1) == BASE[5 * SECTOR_BYTES : 6 * SECTOR_BYTES]
    listed.write(5, b"w" * SECTOR_BYTES)
    assert listed.read(5, 1) == b"w" * SECTOR_BYTES
    with pytest.raises(Exception, match="no response"):
        client(2, 1, timeout=0.2, tries=2).read(5, 1)  # not listed at shelf 3 slot 1: no answer at all
    with pytest.raises(Exception, match="no response"):
        client(1, 0, timeout=0.2, tries=2).read(5, 1)  # no target at shelf 3 slot 0
    for number in (1, 2):
        everyone = client(number, 2)
        assert everyone.read(5, 1) == other[5 * SECTOR_BYTES : 6 * SECTOR_BYTES]
        refused = everyone.ata(WRITE_SECTORS_EXT, 5, 1, b"r" * SECTOR_BYTES, write=True)
        assert (refused.fields[3] & AtaStatus.ERR, refused.fields[1]) == (AtaStatus.ERR, AtaErrorBit.ABRT)
        assert everyone.read(5, 1) == other[5 * SECTOR_BYTES : 6 * SECTOR_BYTES]
    assert (images / "other.img").read_bytes() == other and (images / "base.img").read_bytes() == BASE


def test_kill_9_during_a_write_stream_loses_no_acknowledged_write(server_process):
    """The page cache outlives the process: every write answered before the kill survives, flushed
    or not, over flushed sectors too; no sector goes back to an older write; and a recovered overlay
    takes a second stream and a second kill the same way."""
    server = server_process()
    before = [BASE[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] for lba in range(IMAGE_SECTORS)]
    client = server.initiator(1)
    for first in (0, 1 << 20):
        last_acknowledged, sent, unflushed = stream_writes_then_kill(server.process, client, first, 0.5)
        assert len(last_acknowledged) == STREAM_SECTORS and unflushed > 0, "the kill landed mid-stream, after unflushed writes"
        server = server_process(state=server.state, port=server.port)
        client = server.initiator(1)  # one address per server process: a new one would be an impostor for 30 s
        before = check_sectors(client, IMAGE_SECTORS, before, last_acknowledged, sent)


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
    with pytest.raises(Exception, match="no response"):
        impostor.write(7, b"i" * 512)
    with pytest.raises(Exception, match="no response"):
        impostor.flush()
    assert owner.read(7, 1) == b"s" * 512, "the refused write reached the owner's disk"
    assert "event=mac-claimed-by-other-address" in server.log()


def test_an_overlay_over_a_changed_base_is_unavailable_until_reset(server_process, images):
    server = server_process()
    server.initiator(1).write(0, b"v" * 512)
    server.stop()
    image = images / "base.img"
    image.write_bytes(b"new base " * (IMAGE_SECTORS * 512 // 9) + bytes(IMAGE_SECTORS * 512 % 9))
    restarted = server_process(state=server.state, port=server.port)
    client = restarted.initiator(1)
    response = client.ata(READ_SECTORS_EXT, 0, 1)
    assert response.error == AoeError.DEVICE_UNAVAILABLE
    client.ata(READ_SECTORS_EXT, 0, 1)
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
