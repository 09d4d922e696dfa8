"""Two storage worlds side by side: the spec's manager and initiator, and the C core's.

Each world is tests/storage/world.World (local disk model, spec AoE target on a wire the test controls,
ideal disk, invariant catalogue); the C one swaps in the C storage manager and the C AoE initiator.
`Pair` applies every event to both and `compare` requires the same observable state: the manager's
state, every frame on the wire, the local disk's requests and media, and the guest's results.
"""

from difftest.binding.aoe import CoreAoeInitiator
from difftest.binding.storage import COMMIT_STEPS, KINDS, POLICIES, PURPOSES, REJECTIONS, CoreStorageManager
from spec.aoe.initiator import InitiatorConfig
from spec.ata.backing_store import StoreResult
from spec.storage.devirtualize import DevirtualizeError
from spec.storage.manager import Device, StorageManager
from spec.storage.policy import PolicyError
from tests.storage.links import CLIENT_MAC, MAJOR, MINOR, TIMING, AoeLink
from tests.storage.world import World


class CoreAoeLink(AoeLink):
    """The same wire and target, with the C AoE initiator as the client."""

    def _new_initiator(self, now: int) -> CoreAoeInitiator:
        initiator = CoreAoeInitiator(InitiatorConfig(CLIENT_MAC, MAJOR, MINOR, timing=TIMING), now=now)
        self.device = initiator
        self.pump()
        return initiator


class CoreWorld(World):
    def boot(self) -> None:
        self.manager = CoreStorageManager(
            self.preset, self.identity, self.policy, self.local, self.link.device, self.now, self.observer
        )


def spec_view(m: StorageManager) -> tuple:
    """Everything that decides the spec manager's future behaviour, in a form the C side can match."""
    segments = m.guest.segments if m.guest is not None else []

    def purpose(p: tuple) -> tuple:
        return ("guest", segments.index(p[1])) if p[0] == "guest" else p

    def table(entries) -> tuple:
        return tuple(sorted((rid, purpose(o.purpose), o.kind.__name__, o.lba, o.count) for rid, o in entries.items()))

    guest = None
    if m.guest is not None:
        guest = (
            m.guest.issued,
            m.guest.result,
            tuple(
                (s.device, s.kind.__name__, s.lba, s.count, s.offset, s.request_id, s.completion and (s.completion.ok, s.completion.ata_error))
                for s in segments
            ),
        )
    commit = m.commit and (m.commit.number, m.commit.step.value, m.commit.policy, m.commit.clean, m.commit.snapshot)
    return (
        m.phase, m.policy, tuple(m.blocks), m.persisted, m.durable_clean, m.next_slot, m.next_generation,
        m.tokens, m.fills_since_commit, table(m.local_purpose), table(m.remote_purpose), guest,
        tuple(sorted((block, phase.value) for block, phase in m.fills.items())), tuple(m.demanded), commit,
        m.commit_wanted, m.commits_started, m.pending_policy, m.switch_flush, m.recovery and m.recovery.rejections,
        m.switch_commit, m.switch_commit_number,
    )


def core_view(m: CoreStorageManager) -> tuple:
    """The same view of the C manager, read from its state."""
    s = m.state

    def purpose(o) -> tuple:
        name = PURPOSES[o.purpose]
        return (name, o.argument) if name in ("guest", "fill read", "fill write") else (name,)

    def table(device: Device) -> tuple:
        return tuple(sorted((o.request_id, purpose(o), KINDS[o.kind].__name__, o.lba, o.count) for o in m.outstanding_entries(device)))

    guest = None
    if s.guest_active:
        result = None
        if s.guest_has_result:
            result = StoreResult(False, error=s.guest_result.error) if not s.guest_result.ok else "ok"
        segments = []
        for i in range(s.segment_total):
            g = s.segments[i]
            device = Device.LOCAL if g.device == 0 else Device.REMOTE
            done = (bool(g.ok), g.ata_error) if g.completed else None
            segments.append((device, KINDS[g.kind].__name__, g.lba, g.count, g.offset, g.request_id if s.guest_issued else None, done))
        guest = (bool(s.guest_issued), result, tuple(segments))
    snapshot = frozenset(b for b in range(m.geometry.block_count) if s.snapshot[b // 8] >> (b % 8) & 1)
    commit = None
    if s.commit_active:
        commit = (s.commit_number, COMMIT_STEPS[s.commit_step], POLICIES[s.commit_policy], bool(s.commit_clean), snapshot)
    wanted = (POLICIES[s.commit_wanted_policy], bool(s.commit_wanted_clean)) if s.commit_wanted else None
    recovery = None
    if m.phase.value != "starting" and m.local is not None:
        recovery = tuple(REJECTIONS[r] for r in s.recovery.rejections)
    return (
        m.phase, m.policy, tuple(m.blocks), m.persisted, m.durable_clean, s.next_slot, s.next_generation,
        s.tokens, s.fills_since_commit, table(Device.LOCAL), table(Device.REMOTE), guest,
        tuple(sorted(m.fills.items())), tuple(m.demanded), commit, wanted, s.commits_started,
        POLICIES[s.pending_policy] if s.has_pending_policy else None, m.switch_flush, recovery,
        (POLICIES[s.switch_commit_policy], bool(s.switch_commit_clean)) if s.switch_commit else None,
        s.switch_commit_number if s.has_switch_commit_number else None,
    )


def comparable_spec_view(m: StorageManager) -> tuple:
    """spec_view with a finished successful result reduced to "ok" (the C side keeps its data in the buffer)."""
    view = list(spec_view(m))
    guest = view[11]
    if guest is not None and guest[1] is not None and guest[1].ok:
        view[11] = (guest[0], "ok", guest[2])
    return tuple(view)


class Pair:
    """The spec world and the C world, driven by the same events."""

    def __init__(self, link_types: tuple[type, type] = (AoeLink, CoreAoeLink), **world_arguments):
        self.spec = World(link_type=link_types[0], **world_arguments)
        self.core = CoreWorld(link_type=link_types[1], **world_arguments)
        self.compare()

    def both(self, action) -> list:
        """Apply one event to both worlds; the outcomes (values or refusals) must be equal."""
        outcomes = []
        for world in (self.spec, self.core):
            try:
                outcomes.append(("ok", action(world)))
            except (ValueError, PolicyError, DevirtualizeError) as error:
                outcomes.append(("refused", type(error).__name__))
        assert outcomes[0] == outcomes[1], f"spec {outcomes[0]} but C {outcomes[1]}"
        self.compare()
        return outcomes[0]

    def compare(self) -> None:
        s, c = self.spec, self.core
        assert core_view(c.manager) == comparable_spec_view(s.manager), "the C manager's state differs from the spec's"
        if isinstance(s.link, AoeLink):
            s.link.pump()  # frames the initiators queued are on the wire (preconditions pump one side only)
            c.link.pump()
            assert [(d, f) for d, f, _ in c.link.wire] == [(d, f) for d, f, _ in s.link.wire], "different frames on the wire"
            assert (c.link.store.durable, c.link.store.cache) == (s.link.store.durable, s.link.store.cache), "different server media"
        else:
            assert c.link.device.pending == s.link.device.pending, "different requests at the server"
            assert (c.link.device.durable, c.link.device.cache) == (s.link.device.durable, s.link.device.cache), "different server media"
        assert c.local.pending == s.local.pending, "different local-disk requests"
        assert c.local.durable == s.local.durable and c.local.unflushed == s.local.unflushed, "different local media"
        assert c.results == s.results, "different guest results"
