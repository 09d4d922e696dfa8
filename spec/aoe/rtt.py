"""The retransmission timeout: Jacobson/Karels round-trip estimation, as the Linux AoE initiator does.

Every retransmission carries a new tag, so every response names exactly one
transmission and every round-trip sample is unambiguous (no Karn's rule needed).
Times are integers in the caller's tick unit.
"""

from dataclasses import dataclass


@dataclass
class RttEstimator:
    initial_rto: int
    min_rto: int
    max_rto: int
    srtt: int | None = None  # smoothed round-trip time; None until the first sample
    deviation: int = 0  # smoothed mean deviation

    def sample(self, rtt: int) -> None:
        """Fold one measured round trip in: gains 1/8 for the mean and 1/4 for the deviation (RFC 6298 §2)."""
        assert rtt >= 0, "a response cannot arrive before its request was sent"
        if self.srtt is None:
            self.srtt, self.deviation = rtt, rtt // 2
            return
        delta = rtt - self.srtt
        self.srtt += delta // 8
        self.deviation += (abs(delta) - self.deviation) // 4

    def rto(self) -> int:
        """2·RTT + 8·deviation, clamped to [min_rto, max_rto]; the initial value before any sample."""
        if self.srtt is None:
            return self.initial_rto
        return max(self.min_rto, min(self.max_rto, 2 * self.srtt + 8 * self.deviation))
