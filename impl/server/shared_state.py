"""The per-target state initiators set, shared by worker processes: MAC mask lists and reservations.

Only worker 0 receives the commands that change them (Query Config, MAC mask
list, reserve/release: `fanout.py` steers them there), so the config string
lives in worker 0 alone, and worker 0 publishes every target's mask list and
reservations here after a frame that may have changed them. The other workers
enforce them on their clients' ATA commands (AoEr11 §3.3, §3.4) and reload
them at the start of every batch when the sequence number moved.

An anonymous shared mapping made before the workers fork, guarded as a
sequence lock: the writer makes the sequence odd, writes, makes it even; a
reader copies between two equal even readings. One writer, so no lock.
"""

import ctypes
import mmap
import os
import struct

from spec.aoe.constants import MASK_LIST_CAPACITY

from .frames import MAC_BYTES

SEQUENCE = struct.Struct("=Q")
COUNTS = struct.Struct("=HH")  # mask list entries, reservations
MAX_RESERVATIONS = 255  # AoEr11 §3.4: the MAC count is one byte
TARGET_BYTES = COUNTS.size + (MASK_LIST_CAPACITY + MAX_RESERVATIONS) * MAC_BYTES


class SharedTargetState:
    def __init__(self, target_count: int):
        self.size = SEQUENCE.size + target_count * TARGET_BYTES
        self.map = mmap.mmap(-1, self.size)  # MAP_SHARED | MAP_ANONYMOUS: the forked workers see one copy
        self.sequence_word = ctypes.c_uint64.from_buffer(self.map)  # the data path watches it between batches
        self.sequence_address = ctypes.addressof(self.sequence_word)
        self.published = b""
        self.seen = 0

    def encode(self, targets) -> bytes:
        parts = []
        for t in targets:
            entries = COUNTS.pack(len(t.mask_list), len(t.reservations)) + b"".join(t.mask_list) + b"".join(t.reservations)
            parts.append(entries.ljust(TARGET_BYTES, b"\0"))
        return b"".join(parts)

    def publish(self, targets) -> None:
        """Worker 0: make the targets' mask lists and reservations what the other workers see."""
        blob = self.encode(targets)
        if blob == self.published:
            return
        sequence = SEQUENCE.unpack_from(self.map)[0]
        SEQUENCE.pack_into(self.map, 0, sequence + 1)  # odd: being written
        self.map[SEQUENCE.size : SEQUENCE.size + len(blob)] = blob
        SEQUENCE.pack_into(self.map, 0, sequence + 2)
        self.published = blob

    def refresh(self, targets) -> None:
        """Other workers: take the published state into `targets` when it changed since the last call."""
        sequence = SEQUENCE.unpack_from(self.map)[0]
        if sequence == self.seen:
            return
        while True:
            if sequence & 1 == 0:
                blob = self.map[SEQUENCE.size : self.size]
                again = SEQUENCE.unpack_from(self.map)[0]
                if again == sequence:
                    break
                sequence = again
            else:
                os.sched_yield()  # worker 0 is between its two writes
                sequence = SEQUENCE.unpack_from(self.map)[0]
        for number, t in enumerate(targets):
            base = number * TARGET_BYTES
            masks, reservations = COUNTS.unpack_from(blob, base)
            at = base + COUNTS.size
            t.mask_list = [blob[at + i * MAC_BYTES : at + (i + 1) * MAC_BYTES] for i in range(masks)]
            at += masks * MAC_BYTES
            t.reservations = [blob[at + i * MAC_BYTES : at + (i + 1) * MAC_BYTES] for i in range(reservations)]
        self.seen = sequence

    def close(self) -> None:
        del self.sequence_word  # the map cannot close while a view of it exists
        self.map.close()
