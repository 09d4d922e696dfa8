"""The operator's commands: list images and clients, reset a client, commit a client's overlay.

The same code runs inside a running server (reached through the control
socket, see `control.py`) and, when no server runs, directly in the
`storvisor` command under the state directory's lock (see `statelock.py`).
"""

import os

from spec.aoe.constants import SECTOR_BYTES

from .catalogue import Catalogue, image_name
from .disks import OVERLAY_DIRECTORY, OVERLAY_SUFFIX, DiskRegistry, overlay_path
from .frames import format_mac, parse_mac
from .overlay import OverlayError, fsync_directory


class OperationError(Exception):
    """An operator command that cannot be carried out; nothing was changed."""


class Operations:
    def __init__(self, catalogue: Catalogue, disks: DiskRegistry, read_only_images: set[str], owns=None):
        """`owns(client)`: whether this process serves the client (a worker of several sees only its own)."""
        self.catalogue = catalogue
        self.disks = disks
        self.read_only_images = read_only_images
        self.owns = owns or (lambda client: True)

    def images(self) -> list[dict]:
        self.catalogue.reload()
        unusable = [{"name": name, "problem": problem} for name, problem in self.catalogue.problems.items()]
        return [image.describe() for image in self.catalogue.images.values()] + unusable

    def overlays(self) -> list[tuple[bytes, str]]:
        """(client, image name) of every overlay file in the state directory."""
        found = []
        root = os.path.join(self.disks.state, OVERLAY_DIRECTORY)
        for client_hex in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            for filename in sorted(os.listdir(os.path.join(root, client_hex))):
                if filename.endswith(OVERLAY_SUFFIX) and self.owns(bytes.fromhex(client_hex)):
                    found.append((bytes.fromhex(client_hex), filename[: -len(OVERLAY_SUFFIX)]))
        return found

    def clients(self) -> list[dict]:
        """A row per overlay, and one per client counted here without one. A worker of several also counts
        requests of clients another worker serves (worker 0 answers every command but ATA): those rows
        say "foreign", and the parent adds them to the owner's (`workers.merge_foreign`)."""
        rows = []
        seen = set()
        for client, name in self.overlays():
            seen.add(client)
            rows.append(self._describe(client, name))
        for client, counters in self.disks.counters.items():
            if client not in seen:
                rows.append({"client": format_mac(client), "image": None, **counters.describe(), **({} if self.owns(client) else {"foreign": True})})
        return rows

    def _describe(self, client: bytes, name: str) -> dict:
        row = {"client": format_mac(client), "image": name}
        try:
            disk = self.disks.open(client, self.catalogue.get(name), read_only=False)
            row.update(disk.describe())
        except Exception as e:  # an unusable overlay is reported, not fatal to the listing
            row["problem"] = str(e)
        counters = self.disks.counters.get(client)
        row.update(counters.describe() if counters else {"last_activity": None})
        return row

    def client(self, mac: str) -> list[dict]:
        client = self._mac(mac)
        rows = [self._describe(c, name) for c, name in self.overlays() if c == client]
        if not rows:
            raise OperationError(f"client {mac} has no overlay")
        return rows

    def _mac(self, mac: str) -> bytes:
        try:
            return parse_mac(mac)
        except ValueError as e:
            raise OperationError(str(e)) from None

    def _image_of(self, client: bytes, image: str | None) -> str:
        names = [name for c, name in self.overlays() if c == client]
        if image is not None:
            if image not in names:
                raise OperationError(f"client {format_mac(client)} has no overlay over image {image!r} (it has: {', '.join(names) or 'none'})")
            return image
        if len(names) != 1:
            raise OperationError(f"client {format_mac(client)} has overlays over {', '.join(names) or 'no image'}; name one with --image")
        return names[0]

    def reset(self, mac: str, image: str | None = None) -> dict:
        """Drop the client's overlay: it sees its base image again from its next request."""
        client = self._mac(mac)
        name = self._image_of(client, image)
        try:
            disk = self.disks.open(client, self.catalogue.get(name), read_only=False)
        except OverlayError:
            return self._remove_unusable_overlay(client, name)
        overlay = disk.ensure_overlay()
        # commits start from the server's one loop, as resets do: none can begin between check and reset
        if overlay.lock.locked():
            raise OperationError(f"a commit of client {mac} is in progress; reset it afterwards")
        overlay.reset()
        return disk.describe()

    def _remove_unusable_overlay(self, client: bytes, name: str) -> dict:
        """An overlay that cannot be opened (e.g. made over an older base image) is deleted outright."""
        path = overlay_path(self.disks.state, client, name)
        os.unlink(path)
        fsync_directory(os.path.dirname(path))
        self.disks.forget(client, name)
        return {"client": format_mac(client), "image": name, "removed": path}

    def compact(self, mac: str, image: str | None = None) -> dict:
        """Rewrite the client's allocation journal as one record per run of sectors (a checkpoint)."""
        client = self._mac(mac)
        name = self._image_of(client, image)
        disk = self.disks.open(client, self.catalogue.get(name), read_only=False)
        overlay = disk.ensure_overlay()
        if overlay.lock.locked():
            raise OperationError(f"a commit of client {mac} is in progress; compact it afterwards")
        before = overlay.journal_bytes()
        overlay.compact()
        return {**disk.describe(), "overlay_journal_bytes_before": before}

    def commit(self, mac: str, new_name: str, image: str | None = None) -> dict:
        """Write base image + the client's overlay as a new read-only base image `new_name`."""
        return self.start_commit(mac, new_name, image)()

    def start_commit(self, mac: str, new_name: str, image: str | None = None):
        """The checks and the start of the copy, here, in the server's loop: the new image is the
        client's disk as it is now. Returns the copy, which may run in a thread of its own while the
        client goes on writing (a write first copies the chunk it changes). The overlay stays locked
        against reset and compaction until the copy is done."""
        client = self._mac(mac)
        name = self._image_of(client, image)
        if image_name(new_name + ".img") != new_name or "/" in new_name or new_name.startswith("."):
            raise OperationError(f"{new_name!r} is not a usable image name (letters, digits, '-', '_', '.')")
        if new_name in self.catalogue.images:
            raise OperationError(f"an image named {new_name!r} exists already")
        base = self.catalogue.get(name)
        disk = self.disks.open(client, base, read_only=False)
        directory = self.catalogue.image_directory()
        path = os.path.join(directory, new_name + ".img")
        partial = path + ".partial"
        overlay = disk.ensure_overlay()
        if not overlay.lock.acquire(blocking=False):
            raise OperationError(f"a commit of client {format_mac(client)} is in progress; commit again afterwards")
        fd = -1
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, base.sectors * SECTOR_BYTES)
            sectors = overlay.sectors_written()
            copy_overlay = overlay.commit_into(disk.base_fd, fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            overlay.lock.release()
            raise

        def copy() -> dict:
            try:
                try:
                    copy_overlay()
                except OSError as e:  # the operator must see the new image named: its filesystem may be the full one
                    raise OSError(e.errno, f"{partial}: copying client {format_mac(client)}'s disk into it: {e.strerror}") from None
                finally:
                    overlay.lock.release()
                os.fsync(fd)
            except BaseException:
                os.unlink(partial)  # nothing half-copied is left for the catalogue to find
                raise
            finally:
                os.close(fd)
            os.chmod(partial, 0o444)
            os.rename(partial, path)
            fsync_directory(directory)
            self.catalogue.reload()
            return {"image": new_name, "path": path, "from": name, "client": format_mac(client), "overlay_sectors": sectors}

        return copy
