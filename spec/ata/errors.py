"""The one kind of failure the standard does not define: a state that cannot happen.

Behaviour the standard defines — ABRT, IDNF, UNC, a bus-master error — is
ordinary output in registers and status bits, never an exception. What
raises here is a bug in the spec, in a backing store, or in the harness.
"""


class CannotHappen(Exception):
    """The device reached a state its own rules exclude; always a bug, never guest behaviour."""


class InvariantViolation(CannotHappen):
    """A named device invariant (spec/ata/invariants.py) is false."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"invariant {name} violated" + (f": {detail}" if detail else ""))
        self.name = name
