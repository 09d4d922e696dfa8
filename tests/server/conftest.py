"""Fixtures for the server tests: images, an in-process target, a real server process."""

import os
import socket
import subprocess
import sys
import time

import pytest

from impl.server.catalogue import Catalogue
from impl.server.config import ServerConfig, TargetConfig
from impl.server.disks import DiskRegistry
from impl.server.initiator import Initiator, UdpLink, client_mac
from impl.server.target import AoeTarget

IMAGE_SECTORS = 256
SERVER_MAC = bytes.fromhex("025356000001")
CLIENT_A, CLIENT_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")  # two clients of the in-process targets
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def image_bytes(sectors: int, seed: int = 1) -> bytes:
    """Recognisable content: every sector starts with its LBA and the seed."""
    return b"".join((f"lba {lba} seed {seed} ".encode() * 40)[:512] for lba in range(sectors))


@pytest.fixture
def images(tmp_path):
    directory = tmp_path / "images"
    directory.mkdir()
    (directory / "base.img").write_bytes(image_bytes(IMAGE_SECTORS))
    (directory / "other.img").write_bytes(image_bytes(IMAGE_SECTORS, seed=2))
    return directory


def make_target(tmp_path, images, targets=None, mtu=1500, buffer_count=16):
    targets = targets or [TargetConfig(0, 0, "base", None)]
    config = ServerConfig(images=str(images), state=str(tmp_path / "state"), mtu=mtu, buffer_count=buffer_count, targets=targets, mac=SERVER_MAC)
    os.makedirs(config.state, exist_ok=True)
    disks = DiskRegistry(config.state)
    return AoeTarget(config, Catalogue(config.images, config.state), disks, SERVER_MAC, mtu)


@pytest.fixture
def target(tmp_path, images):
    t = make_target(tmp_path, images)
    yield t
    t.disks.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`storvisor serve` in a child process, with its stderr kept for assertions."""

    def __init__(self, args, state, port=None):
        self.port = port or free_udp_port()
        self.state = state
        self.stderr_path = os.path.join(os.path.dirname(state), f"server-{self.port}.log")
        self.stderr = open(self.stderr_path, "w+")
        command = [sys.executable, "-m", "impl.cli", "serve", *args, "--state", state, "--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(state, "control.sock")):
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log()}")
            time.sleep(0.02)

    def initiator(self, number: int = 1, **options) -> Initiator:
        return Initiator(UdpLink(("127.0.0.1", self.port)), client_mac(number), SERVER_MAC, **options)

    def log(self) -> str:
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


@pytest.fixture
def server_process(tmp_path, images):
    started = []

    def start(*args, state=None, port=None):
        process = ServerProcess(list(args) or ["--image", str(images / "base.img")], state or str(tmp_path / "state"), port)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "impl.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def images_factory(tmp_path_factory):
    """Fresh image directories for tests that run many Hypothesis examples."""

    def make():
        directory = tmp_path_factory.mktemp("images")
        (directory / "base.img").write_bytes(image_bytes(IMAGE_SECTORS))
        (directory / "other.img").write_bytes(image_bytes(IMAGE_SECTORS, seed=2))
        return directory

    return make
