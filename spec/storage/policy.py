"""Policies: where the guest's data lives, and which changes are legal at run time.

| policy | reads of a present block | reads of an absent block | writes | FLUSH CACHE makes durable |
|---|---|---|---|---|
| network | server | server | server | server (AoE FLUSH CACHE) |
| cache | local disk | server, then filled | server and, for present or whole blocks, local disk | server, local data, map |
| install | local disk | server, then filled | local disk (absent blocks are filled first) | local data, map |
| passthrough | local disk | — (every block present) | local disk | local disk |

In *cache* the server is authoritative and the local disk only repeats it; in
*install* the local disk is authoritative for every present block and the
server's image is read-only. That asymmetry decides the transition table: once
a guest write lives only on the local disk (install), neither network nor cache
may take over, because the server does not have that write.
"""

from enum import Enum


class Policy(Enum):
    NETWORK = "network"
    CACHE = "cache"
    INSTALL = "install"
    PASSTHROUGH = "passthrough"


N, C, I, P = Policy.NETWORK, Policy.CACHE, Policy.INSTALL, Policy.PASSTHROUGH

# The legal run-time transitions, with why each is safe; every pair not listed is refused.
POLICY_TRANSITIONS: dict[tuple[Policy, Policy], str] = {
    (N, C): "the server holds every write; the cache starts empty",
    (N, I): "the server holds every write; the install copies them",
    (C, N): "the server holds every write; the local copy is dropped",
    (C, I): "present blocks equal the server's; the install continues from them",
    (I, P): "only by de-virtualization: every block present, map durable, device quiescent",
}

USES_LOCAL_DISK = frozenset({C, I, P})  # policies that read or write the local disk for the guest
FILLS_IN_BACKGROUND = frozenset({I})  # policies whose fill engine streams the image without demand
FILLS_ON_DEMAND = frozenset({C, I})  # policies that copy a block the guest touched (copy-on-read)
LOCAL_IS_AUTHORITATIVE = frozenset({I, P})  # a present block's local data may differ from the server's


class PolicyError(Exception):
    """A refused policy change; nothing changed."""


def is_legal_transition(current: Policy, wanted: Policy) -> bool:
    return (current, wanted) in POLICY_TRANSITIONS


def check_transition(current: Policy, wanted: Policy) -> None:
    """Refuse a transition that is not in the table, with a message that says why."""
    if current is wanted:
        raise PolicyError(f"already in policy {current.value}")
    if not is_legal_transition(current, wanted):
        raise PolicyError(f"{current.value} -> {wanted.value} is not a legal transition")
    if wanted is P:
        raise PolicyError("passthrough is entered only by de-virtualization")


def boot_policy(configured: Policy, recovered: Policy | None) -> Policy:
    """The policy at start: the configured one, unless the persisted map forbids the change."""
    if recovered is None or recovered is configured:
        return configured
    # Passthrough is reached from a map only through de-virtualization, never by configuration.
    if is_legal_transition(recovered, configured) and configured is not P:
        return configured
    # An install map means the local disk holds writes the server lacks: keep installing.
    return recovered
