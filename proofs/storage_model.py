"""The storage manager's transition relation for one arbitrary sector of one arbitrary block.

The state is everything that decides what that sector holds, where a read of
it is answered from, and what a power cut may leave: the block's state and
policy (`spec/storage/manager.py`), the fill and guest write touching the
block, the map commit in progress, the local disk's current value and the set
of values a power cut may keep (`model/local_disk.py`), the server's value,
and the ideal disk's readable and may-survive sets (`model/ideal_disk.py`).
Data values are integers; sets of values are z3 arrays to Bool.

Every event of the manager that touches the block is one disjunct of
`transition`, with its guard and its effect. Block states change only through
`sorts.block_next`, the spec's table. A `Variant` switches on one deliberate
defect, for the negative controls.

Over-approximations (more behaviours than the spec has, so a proof here
covers the spec): a map commit may start whenever none is in progress; fills
need neither demand nor tokens. Simplifications, each argued in README.md: a
guest read is one event; the server keeps what it acknowledged (its own
crashes are the AoE chapter's subject). A flush makes durable the value the
sector had when the flush was submitted (ATA/ATAPI-7 V1 §6, FLUSH CACHE), as
`model/local_disk.py` does.
"""

from dataclasses import dataclass
from enum import Enum

import z3

from proofs.sorts import (
    COMMIT,
    FILL,
    FLUSH_WAIT,
    BlockStateSort,
    CommitSort,
    FillSort,
    FlushWaitSort,
    PolicySort,
    block,
    block_in,
    block_legal,
    block_next,
    policy,
    policy_change_legal,
    policy_in,
)
from spec.storage.block_state import BUSY, READABLE_LOCALLY, BlockEvent, BlockState
from spec.storage.policy import FILLS_ON_DEMAND, USES_LOCAL_DISK, Policy

S, E, P = BlockState, BlockEvent, Policy
ValueSet = z3.ArraySort(z3.IntSort(), z3.BoolSort())


class Variant(Enum):
    """The spec as written, or one deliberate defect for a negative control."""

    SPEC = "the specification"
    MAP_BEFORE_FLUSH = "map written before the data is flushed"
    FILL_OVER_GUEST_WRITE = "fill started on a block a guest write is in flight to"
    WRITE_DURING_FILL = "guest write does not wait for a block being filled"
    STALE_ACCEPTED = "stale tag accepted as the answer to the fill's read"
    FLUSH_WITHOUT_COMMIT = "guest flush completes without the map commit"
    DEVIRTUALIZE_UNPERSISTED = "de-virtualization without the complete map on disk"
    LOCAL_READ_WHILE_FETCHING = "read answered locally from a block being filled"
    SWITCH_NOT_RETRIED = "a policy change completes although its map commit failed"


FIELDS: dict[str, z3.SortRef] = {
    "policy": PolicySort,
    "devirtualized": z3.BoolSort(),
    "state": BlockStateSort,  # manager.blocks[b]
    "fill": FillSort,  # manager.fills.get(b)
    "fill_data": z3.IntSort(),  # the sector's value the fill read from the server
    "write": z3.BoolSort(),  # an issued guest write covers block b
    "write_covers": z3.BoolSort(),  # ... and sector s
    "write_whole": z3.BoolSort(),  # ... and the whole block
    "write_data": z3.IntSort(),
    "write_local": z3.BoolSort(),  # it has a local segment on block b
    "write_local_done": z3.BoolSort(),
    "write_local_ok": z3.BoolSort(),
    "write_remote": z3.BoolSort(),  # it has a server segment
    "write_remote_done": z3.BoolSort(),
    "write_remote_ok": z3.BoolSort(),
    "local": z3.IntSort(),  # what a local read of s returns now
    "local_at_risk": ValueSet,  # what a power cut may leave in s (LocalDisk.versions_at_risk)
    "flush_covers": z3.IntSort(),  # the value of s when the flush in progress was submitted
    "since_flush": ValueSet,  # values written to s, or in flight, since that submission
    "server": z3.IntSort(),
    "readable": ValueSet,  # IdealDisk.readable[s]
    "may_survive": ValueSet,  # IdealDisk.may_survive_power_cut(s)
    "commit": CommitSort,
    "commit_install": z3.BoolSort(),  # the commit writes an install map (else a cache map)
    "commit_clean": z3.BoolSort(),
    "snapshot": z3.BoolSort(),  # b is in the commit's snapshot
    "persisted": z3.BoolSort(),  # b in manager.persisted
    "durable_clean": z3.BoolSort(),  # manager.durable_clean
    "map_may_trust": z3.BoolSort(),  # some map a power cut may leave newest is trusted and marks b present
    "map_may_not": z3.BoolSort(),  # some map a power cut may leave newest does not
    "flush_wait": FlushWaitSort,  # a guest flush waiting for its map commit
    "switching": z3.BoolSort(),  # Phase.SWITCHING: a policy change waits for its map commit
}


class State:
    def __init__(self, suffix: str):
        self.suffix = suffix
        for name, sort in FIELDS.items():
            setattr(self, name, z3.Const(f"{name}@{suffix}", sort))

    def __getitem__(self, name: str) -> z3.ExprRef:
        return getattr(self, name)


class Choices:
    """The nondeterministic inputs of one step: the event and its parameters."""

    def __init__(self, suffix: str):
        self.event = z3.Int(f"event@{suffix}")
        self.ok = z3.Bool(f"ok@{suffix}")
        self.data = z3.Int(f"data@{suffix}")
        self.covers = z3.Bool(f"covers@{suffix}")
        self.whole = z3.Bool(f"whole@{suffix}")
        self.keep_new = z3.Bool(f"keep_new@{suffix}")  # a failed write left the new data
        self.survivor = z3.Int(f"survivor@{suffix}")  # the value a power cut leaves
        self.trusted_map = z3.Bool(f"trusted_map@{suffix}")  # the map recovery finds trusts b
        self.clean = z3.Bool(f"clean@{suffix}")
        self.wanted = z3.Const(f"wanted@{suffix}", PolicySort)
        self.server_kept = z3.Bool(f"server_kept@{suffix}")  # an in-flight server write landed before the cut
        self.switch_needed = z3.Bool(f"switch_needed@{suffix}")  # the recovered map is of another policy


def empty_set() -> z3.ArrayRef:
    return z3.K(z3.IntSort(), z3.BoolVal(False))


def singleton(value: z3.ExprRef) -> z3.ArrayRef:
    return z3.Store(empty_set(), value, True)


def add(values: z3.ArrayRef, value: z3.ExprRef) -> z3.ArrayRef:
    return z3.Store(values, value, True)


def subset(a: z3.ArrayRef, b: z3.ArrayRef) -> z3.BoolRef:
    v = z3.Int("v")
    return z3.ForAll([v], z3.Implies(a[v], b[v]))


def initial(s: State, image: z3.ExprRef, garbage: z3.ExprRef) -> z3.BoolRef:
    """A fresh boot from a local disk that never held a map: every block absent."""
    return z3.And(
        policy_in(s.policy, (P.NETWORK, P.CACHE, P.INSTALL)),  # passthrough is entered only by de-virtualization
        z3.Not(s.devirtualized),
        s.state == block(S.ABSENT),
        s.fill == FILL["NONE"],
        z3.Not(s.write),
        s.local == garbage,
        s.local_at_risk == singleton(garbage),
        s.flush_covers == garbage,
        s.since_flush == empty_set(),
        s.server == image,
        s.readable == singleton(image),
        s.may_survive == singleton(image),
        s.commit == COMMIT["NONE"],
        z3.Not(s.persisted),
        z3.Not(s.durable_clean),
        z3.Not(s.map_may_trust),
        s.map_may_not,
        s.flush_wait == FLUSH_WAIT["IDLE"],
        z3.Not(s.switching),
        # Unused fields are pinned so a trace shows only what matters.
        s.fill_data == image,
        s.write_data == image,
        z3.Not(s.write_covers),
        z3.Not(s.write_whole),
        z3.Not(s.write_local),
        z3.Not(s.write_local_done),
        z3.Not(s.write_local_ok),
        z3.Not(s.write_remote),
        z3.Not(s.write_remote_done),
        z3.Not(s.write_remote_ok),
        z3.Not(s.commit_install),
        z3.Not(s.commit_clean),
        z3.Not(s.snapshot),
    )


def routes_local(s: State, variant: Variant = Variant.SPEC) -> z3.BoolRef:
    """Whether a guest read of s is answered from the local disk (`_plan_read`)."""
    if variant is Variant.LOCAL_READ_WHILE_FETCHING:
        readable_here = block_in(s.state, READABLE_LOCALLY | {S.FETCHING})
    else:
        readable_here = block_in(s.state, READABLE_LOCALLY)
    return z3.Or(
        s.policy == policy(P.PASSTHROUGH),
        z3.And(policy_in(s.policy, USES_LOCAL_DISK), readable_here),
    )


def read_answer(s: State, variant: Variant = Variant.SPEC) -> z3.ExprRef:
    return z3.If(routes_local(s, variant), s.local, s.server)


def guest_idle(s: State) -> z3.BoolRef:
    """No guest request is in progress: the device starts one at a time."""
    return z3.And(z3.Not(s.write), s.flush_wait == FLUSH_WAIT["IDLE"])


def may_serve(s: State) -> z3.BoolRef:
    """A new guest request may be served: none in progress and no policy change under way (`_advance_guest`)."""
    return z3.And(guest_idle(s), z3.Not(s.switching))


@dataclass
class Event:
    name: str
    guard: z3.BoolRef
    updates: dict
    extra: z3.BoolRef = z3.BoolVal(True)
    shows: tuple = ()  # parameters a trace prints: (label, term)


def _frame(s: State, t: State, updates: dict) -> z3.BoolRef:
    return z3.And([t[name] == updates.get(name, s[name]) for name in FIELDS])


def events(s: State, c: Choices, variant: Variant) -> list[Event]:
    """Every event that touches block b, with its guard and effect on the state."""
    running = z3.Not(s.devirtualized)
    local_policy = policy_in(s.policy, (P.CACHE, P.INSTALL))
    trusted_new = z3.Or(s.commit_install, s.commit_clean)
    marks_new = z3.And(s.snapshot, trusted_new)
    commit_done_flush = {
        "flush_wait": z3.If(s.flush_wait == FLUSH_WAIT["COMMITTING"], FLUSH_WAIT["IDLE"], s.flush_wait),
    }
    # FLUSH CACHE makes durable what had completed when it was submitted (ATA/ATAPI-7 V1 §6).
    flushed_at_risk = add(s.since_flush, s.flush_covers)
    pending = empty_set()
    pending = z3.If(s.fill == FILL["WRITING"], add(pending, s.fill_data), pending)
    local_pending = z3.And(s.write, s.write_local, z3.Not(s.write_local_done), s.write_covers)
    pending = z3.If(local_pending, add(pending, s.write_data), pending)
    result: list[Event] = []

    # Guest read: answered locally only from a present block (no_unpopulated_local_read); fixes the ideal value.
    answer = read_answer(s, variant)
    result.append(Event("guest read", may_serve(s), {"readable": singleton(answer)}, shows=(("returns", answer),)))

    # Guest write issued (`_plan_write`): waits for a busy block; install waits for the fill of a partial absent block.
    may_issue = z3.And(
        may_serve(s),
        z3.Implies(c.whole, c.covers),
        z3.Implies(
            local_policy,
            z3.And(
                z3.Not(block_in(s.state, BUSY)) if variant is not Variant.WRITE_DURING_FILL else z3.BoolVal(True),
                z3.Not(z3.And(s.policy == policy(P.INSTALL), s.state == block(S.ABSENT), z3.Not(c.whole))),
                # Cache: the map on disk is marked dirty before the first write after a clean commit.
                z3.Implies(s.policy == policy(P.CACHE), z3.And(z3.Not(s.durable_clean), s.commit == COMMIT["NONE"])),
            ),
        ),
    )
    has_local = z3.Or(
        s.policy == policy(P.PASSTHROUGH),
        z3.And(local_policy, z3.Not(z3.And(s.state == block(S.ABSENT), z3.Not(c.whole)))),
    )
    whole_absent = z3.And(local_policy, s.state == block(S.ABSENT), c.whole)
    result.append(
        Event(
            "guest write issued",
            may_issue,
            {
                "state": z3.If(whole_absent, block_next(s.state, E.WHOLE_WRITE_STARTED), s.state),
                "write": z3.BoolVal(True),
                "write_covers": c.covers,
                "write_whole": c.whole,
                "write_data": c.data,
                "write_local": has_local,
                "write_local_done": z3.BoolVal(False),
                "write_remote": policy_in(s.policy, (P.NETWORK, P.CACHE)),
                "write_remote_done": z3.BoolVal(False),
                # A submitted write may reach the medium before it completes.
                "local_at_risk": z3.If(z3.And(has_local, c.covers), add(s.local_at_risk, c.data), s.local_at_risk),
                "since_flush": z3.If(z3.And(has_local, c.covers), add(s.since_flush, c.data), s.since_flush),
            },
            z3.Implies(whole_absent, block_legal(s.state, E.WHOLE_WRITE_STARTED)),
            shows=(("covers s", c.covers), ("whole block", c.whole), ("data", c.data)),
        )
    )

    # The guest write's local segment completes; a failed one leaves the old or the new data.
    new_local = z3.If(c.ok, s.write_data, z3.If(c.keep_new, s.write_data, s.local))
    result.append(
        Event(
            "guest write local done",
            z3.And(s.write, s.write_local, z3.Not(s.write_local_done)),
            {
                "local": z3.If(s.write_covers, new_local, s.local),
                "write_local_done": z3.BoolVal(True),
                "write_local_ok": c.ok,
            },
            shows=(("ok", c.ok),),
        )
    )
    new_server = z3.If(c.ok, s.write_data, z3.If(c.keep_new, s.write_data, s.server))
    result.append(
        Event(
            "guest write server done",
            z3.And(s.write, s.write_remote, z3.Not(s.write_remote_done)),
            {
                "server": z3.If(s.write_covers, new_server, s.server),
                "write_remote_done": z3.BoolVal(True),
                "write_remote_ok": c.ok,
            },
            shows=(("ok", c.ok),),
        )
    )

    # The guest write is answered (`_finish_guest`, `_finish_local_writes`); the ideal disk records it.
    write_ok = z3.And(z3.Implies(s.write_local, s.write_local_ok), z3.Implies(s.write_remote, s.write_remote_ok))
    local_event_state = z3.If(
        s.write_local_ok, block_next(s.state, E.WRITE_DONE), block_next(s.state, E.WRITE_FAILED)
    )
    after_local = z3.If(z3.And(s.write_local, local_policy), local_event_state, s.state)
    after_invalidate = z3.If(
        z3.And(s.policy == policy(P.CACHE), z3.Not(write_ok)), block_next(after_local, E.INVALIDATED), after_local
    )
    legal_finish = z3.And(
        z3.Implies(
            z3.And(s.write_local, local_policy),
            z3.If(s.write_local_ok, block_legal(s.state, E.WRITE_DONE), block_legal(s.state, E.WRITE_FAILED)),
        ),
        z3.Implies(z3.And(s.policy == policy(P.CACHE), z3.Not(write_ok)), block_legal(after_local, E.INVALIDATED)),
    )
    result.append(
        Event(
            "guest write answered",
            z3.And(
                s.write,
                z3.Implies(s.write_local, s.write_local_done),
                z3.Implies(s.write_remote, s.write_remote_done),
            ),
            {
                "state": after_invalidate,
                "write": z3.BoolVal(False),
                "readable": z3.If(
                    s.write_covers,
                    z3.If(write_ok, singleton(s.write_data), add(s.readable, s.write_data)),
                    s.readable,
                ),
                "may_survive": z3.If(s.write_covers, add(s.may_survive, s.write_data), s.may_survive),
            },
            legal_finish,
            shows=(("ok", write_ok),),
        )
    )

    # Fill engine (`choose_fills`): an absent block no issued guest write covers.
    fill_guard = z3.And(
        running,
        z3.Not(s.switching),
        policy_in(s.policy, FILLS_ON_DEMAND),
        s.state == block(S.ABSENT),
        z3.Not(s.write) if variant is not Variant.FILL_OVER_GUEST_WRITE else z3.BoolVal(True),
    )
    result.append(
        Event(
            "fill started",
            fill_guard,
            {"state": block_next(s.state, E.FILL_STARTED), "fill": FILL["READING"]},
            block_legal(s.state, E.FILL_STARTED),
        )
    )
    read_done = {
        "fill": z3.If(c.ok, FILL["WRITING"], FILL["NONE"]),
        "fill_data": s.server,
        "state": z3.If(c.ok, s.state, block_next(s.state, E.FILL_FAILED)),
        "local_at_risk": z3.If(c.ok, add(s.local_at_risk, s.server), s.local_at_risk),
        "since_flush": z3.If(c.ok, add(s.since_flush, s.server), s.since_flush),
    }
    result.append(
        Event(
            "fill read answered",
            s.fill == FILL["READING"],
            read_done,
            z3.Implies(z3.Not(c.ok), block_legal(s.state, E.FILL_FAILED)),
            shows=(("ok", c.ok), ("data", s.server)),
        )
    )
    result.append(
        Event(
            "fill write done",
            s.fill == FILL["WRITING"],
            {
                "fill": FILL["NONE"],
                "local": z3.If(z3.Or(c.ok, c.keep_new), s.fill_data, s.local),
                "state": z3.If(c.ok, block_next(s.state, E.FILL_DONE), block_next(s.state, E.FILL_FAILED)),
            },
            z3.If(c.ok, block_legal(s.state, E.FILL_DONE), block_legal(s.state, E.FILL_FAILED)),
            shows=(("ok", c.ok),),
        )
    )

    # A response whose tag is not outstanding (a duplicate, or one superseded by a retransmission).
    if variant is Variant.STALE_ACCEPTED:
        stale = Event(
            "stale response",
            z3.BoolVal(True),
            {
                "fill": z3.If(s.fill == FILL["READING"], FILL["WRITING"], s.fill),
                "fill_data": z3.If(s.fill == FILL["READING"], c.data, s.fill_data),
                "local_at_risk": z3.If(s.fill == FILL["READING"], add(s.local_at_risk, c.data), s.local_at_risk),
                "since_flush": z3.If(s.fill == FILL["READING"], add(s.since_flush, c.data), s.since_flush),
            },
            shows=(("data", c.data),),
        )
    else:
        stale = Event("stale response", z3.BoolVal(True), {}, shows=(("data", c.data),))
    result.append(stale)

    # Map commit (`_advance_commit`, `_continue_commit`): flush, write the slot, flush.
    begin_guard = z3.And(
        running,
        s.commit == COMMIT["NONE"],
        policy_in(s.policy, (P.NETWORK, P.CACHE, P.INSTALL)),
        # The map's policy is the manager's; leaving network writes an empty dirty cache map.
        z3.If(s.policy == policy(P.INSTALL), c.whole, z3.Not(c.whole)),
        z3.Implies(s.policy == policy(P.NETWORK), z3.Not(c.clean)),
        # A cache map is clean only if no guest write is in flight while its data is flushed.
        z3.Implies(s.write, z3.Not(c.clean)),
    )
    snapshot = s.state == block(S.PRESENT)
    begin = {
        "commit": COMMIT["FLUSH_BEFORE"],
        "commit_install": c.whole,
        "commit_clean": c.clean,
        "snapshot": snapshot,
        "flush_covers": s.local,
        "since_flush": pending,
        "flush_wait": z3.If(s.flush_wait == FLUSH_WAIT["QUEUED"], FLUSH_WAIT["COMMITTING"], s.flush_wait),
    }
    if variant is Variant.MAP_BEFORE_FLUSH:
        marks = z3.And(snapshot, z3.Or(c.whole, c.clean))
        begin.update(
            commit=COMMIT["WRITE_MAP"],
            map_may_trust=z3.Or(s.map_may_trust, marks),
            map_may_not=z3.Or(s.map_may_not, z3.Not(marks)),
        )
    result.append(
        Event("commit started", begin_guard, begin, shows=(("install map", c.whole), ("clean", c.clean)))
    )
    # `_advance_switch_commit`: a policy change waits until one of its map commits succeeds.
    switch_after_failure = z3.BoolVal(False) if variant is Variant.SWITCH_NOT_RETRIED else s.switching
    result.append(
        Event(
            "commit flush before done",
            s.commit == COMMIT["FLUSH_BEFORE"],
            {
                "local_at_risk": z3.If(c.ok, flushed_at_risk, s.local_at_risk),
                "commit": z3.If(c.ok, COMMIT["WRITE_MAP"], COMMIT["NONE"]),
                "map_may_trust": z3.If(c.ok, z3.Or(s.map_may_trust, marks_new), s.map_may_trust),
                "map_may_not": z3.If(c.ok, z3.Or(s.map_may_not, z3.Not(marks_new)), s.map_may_not),
                "flush_wait": z3.If(c.ok, s.flush_wait, commit_done_flush["flush_wait"]),
                "switching": z3.If(c.ok, s.switching, switch_after_failure),
            },
            shows=(("ok", c.ok),),
        )
    )
    result.append(
        Event(
            "commit map written",
            s.commit == COMMIT["WRITE_MAP"],
            {
                "commit": z3.If(c.ok, COMMIT["FLUSH_AFTER"], COMMIT["NONE"]),
                "flush_covers": s.local,
                "since_flush": pending,
                "durable_clean": z3.If(
                    c.ok, s.durable_clean, z3.Or(s.durable_clean, z3.And(s.commit_clean, z3.Not(s.commit_install)))
                ),
                "flush_wait": z3.If(c.ok, s.flush_wait, commit_done_flush["flush_wait"]),
                "switching": z3.If(c.ok, s.switching, switch_after_failure),
            },
            shows=(("ok", c.ok),),
        )
    )
    result.append(
        Event(
            "commit flush after done",
            s.commit == COMMIT["FLUSH_AFTER"],
            {
                "local_at_risk": z3.If(c.ok, flushed_at_risk, s.local_at_risk),
                "commit": COMMIT["NONE"],
                "persisted": z3.If(c.ok, s.snapshot, s.persisted),
                "map_may_trust": z3.If(c.ok, marks_new, s.map_may_trust),
                "map_may_not": z3.If(c.ok, z3.Not(marks_new), s.map_may_not),
                "durable_clean": z3.If(
                    c.ok,
                    z3.And(s.commit_clean, z3.Not(s.commit_install)),
                    z3.Or(s.durable_clean, z3.And(s.commit_clean, z3.Not(s.commit_install))),
                ),
                "flush_wait": commit_done_flush["flush_wait"],
                "switching": z3.If(c.ok, z3.BoolVal(False), switch_after_failure),
                # The guest's flush is answered with the commit: its writes are durable (IdealDisk.flush_done).
                "may_survive": z3.If(
                    z3.And(c.ok, s.flush_wait == FLUSH_WAIT["COMMITTING"]), s.readable, s.may_survive
                ),
            },
            shows=(("ok", c.ok),),
        )
    )

    # Guest FLUSH CACHE (`_plan_flush`): cache and install wait for a map commit; network and passthrough do not.
    commits = policy_in(s.policy, (P.CACHE, P.INSTALL))
    if variant is Variant.FLUSH_WITHOUT_COMMIT:
        commits = z3.BoolVal(False)
    result.append(
        Event(
            "guest flush",
            may_serve(s),
            {
                "flush_wait": z3.If(commits, FLUSH_WAIT["QUEUED"], FLUSH_WAIT["IDLE"]),
                "may_survive": z3.If(commits, s.may_survive, s.readable),
                "local_at_risk": z3.If(s.policy == policy(P.PASSTHROUGH), singleton(s.local), s.local_at_risk),
                "since_flush": z3.If(s.policy == policy(P.PASSTHROUGH), empty_set(), s.since_flush),
            },
        )
    )

    # Run-time policy change (`request_policy`, `_advance_switch`): legal pairs only, once quiescent.
    quiescent = z3.And(guest_idle(s), s.fill == FILL["NONE"], s.commit == COMMIT["NONE"], z3.Not(s.switching))
    to_network = c.wanted == policy(P.NETWORK)
    result.append(
        Event(
            "policy changed",
            z3.And(running, quiescent, policy_change_legal(s.policy, c.wanted), c.wanted != policy(P.PASSTHROUGH)),
            {
                "policy": c.wanted,
                "state": z3.If(to_network, block_next(s.state, E.INVALIDATED), s.state),
                # `_begin_switch_commit`: leaving cache commits a map that a restart cannot undo.
                "switching": s.policy == policy(P.CACHE),
            },
            z3.Implies(to_network, block_legal(s.state, E.INVALIDATED)),
            shows=(("to", c.wanted),),
        )
    )

    # De-virtualization (`devirtualize_blockers`): install, every block present and persisted, nothing in flight.
    persisted_guard = s.persisted if variant is not Variant.DEVIRTUALIZE_UNPERSISTED else z3.BoolVal(True)
    result.append(
        Event(
            "de-virtualized",
            z3.And(
                running,
                s.policy == policy(P.INSTALL),
                s.state == block(S.PRESENT),
                persisted_guard,
                quiescent,
            ),
            {"policy": policy(P.PASSTHROUGH), "devirtualized": z3.BoolVal(True)},
        )
    )

    # Power cut and restart (LocalDisk.power_cut, IdealDisk.power_cut, recover_map, boot_policy).
    cut_write = z3.And(s.write, s.write_covers)
    survive = z3.If(cut_write, add(s.may_survive, s.write_data), s.may_survive)
    trusted = c.trusted_map
    # The map recovery trusts is a cache map while cache is (or was, until its switch commit lands) in force.
    cache_map = z3.And(
        trusted,
        z3.Or(policy_in(s.policy, (P.NETWORK, P.CACHE)), z3.And(s.policy == policy(P.INSTALL), s.switching)),
    )
    restarted_policy = c.wanted  # `boot_policy` of the configured policy, which may differ from the one before
    result.append(
        Event(
            "power cut and restart",
            z3.BoolVal(True),
            {
                "policy": restarted_policy,
                "devirtualized": z3.BoolVal(False),
                "state": z3.If(z3.And(trusted, restarted_policy != policy(P.NETWORK)), block(S.PRESENT), block(S.ABSENT)),
                "fill": FILL["NONE"],
                "write": z3.BoolVal(False),
                "local": c.survivor,
                "local_at_risk": singleton(c.survivor),
                "flush_covers": c.survivor,
                "since_flush": empty_set(),
                "server": z3.If(
                    z3.And(cut_write, s.write_remote, z3.Not(s.write_remote_done), c.server_kept),
                    s.write_data,
                    s.server,
                ),
                "readable": survive,
                "may_survive": survive,
                "commit": COMMIT["NONE"],
                "persisted": trusted,
                "durable_clean": c.clean,
                "map_may_trust": trusted,
                "map_may_not": z3.Not(trusted),
                "flush_wait": FLUSH_WAIT["IDLE"],
                # `_recover`: a trusted map of another policy than the boot policy starts a switch commit.
                "switching": c.switch_needed,
            },
            z3.And(
                s.local_at_risk[c.survivor],
                z3.If(trusted, s.map_may_trust, s.map_may_not),
                # Passthrough is entered only by de-virtualization.
                restarted_policy != policy(P.PASSTHROUGH),
                # A trusted install map forbids any policy but install, and needs no switch.
                z3.Implies(z3.And(trusted, z3.Not(cache_map)), z3.And(restarted_policy == policy(P.INSTALL), z3.Not(c.switch_needed))),
                # A trusted cache map is a clean one; booting into another policy commits that policy's map first.
                z3.Implies(z3.And(cache_map, restarted_policy == policy(P.CACHE)), c.clean),
                z3.Implies(cache_map, c.switch_needed == (restarted_policy != policy(P.CACHE))),
                z3.Implies(z3.Not(trusted), z3.Not(c.switch_needed)),
            ),
            shows=(("survivor", c.survivor), ("map trusts b", trusted), ("boot policy", c.wanted)),
        )
    )
    return result


def transition(s: State, t: State, c: Choices, variant: Variant = Variant.SPEC) -> z3.BoolRef:
    """One step: some event's guard holds and the next state is its effect; `c.event` names it."""
    return z3.Or(
        [
            z3.And(c.event == index, e.guard, e.extra, _frame(s, t, e.updates))
            for index, e in enumerate(events(s, c, variant))
        ]
    )


def event_names(variant: Variant = Variant.SPEC) -> list[str]:
    s, c = State("names"), Choices("names")
    return [e.name for e in events(s, c, variant)]
