"""A veth pair with one end in a network namespace of its own (root only), and servers run inside it.

The initiator stays in the test's namespace on `host_interface`; the server
(ours or vblade) runs in `namespace` on `far_interface`. Everything is removed
on close, even when a test fails.
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)



def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL after 10 s: a process started for a test or a benchmark is gone after this."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

class VethNamespace:
    def __init__(self, mtu: int = 1500):
        suffix = os.urandom(3).hex()
        self.namespace = f"storvisor-{suffix}"
        self.host_interface = f"svh{suffix}"
        self.far_interface = f"svn{suffix}"
        self.processes: list[subprocess.Popen] = []
        ip("netns", "add", self.namespace)
        try:
            ip("link", "add", self.host_interface, "mtu", str(mtu), "type", "veth", "peer", "name", self.far_interface, "mtu", str(mtu))
            ip("link", "set", self.far_interface, "netns", self.namespace)
            ip("link", "set", self.host_interface, "up", "promisc", "on")
            ip("-n", self.namespace, "link", "set", self.far_interface, "up")
            ip("-n", self.namespace, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def far_mac(self) -> bytes:
        out = subprocess.run(["ip", "-n", self.namespace, "-o", "link", "show", self.far_interface], capture_output=True, text=True, check=True).stdout
        return bytes.fromhex(out.split("link/ether ")[1].split()[0].replace(":", ""))

    def start(self, argv: list[str], log_path: str) -> subprocess.Popen:
        log = open(log_path, "w")
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *argv], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start_vblade(self, image: str, log_path: str, shelf: int = 0, slot: int = 0) -> subprocess.Popen:
        return self.start_vblade_with([], image, log_path, shelf, slot)

    def start_vblade_with(self, options: list[str], image: str, log_path: str, shelf: int = 0, slot: int = 0) -> subprocess.Popen:
        process = self.start(["vblade", *options, str(shelf), str(slot), self.far_interface, image], log_path)
        time.sleep(0.3)  # vblade opens its socket at once; it has no readiness signal
        return process

    def start_server(self, image: str, state: str, log_path: str, extra: list[str] = ()) -> subprocess.Popen:
        argv = [sys.executable, "-m", "impl.cli", "serve", "--image", image, "--state", state, "--transport", "raw", "--interface", self.far_interface, *extra]
        process = self.start(argv, log_path)
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(state, "control.sock")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {open(log_path).read()}")
            time.sleep(0.02)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        stop_process(process)

    def close(self) -> None:
        for process in self.processes:
            self.stop(process)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.host_interface], capture_output=True, timeout=20)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
