"""One server per state directory: an exclusive `flock` on `STATE/lock` held while the server runs.

The operator's commands use the control socket when the lock is held, and
take the lock themselves to work on the files directly when no server runs.
"""

import fcntl
import os

LOCK_NAME = "lock"


class StateBusy(Exception):
    """Another process holds the state directory."""


class StateLock:
    def __init__(self, state: str):
        os.makedirs(state, exist_ok=True)
        self.path = os.path.join(state, LOCK_NAME)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise StateBusy(f"state directory {state} is in use by another storvisor process (pid {holder})") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self.fd)
