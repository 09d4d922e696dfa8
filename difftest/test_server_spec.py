"""The server against `spec.aoe.target` on Hypothesis-generated request streams.

Each client has its own disk on the server (its overlay); the spec models that
as one `spec.aoe.target.AoeTarget` per client whose stores are separate and
whose `TargetState` (config string, mask list, reservation) is one shared
object, because those belong to the target, not to a client. A client the
configuration does not list gets no answer at all. Every response must be the
same bytes, and after every FLUSH CACHE answer the client's durable image (its
overlay log as recovery after a crash would read it) equals the spec store's.
"""

import os
import tempfile
from hashlib import sha256
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from difftest.server.requests import (
    CLIENTS,
    DISK_SECTORS,
    SERVER_MAC,
    base_image,
    requests,
)
from impl.server.catalogue import Catalogue
from impl.server.config import ServerConfig, TargetConfig
from impl.server.disks import DiskRegistry, overlay_path
from impl.server.overlay import Overlay
from impl.server.target import FIRMWARE_TEXT, AoeTarget, identify_model, identify_serial
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.target import AoeTarget as SpecTarget
from spec.aoe.target import Port, TargetState
from spec.aoe.target import TargetConfig as SpecTargetConfig

IMAGE = "base"


def spec_targets(mtu: int) -> dict[bytes, SpecTarget]:
    shared = TargetState()
    targets = {}
    for client in CLIENTS:
        store = MemoryDurableStore(DISK_SECTORS)
        store.write(0, base_image())
        store.flush()
        config = SpecTargetConfig(0, 0, serial=identify_serial(client), model=identify_model(IMAGE), firmware=FIRMWARE_TEXT)
        targets[client] = SpecTarget(config, store, shared)
    return targets


def is_flush(frame: bytes) -> bool:
    return len(frame) >= 36 and frame[19] == 0 and frame[27] in (0xE7, 0xEA)


def durable_image(root: Path, client: bytes) -> bytes:
    """What the server would serve this client after a crash now: its overlay log as recovery reads it."""
    base = base_image()
    path = overlay_path(str(root / "state"), client, IMAGE)
    if not os.path.exists(path):
        return base
    overlay = Overlay(path, sha256(base).hexdigest(), DISK_SECTORS)
    with open(root / "images" / f"{IMAGE}.img", "rb") as f:
        out = bytearray(len(base))
        overlay.read_into(0, DISK_SECTORS, out, f.fileno())
    os.close(overlay.fd)
    return bytes(out)


def spec_durable_image(target: SpecTarget) -> bytes:
    return b"".join(target.store.durable_sector(lba) for lba in range(DISK_SECTORS))


def run_both(frames: list[bytes], mtu: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "images").mkdir()
        (root / "images" / f"{IMAGE}.img").write_bytes(base_image())
        (root / "state").mkdir()
        config = ServerConfig(str(root / "images"), str(root / "state"), mtu=mtu, mac=SERVER_MAC, targets=[TargetConfig(0, 0, IMAGE, frozenset(CLIENTS))])
        disks = DiskRegistry(config.state)
        server = AoeTarget(config, Catalogue(config.images, config.state), disks, SERVER_MAC, mtu)
        spec = spec_targets(mtu)
        port = Port(SERVER_MAC, mtu)
        try:
            for number, frame in enumerate(frames):
                source = frame[6:12]
                expected = spec[source].process_frame(frame, port) if source in spec else []
                got = server.process_frame(frame)
                assert got == expected, f"frame {number} {frame.hex()}: server {[g.hex() for g in got]} spec {[e.hex() for e in expected]}"
                if expected and is_flush(frame) and expected[0][27] == 0x40:
                    assert durable_image(root, source) == spec_durable_image(spec[source]), f"frame {number}: flush_is_durable"
        finally:
            disks.close()


# Shrunk failures found while aligning the server with the spec, kept as regression cases.
@example(frames=[bytes.fromhex("025356000001020000000001" "88a2" "1000" "0000" "00" "00" "00000001" "4000" "0024" "000000000000" "0000")])
@example(frames=[bytes.fromhex("025356000001020000000001" "88a2" "1000" "0000" "00" "02" "00000001" "00010101" "0001020000000001" "0007020000000002")])
@given(frames=st.lists(requests(), min_size=1, max_size=40))
def test_server_answers_as_the_spec_at_mtu_1500(frames):
    run_both(frames, 1500)


@given(frames=st.lists(requests(max_sectors=17), min_size=1, max_size=20))
def test_server_answers_as_the_spec_with_jumbo_frames(frames):
    run_both(frames, 9000)
