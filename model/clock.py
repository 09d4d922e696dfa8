"""A clock the simulation owns: time is an integer tick count that only moves when told to.

The spec never reads a clock; a harness advances this one and hands `now` to
the initiator, the network and the server, so every run is reproducible.
"""

from dataclasses import dataclass


@dataclass
class Clock:
    now: int = 0

    def advance(self, ticks: int) -> int:
        """Move forward by `ticks` (never backwards) and return the new time."""
        if ticks < 0:
            raise ValueError("a clock never runs backwards")
        self.now += ticks
        return self.now

    def advance_to(self, when: int) -> int:
        """Move forward to `when`, which must not be in the past."""
        return self.advance(when - self.now)
