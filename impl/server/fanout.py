"""Frames shared by worker processes: one socket each, in one group, a BPF program choosing the socket.

Raw Ethernet: one AF_PACKET socket per worker in a PACKET_FANOUT group. UDP:
one socket per worker bound to the same address with SO_REUSEPORT. Either way
the kernel hands every received frame to exactly one socket of the group, and
a classic BPF program (PACKET_FANOUT_CBPF, SO_ATTACH_REUSEPORT_CBPF) chooses
which, so the choice is ours:

- an ATA command (AoEr11 §3.1) goes to worker `owner_of(source MAC)`, so all of
  one client's reads and writes reach the same worker and each overlay has
  exactly one owner process;
- except, on raw Ethernet, at a shelf/slot address that only read-only
  targets serve (`shared_addresses`): no client has an overlay there, so an
  ATA command to it goes to the worker its tag names, and one client's reads
  keep every worker busy. UDP steers by MAC everywhere: there each worker
  keeps the table of which address owns a MAC (`spec/aoe/udp_peers.py`), and
  a MAC's frames split between workers would split its ownership too;
- every other AoE command (Query Config, MAC mask list, reserve/release,
  unknown ones) goes to worker 0, the only one that changes the per-target
  state those commands set (see `shared_state.py`).

The program returns the last four bytes of the source MAC modulo the number
of sockets (the fanout group takes the modulo itself), and the kernel picks the
socket that joined at that place, so the sockets join in worker order, before
any worker starts. A UDP datagram's program sees its payload, the Ethernet
frame, from its first byte; a frame too short for a load makes it return 0.
Either group keeps its order only while no member leaves it, so every process
holds a descriptor of every member until it exits (`workers.py`).
"""

import ctypes
import socket
import struct

from spec.aoe.constants import AoeCommand

SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_CBPF = 6
SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h
SKF_LL_OFF = (1 << 32) - 0x200000  # linux/filter.h: offsets from the link-layer (Ethernet) header
MAJOR_OFFSET, MINOR_OFFSET, COMMAND_OFFSET, TAG_OFFSET = 16, 18, 19, 20  # in the AoE header (AoEr11 §2)
MAC_TAIL_OFFSET = 8  # the source MAC's last four bytes: bytes 6..11 are the source
MAX_SHARED_ADDRESSES = 32  # a longer list is not steered by tag: a jump offset is one byte
SOCK_FILTER = struct.Struct("=HBBI")  # code, jump if true, jump if false, k (linux/filter.h)
SOCK_FPROG = struct.Struct("=H6xQ")  # instruction count, pointer to the instructions
BPF_LD_B_ABS, BPF_LD_H_ABS, BPF_LD_W_ABS = 0x30, 0x28, 0x20
BPF_JEQ_K, BPF_RET_K, BPF_RET_A, BPF_MOD_K = 0x15, 0x06, 0x16, 0x94


def shared_addresses(targets) -> list[tuple[int, int]]:
    """The (shelf, slot) addresses every target at which is read-only: any worker may answer there."""
    by_address: dict[tuple[int, int], bool] = {}
    for t in targets:
        by_address[(t.shelf, t.slot)] = by_address.get((t.shelf, t.slot), True) and t.read_only
    shared = sorted(address for address, read_only in by_address.items() if read_only)
    return shared if len(shared) <= MAX_SHARED_ADDRESSES else []


def steering_program(frame_offset: int, modulo: int | None, shared: list[tuple[int, int]] = ()) -> tuple:
    """The program for frames that start `frame_offset` into what it sees; with `modulo`, it takes the
    modulo itself. ATA commands to a `shared` address are steered by their tag, others by their MAC."""
    take_modulo = [] if modulo is None else [(BPF_MOD_K, 0, 0, modulo)]
    by_mac = [(BPF_LD_W_ABS, 0, 0, frame_offset + MAC_TAIL_OFFSET), *take_modulo, (BPF_RET_A, 0, 0, 0)]  # A = source MAC bytes 2..5
    by_tag = [(BPF_LD_W_ABS, 0, 0, frame_offset + TAG_OFFSET), *take_modulo, (BPF_RET_A, 0, 0, 0)]
    match = []
    for number, (shelf, slot) in enumerate(shared):  # 4 instructions each; a match jumps over the rest and over by_mac
        rest = 4 * (len(shared) - number - 1)
        match += [
            (BPF_LD_H_ABS, 0, 0, frame_offset + MAJOR_OFFSET),
            (BPF_JEQ_K, 0, 2, shelf),
            (BPF_LD_B_ABS, 0, 0, frame_offset + MINOR_OFFSET),
            (BPF_JEQ_K, rest + len(by_mac), 0, slot),
        ]
    return (
        (BPF_LD_B_ABS, 0, 0, frame_offset + COMMAND_OFFSET),  # A = the AoE command
        (BPF_JEQ_K, 1, 0, AoeCommand.ATA),                    # ATA: to a worker of its own
        (BPF_RET_K, 0, 0, 0),                                 # anything else: worker 0
        *match,
        *by_mac,
        *by_tag,
    )


def owner_of(client: bytes, workers: int) -> int:
    """The worker that serves `client`'s ATA commands (at an address not shared): what the steering program and the kernel compute."""
    return int.from_bytes(client[2:6], "big") % workers


def attach(sock: socket.socket, level: int, option: int, program: tuple) -> None:
    instructions = ctypes.create_string_buffer(b"".join(SOCK_FILTER.pack(*i) for i in program))
    sock.setsockopt(level, option, SOCK_FPROG.pack(len(program), ctypes.addressof(instructions)))  # the kernel copies it now


def join_fanout(sockets: list[socket.socket], group: int, shared: list[tuple[int, int]] = ()) -> None:
    """Put the sockets, in this order, in fanout group `group` and steer it. Their receive rings
    must exist already: making one re-registers its socket, which moves it within the group."""
    for sock in sockets:
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group & 0xFFFF) | PACKET_FANOUT_CBPF << 16)
    attach(sockets[0], SOL_PACKET, PACKET_FANOUT_DATA, steering_program(SKF_LL_OFF, None, shared))  # the group takes the modulo


def steer_reuseport(sockets: list[socket.socket]) -> None:
    """Steer the SO_REUSEPORT group the UDP sockets joined, in this order, when they were bound: by client MAC."""
    attach(sockets[0], socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, steering_program(0, len(sockets)))
