"""UDP encapsulation: which sender address may use a client MAC.

Over UDP each datagram carries one whole Ethernet frame (what QEMU's `-netdev
dgram` and `-netdev socket,udp=` send), so a frame's Ethernet source is
whatever its sender wrote there. AoE names a client by that MAC (AoEr11 §2),
and the server keys a client's disk by it, so the MAC must stay with the
sender that uses it: a MAC belongs to the first address that sends a frame
naming it, for as long as that address keeps being heard. Once it has been
silent for TAKEOVER_SECONDS the next address to name the MAC takes it (a QEMU
restarted on a new port gets its disk back). A frame naming a MAC another
address owns is refused: the target acts as if it had never arrived.

The table is bounded: it holds at most CAPACITY MACs. A new MAC when it is
full first makes it forget every MAC silent for the takeover time; if none
is, the new MAC is refused until one is, so a sender inventing MACs cannot
grow it. Pure: the caller passes the time, in seconds of a monotonic clock.
The server's table is impl/server/datapath/peers.c.
"""

from dataclasses import dataclass, field

TAKEOVER_SECONDS = 30.0
CAPACITY = 65536


@dataclass
class PeerTable:
    takeover_seconds: float = TAKEOVER_SECONDS
    capacity: int = CAPACITY
    owners: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)  # MAC: (sender address, last heard)
    refused: int = 0

    def silent(self, heard: float, now: float) -> bool:
        return not now - heard < self.takeover_seconds

    def claim(self, mac: bytes, sender: bytes, now: float) -> bool:
        """Whether `sender` may use `mac` at `now`: True, and the MAC is heard from it; False, refused and counted."""
        owner = self.owners.get(mac)
        if owner is not None and owner[0] != sender and not self.silent(owner[1], now):
            self.refused += 1
            return False
        if owner is None and len(self.owners) >= self.capacity:
            self.owners = {m: o for m, o in self.owners.items() if not self.silent(o[1], now)}
            if len(self.owners) >= self.capacity:
                self.refused += 1
                return False
        self.owners[mac] = (sender, now)
        return True
