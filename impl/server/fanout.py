"""Frames shared by worker processes: one socket each, in one group, a BPF program choosing the socket.

Raw Ethernet: one AF_PACKET socket per worker in a PACKET_FANOUT group. UDP:
one socket per worker bound to the same address with SO_REUSEPORT. Either way
the kernel hands every received frame to exactly one socket of the group, and
a classic BPF program (PACKET_FANOUT_CBPF, SO_ATTACH_REUSEPORT_CBPF) chooses
which, so the choice is ours:

- an ATA command (AoEr11 §3.1) goes to worker `owner_of(source MAC)`, so all of
  one client's reads and writes reach the same worker and each overlay has
  exactly one owner process;
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
COMMAND_OFFSET = 19  # the AoE header's command byte (AoEr11 §2)
MAC_TAIL_OFFSET = 8  # the source MAC's last four bytes: bytes 6..11 are the source
SOCK_FILTER = struct.Struct("=HBBI")  # code, jump if true, jump if false, k (linux/filter.h)
SOCK_FPROG = struct.Struct("=H6xQ")  # instruction count, pointer to the instructions
BPF_LD_B_ABS, BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K, BPF_RET_A, BPF_MOD_K = 0x30, 0x20, 0x15, 0x06, 0x16, 0x94


def steering_program(frame_offset: int, modulo: int | None) -> tuple:
    """The program for frames that start `frame_offset` into what it sees; with `modulo`, it takes the modulo itself."""
    take_modulo = () if modulo is None else ((BPF_MOD_K, 0, 0, modulo),)
    return (
        (BPF_LD_B_ABS, 0, 0, frame_offset + COMMAND_OFFSET),  # A = the AoE command
        (BPF_JEQ_K, 1, 0, AoeCommand.ATA),                    # ATA: to the client's worker
        (BPF_RET_K, 0, 0, 0),                                 # anything else: worker 0
        (BPF_LD_W_ABS, 0, 0, frame_offset + MAC_TAIL_OFFSET),  # A = source MAC bytes 2..5
        *take_modulo,
        (BPF_RET_A, 0, 0, 0),
    )


PROGRAM = steering_program(SKF_LL_OFF, None)  # the fanout group takes A modulo its size


def owner_of(client: bytes, workers: int) -> int:
    """The worker that serves `client`'s ATA commands: what PROGRAM and the kernel compute."""
    return int.from_bytes(client[2:6], "big") % workers


def attach(sock: socket.socket, level: int, option: int, program: tuple) -> None:
    instructions = ctypes.create_string_buffer(b"".join(SOCK_FILTER.pack(*i) for i in program))
    sock.setsockopt(level, option, SOCK_FPROG.pack(len(program), ctypes.addressof(instructions)))  # the kernel copies it now


def join_fanout(sockets: list[socket.socket], group: int) -> None:
    """Put the sockets, in this order, in fanout group `group` steered by PROGRAM. Their receive rings
    must exist already: making one re-registers its socket, which moves it within the group."""
    for sock in sockets:
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group & 0xFFFF) | PACKET_FANOUT_CBPF << 16)
    attach(sockets[0], SOL_PACKET, PACKET_FANOUT_DATA, PROGRAM)


def steer_reuseport(sockets: list[socket.socket]) -> None:
    """Steer the SO_REUSEPORT group the UDP sockets joined, in this order, when they were bound."""
    attach(sockets[0], socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, steering_program(0, len(sockets)))
