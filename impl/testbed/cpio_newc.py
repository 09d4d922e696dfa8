"""A writer for the cpio "newc" format the kernel unpacks as an initramfs, without root.

Owners, device nodes and times are written as data, so the archive needs no privileges
and is byte-for-byte reproducible (every mtime is 0). Format: the kernel's
Documentation/driver-api/early-userspace/buffer-format.rst.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

NEWC_MAGIC = b"070701"
TRAILER_NAME = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory, a regular file, a symlink or a character device."""

    name: str  # path inside the archive, without a leading slash
    mode: int  # file type and permission bits, as in st_mode
    data: bytes = b""  # file contents, or the symlink's target
    rdev_major: int = 0
    rdev_minor: int = 0


def directory(name: str) -> Entry:
    return Entry(name, stat.S_IFDIR | 0o755)


def regular_file(name: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int) -> Entry:
    return Entry(name, stat.S_IFCHR | 0o600, rdev_major=major, rdev_minor=minor)


def _pad4(length: int) -> bytes:
    """newc aligns every header+name and every body to 4 bytes."""
    return b"\0" * (-length % 4)


def _member(inode: int, entry: Entry) -> bytes:
    name = entry.name.encode() + b"\0"
    fields = (
        inode, entry.mode, 0, 0,  # ino, mode, uid root, gid root
        2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
        0, len(entry.data),  # mtime, filesize
        0, 0,  # devmajor, devminor of the containing filesystem: unused
        entry.rdev_major, entry.rdev_minor,
        len(name), 0,  # namesize including the NUL, check (unused by newc)
    )
    header = NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)
    head = header + name
    return head + _pad4(len(head)) + entry.data + _pad4(len(entry.data))


def archive(entries: list[Entry]) -> bytes:
    """The newc archive of `entries`, in order, closed by the trailer."""
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate archive members: {duplicates}")
    members = [_member(inode, entry) for inode, entry in enumerate(entries, start=1)]
    members.append(_member(0, Entry(TRAILER_NAME, 0)))
    return b"".join(members)
