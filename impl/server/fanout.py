"""Raw Ethernet shared by worker processes: one AF_PACKET socket each, in one PACKET_FANOUT group.

The kernel hands every received frame to exactly one socket of the group; a
classic BPF program (PACKET_FANOUT_CBPF) chooses which, so the choice is ours:

- an ATA command (AoEr11 §3.1) goes to worker `owner_of(source MAC)`, so all of
  one client's reads and writes reach the same worker and each overlay has
  exactly one owner process;
- every other AoE command (Query Config, MAC mask list, reserve/release,
  unknown ones) goes to worker 0, the only one that changes the per-target
  state those commands set (see `shared_state.py`).

The program returns the last four bytes of the source MAC; the kernel takes it
modulo the number of sockets and picks the socket that joined at that place,
so the sockets join in worker order, before any worker starts.
"""

import ctypes
import socket
import struct

from spec.aoe.constants import AoeCommand

SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_CBPF = 6
SKF_LL_OFF = (1 << 32) - 0x200000  # linux/filter.h: offsets from the link-layer (Ethernet) header
COMMAND_OFFSET = 19  # the AoE header's command byte (AoEr11 §2)
MAC_TAIL_OFFSET = 8  # the source MAC's last four bytes: bytes 6..11 are the source
SOCK_FILTER = struct.Struct("=HBBI")  # code, jump if true, jump if false, k (linux/filter.h)
SOCK_FPROG = struct.Struct("=H6xQ")  # instruction count, pointer to the instructions
BPF_LD_B_ABS, BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K, BPF_RET_A = 0x30, 0x20, 0x15, 0x06, 0x16

PROGRAM = (
    (BPF_LD_B_ABS, 0, 0, SKF_LL_OFF + COMMAND_OFFSET),  # A = the AoE command
    (BPF_JEQ_K, 1, 0, AoeCommand.ATA),                  # ATA: to the client's worker
    (BPF_RET_K, 0, 0, 0),                               # anything else: worker 0
    (BPF_LD_W_ABS, 0, 0, SKF_LL_OFF + MAC_TAIL_OFFSET),  # A = source MAC bytes 2..5
    (BPF_RET_A, 0, 0, 0),                               # the kernel takes A modulo the group size
)


def owner_of(client: bytes, workers: int) -> int:
    """The worker that serves `client`'s ATA commands: what PROGRAM and the kernel compute."""
    return int.from_bytes(client[2:6], "big") % workers


def join_fanout(sockets: list[socket.socket], group: int) -> None:
    """Put the sockets, in this order, in fanout group `group` steered by PROGRAM. Their receive rings
    must exist already: making one re-registers its socket, which moves it within the group."""
    for sock in sockets:
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group & 0xFFFF) | PACKET_FANOUT_CBPF << 16)
    instructions = ctypes.create_string_buffer(b"".join(SOCK_FILTER.pack(*i) for i in PROGRAM))
    sockets[0].setsockopt(SOL_PACKET, PACKET_FANOUT_DATA, SOCK_FPROG.pack(len(PROGRAM), ctypes.addressof(instructions)))  # the kernel copies it now
