"""The storage manager in its world: local disk, server, ideal disk, and the invariant checks.

Tests drive a `World` by starting guest requests and choosing which device
request completes next; after every step `check_invariants` evaluates the
catalogue of `spec/invariants.py` on the manager's state, and every guest
result is compared with the ideal disk.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from model.clock import Clock
from model.ideal_disk import IdealDisk
from model.local_disk import LocalDisk
from spec import invariants as inv
from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, StoreRequest, StoreResult, WriteSectors
from spec.storage.manager import Device, Phase, StorageManager
from spec.storage.parameters import TESTS, Preset
from spec.storage.persistent_map import recover_map
from spec.storage.policy import Policy
from tests.storage.links import REBOOT_TICKS, AoeLink

IDENTITY = b"image:debian-12;serial:0001"


def image_bytes(sectors: int, tag: bytes = b"image") -> bytes:
    """An image whose every sector is distinct, so a sector read from the wrong place is seen."""
    return b"".join((b"%s sector %d " % (tag, lba)).ljust(SECTOR_BYTES, b".") for lba in range(sectors))


def sector_data(lba: int, count: int, version: int) -> bytes:
    return b"".join((b"write %d of sector %d " % (version, s)).ljust(SECTOR_BYTES, b"-") for s in range(lba, lba + count))


@dataclass
class World:
    preset: Preset = TESTS
    policy: Policy = Policy.INSTALL
    link_type: Callable = None  # builds the link from the image: ModelLink, AoeLink or DirectLink (tests/storage/links.py)
    local: LocalDisk | None = None
    observer: object = None
    identity: bytes = IDENTITY
    results: list = field(default_factory=list)

    def __post_init__(self) -> None:
        g = self.preset.geometry
        self.image = image_bytes(g.data_sectors)
        self.link = (self.link_type or AoeLink)(self.image)
        if self.local is None:
            self.local = LocalDisk(g.local_disk_sectors)
        self.ideal = IdealDisk(self.image)
        self.clock = Clock()
        self.guest_request: StoreRequest | None = None
        self.server_volatile = False  # a guest write may sit only in the server's volatile cache
        self.cut_during_request = False  # the ideal disk lost unflushed data while the guest's request ran
        self.devirtualized_with: list[str] | None = None
        self.boot()

    @property
    def now(self) -> int:
        return self.clock.now

    def boot(self) -> None:
        self.manager = StorageManager(
            self.preset, self.identity, self.policy, self.local, self.link.device, self.now, self.observer
        )

    # Guest side: the world is itself a backing store, so the ATA device can sit in front of it

    def sector_count(self) -> int:
        return self.manager.sector_count()

    def start(self, request: StoreRequest) -> None:
        self.guest_request = request
        self.cut_during_request = False
        self.manager.start(request)

    def poll(self) -> StoreResult | None:
        result = self.manager.poll()
        if result is not None:
            self._record(self.guest_request, result)
            self.guest_request = None
        return result

    def _record(self, request: StoreRequest, result: StoreResult) -> None:
        self.results.append((request, result))
        policy = self.manager.policy
        match request:
            case ReadSectors(lba, count) if result.ok:
                inv.check(
                    "guest_sees_ideal_disk",
                    inv.guest_sees_ideal_disk(lambda s: self.ideal.readable[s], lba, result.data),
                    f"read of {lba}+{count} differs at sectors {self.ideal.mismatches(lba, result.data)}",
                )
                if not self.cut_during_request:  # data served before a server crash says nothing of the disk after it
                    self.ideal.read_done(lba, result.data)
            case WriteSectors(lba, data) if lba + len(data) // SECTOR_BYTES <= self.ideal.sector_count:
                self.ideal.write_done(lba, data, result.ok)
                self.server_volatile |= policy is Policy.NETWORK
            case Flush() if result.ok:
                self.ideal.flush_done()
                if policy in (Policy.NETWORK, Policy.CACHE):
                    self.server_volatile = False

    # Device side

    def complete_local(self, index: int = 0, ok: bool = True) -> None:
        ids = self.local.pending_ids()
        self.local.complete(ids[index % len(ids)], ok)

    def complete_remote(self, index: int = 0, ok: bool = True) -> None:
        wait = self.link.progress(index, ok, self.now)
        if wait:
            self.tick(wait)

    def tick(self, ticks: int = 1) -> None:
        self.clock.advance(ticks)
        self.link.tick(self.now)
        self.manager.tick(self.now)
        self.link.tick(self.now)

    def settle(self, max_steps: int = 10_000) -> StoreResult | None:
        """Complete requests in submission order and tick until nothing is left to do; the guest's result."""
        result = None
        for _ in range(max_steps):
            self.tick()
            if self.guest_request is not None:
                polled = self.poll()
                if polled is not None:
                    result = polled
            self.check_invariants()
            if self.local.pending_ids():
                self.complete_local()
            elif self.link.items():
                self.complete_remote()
            elif self.manager.outstanding(Device.REMOTE):
                self.tick(5)  # a lost frame: wait for the initiator's retransmission
            elif self.guest_request is None:
                self.tick()
                if not self.local.pending_ids() and not self.link.items():
                    return result
        raise AssertionError("the world did not settle")

    def run(self, request: StoreRequest) -> StoreResult:
        """One guest request from start to result, completing device requests in order."""
        self.start(request)
        for _ in range(10_000):
            self.tick()
            result = self.poll()
            self.check_invariants()
            if result is not None:
                return result
            if self.local.pending_ids():
                self.complete_local()
            elif self.link.items():
                self.complete_remote()
        raise AssertionError(f"{request} never completed")

    # Faults

    def power_cut(self, choose=lambda lba, versions: 0, keep_remote_write: bool = False) -> None:
        """The client loses power at this instant and restarts; checks the media the cut left."""
        if self.guest_request is not None:
            if isinstance(self.guest_request, WriteSectors):
                # A write cut short may have reached the media or not.
                self.ideal.write_done(self.guest_request.lba, self.guest_request.data, ok=False)
                self.server_volatile |= self.manager.policy is not Policy.INSTALL
            self.guest_request = None
        self.clock.advance(REBOOT_TICKS)
        self.link.client_restart(self.now, lambda: keep_remote_write)
        self.local.power_cut(choose)
        self.ideal.power_cut()
        self.check_media_after_cut()
        self.boot()  # with the configured policy: the persisted map decides whether it still applies

    def check_media_after_cut(self) -> None:
        g = self.preset.geometry
        inv.check(
            "map_crash_safe",
            inv.map_crash_safe(self.local.durable_bytes, g, self.identity, self.ideal.may_survive_power_cut),
        )
        view = inv.view_after_restart(self.local.durable_bytes, self.link.server_data, g, self.identity)
        inv.check("flush_is_durable", inv.flush_is_durable(view, self.ideal.may_survive_power_cut))

    def check_any_power_cut(self) -> None:
        """map_crash_safe and flush_is_durable for every way a power cut now could leave the media.

        The map slots may keep their durable or their newest sectors (each slot independently); a data
        sector may keep any of its versions. For each way the map comes out, every version of every
        sector the guest would then read must be one the ideal disk allows.
        """
        g = self.preset.geometry
        at_risk = self.local.versions_at_risk()
        in_flight = self.guest_request if isinstance(self.guest_request, WriteSectors) else None

        def allowed(lba: int) -> frozenset[bytes]:
            values = self.ideal.may_survive_power_cut(lba)
            if in_flight is not None and in_flight.lba <= lba < in_flight.lba + len(in_flight.data) // SECTOR_BYTES:
                offset = (lba - in_flight.lba) * SECTOR_BYTES
                values |= {in_flight.data[offset : offset + SECTOR_BYTES]}
            return values

        def versions(lba: int) -> list[bytes]:
            return at_risk.get(lba, [self.local.durable_sector(lba)])

        checked = set()  # maps already checked: with no map write at risk, all four ways give one map
        for newest in ((False, False), (False, True), (True, False), (True, True)):
            def medium(lba: int, count: int) -> bytes:
                slot = next((s for s in (0, 1) if g.slot_lba(s) <= lba < g.slot_lba(s) + g.slot_sectors), None)
                pick = -1 if slot is not None and newest[slot] else 0
                return b"".join(versions(s)[pick] for s in range(lba, lba + count))

            slots = tuple(medium(g.slot_lba(s), g.slot_sectors) for s in (0, 1))
            present = recover_map(slots, g, self.identity).present
            if present in checked:
                continue
            checked.add(present)
            for lba in range(g.data_sectors):
                local = g.block_of(lba) in present
                candidates = versions(lba) if local else [self.link.server_data(lba, 1)]
                bad = [c for c in candidates if c not in allowed(lba)]
                name = "map_crash_safe" if local else "flush_is_durable"
                inv.check(name, not bad, f"a power cut now could leave sector {lba} with data the guest may not see")

    def server_crash(self, cached_sector_survives=lambda lba: False) -> None:
        self.link.server_crash(cached_sector_survives)
        if self.server_volatile:
            self.ideal.power_cut()
            self.server_volatile = False
            self.cut_during_request = self.guest_request is not None

    def devirtualize(self):
        """Ask the manager to de-virtualize; the world judges, from its own devices, whether it was quiescent."""
        g = self.preset.geometry
        slots = tuple(self.local.durable_bytes(g.slot_lba(s), g.slot_sectors) for s in (0, 1))
        blockers = []
        if self.local.pending_ids():
            blockers.append("the local disk has requests in flight")
        if self.manager.outstanding(Device.REMOTE):
            blockers.append("the server has requests in flight")
        if self.guest_request is not None:
            blockers.append("a guest request is outstanding")
        if recover_map(slots, g, self.identity).present != frozenset(range(g.block_count)):
            blockers.append("the durable map does not mark every block present")
        steps = self.manager.devirtualize()
        self.devirtualized_with = blockers
        return steps

    # Invariants after every step

    def check_invariants(self) -> None:
        m, g = self.manager, self.preset.geometry
        if m.policy is not Policy.NETWORK and m.phase is Phase.RUNNING and not m.switch_flush:
            self.server_volatile = False  # leaving network flushed the server (manager._begin_switch_commit)
        local = m.outstanding(Device.LOCAL)
        remote = m.outstanding(Device.REMOTE)
        guest_local = [(o.lba, o.count) for o in local if o.purpose[0] == "guest" and o.kind is not Flush]
        guest_local_reads = [(o.lba, o.count) for o in local if o.purpose[0] == "guest" and o.kind is ReadSectors]
        if m.policy is not Policy.PASSTHROUGH:
            inv.check("no_unpopulated_local_read", inv.no_unpopulated_local_read(m.blocks, g, guest_local_reads))
        guest_writes = [(o.lba, o.count) for o in local + remote if o.purpose[0] == "guest" and o.kind is WriteSectors]
        inv.check("no_fill_clobber", inv.no_fill_clobber(m.fills, guest_writes, g))
        local_writes = [(o.lba, o.count) for o in local if o.kind is WriteSectors]
        remote_writes = [(o.lba, o.count) for o in remote if o.kind is WriteSectors]
        inv.check("one_write_in_flight_per_sector", inv.one_write_in_flight_per_sector(local_writes))
        inv.check("one_write_in_flight_per_sector", inv.one_write_in_flight_per_sector(remote_writes))
        if hasattr(self.link.device, "in_flight"):
            # The AoE initiator's transmissions awaiting an answer, retransmissions included.
            frames = [(lba, count) for _, kind, lba, count in self.link.device.in_flight() if kind.value == "write"]
            inv.check("one_write_in_flight_per_sector", inv.one_write_in_flight_per_sector(frames))
        inv.check("reserved_region_hidden", inv.reserved_region_hidden(m.sector_count(), g, guest_local))
        self.check_any_power_cut()
        if self.devirtualized_with is not None:
            inv.check(
                "devirtualize_only_when_quiescent",
                inv.devirtualize_only_when_quiescent(True, self.devirtualized_with),
            )
