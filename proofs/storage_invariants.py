"""The catalogue's storage invariants over the per-sector state, and the strengthening that makes them inductive.

Each catalogue entry here is the predicate of `spec/invariants.py` read on
the state of `storage_model.py`. Alone, most are not inductive (a state that
satisfies one may still be one step from breaking it); `STRENGTHENING` lists
the auxiliary facts that, together with the catalogue, form an inductive
invariant. Each auxiliary fact has a name and a one-line reason, so a failed
proof names the fact that broke.
"""

import z3

from proofs.sorts import COMMIT, FILL, FLUSH_WAIT, block, block_in, policy, policy_in
from proofs.storage_model import State, Variant, add, guest_idle, read_answer, routes_local, subset
from spec.storage.block_state import READABLE_LOCALLY, BlockState
from spec.storage.policy import Policy

S, P = BlockState, Policy


def survives_cut(s: State) -> z3.ArrayRef:
    """What the ideal disk allows after a power cut now: a write in flight counts as failed (World.power_cut)."""
    return z3.If(z3.And(s.write, s.write_covers), add(s.may_survive, s.write_data), s.may_survive)


def local_write_pending(s: State) -> z3.BoolRef:
    return z3.And(s.write, s.write_local, z3.Not(s.write_local_done))


# The catalogue (spec/invariants.py), one sector of one block.
CATALOGUE = {
    "no_unpopulated_local_read": lambda s, v=Variant.SPEC: z3.Implies(
        routes_local(s, v), block_in(s.state, READABLE_LOCALLY)
    ),
    "no_fill_clobber": lambda s: z3.Not(z3.And(s.fill != FILL["NONE"], s.write)),
    "guest_sees_ideal_disk": lambda s, v=Variant.SPEC: z3.Implies(guest_idle(s), s.readable[read_answer(s, v)]),
    "one_write_in_flight_per_sector": lambda s: z3.Not(z3.And(s.fill == FILL["WRITING"], local_write_pending(s))),
    "map_crash_safe": lambda s: z3.Implies(s.map_may_trust, subset(s.local_at_risk, survives_cut(s))),
    "flush_is_durable": lambda s: z3.Implies(s.map_may_not, survives_cut(s)[s.server]),
    "devirtualize_only_when_quiescent": lambda s: z3.Implies(
        s.devirtualized, z3.And(s.state == block(S.PRESENT), s.persisted, s.map_may_trust, z3.Not(s.map_may_not))
    ),
}

def only(values: z3.ArrayRef, value: z3.ExprRef) -> z3.BoolRef:
    v = z3.Int("v")
    return z3.ForAll([v], z3.Implies(values[v], v == value))


def block_in_commit(s: State, steps) -> z3.BoolRef:
    return z3.Or([s.commit == COMMIT[step] for step in steps])


def cache_like(s: State) -> z3.BoolRef:
    """Cache, or a change away from cache whose map commit has not landed: the local copy still repeats the server."""
    return z3.Or(s.policy == policy(P.CACHE), z3.And(s.switching, policy_in(s.policy, (P.NETWORK, P.INSTALL))))


local_policy = lambda s: policy_in(s.policy, (P.CACHE, P.INSTALL))  # noqa: E731

# Auxiliary facts: name -> (predicate, why it holds).
STRENGTHENING = {
    "fetching_iff_fill": (
        lambda s: (s.state == block(S.FETCHING)) == (s.fill != FILL["NONE"]),
        "a block is FETCHING exactly while the fill engine holds it",
    ),
    "writing_means_whole_write": (
        lambda s: z3.Implies(
            s.state == block(S.WRITING), z3.And(s.write, s.write_whole, s.write_local, s.write_covers, local_policy(s))
        ),
        "WRITING is entered only by a whole-block guest write, and left when it is answered",
    ),
    "whole_covers": (lambda s: z3.Implies(z3.And(s.write, s.write_whole), s.write_covers), "a whole-block write covers every sector"),
    "devirtualized_iff_passthrough": (
        lambda s: s.devirtualized == (s.policy == policy(P.PASSTHROUGH)),
        "passthrough is entered only by de-virtualization",
    ),
    "busy_only_in_local_policies": (
        lambda s: z3.Implies(s.state != block(S.ABSENT), policy_in(s.policy, (P.CACHE, P.INSTALL, P.PASSTHROUGH))),
        "network drops every local copy",
    ),
    "write_segments_match_policy": (
        lambda s: z3.Implies(
            s.write,
            z3.And(
                s.write_remote == policy_in(s.policy, (P.NETWORK, P.CACHE)),
                z3.Implies(policy_in(s.policy, (P.PASSTHROUGH, P.INSTALL)), s.write_local),
                z3.Implies(s.policy == policy(P.NETWORK), z3.Not(s.write_local)),
                z3.Implies(s.write_local_done, s.write_local),
                z3.Implies(s.write_remote_done, s.write_remote),
                z3.Implies(z3.And(s.policy == policy(P.CACHE), z3.Not(s.write_local)), s.state == block(S.ABSENT)),
                z3.Implies(z3.And(s.policy == policy(P.CACHE), s.write_local), s.state != block(S.ABSENT)),
            ),
        ),
        "a write's segments are chosen by the policy it was issued under, which cannot change under it",
    ),
    "local_in_at_risk": (lambda s: s.local_at_risk[s.local], "the current value may survive"),
    "local_is_readable": (
        lambda s: z3.Implies(
            z3.And(block_in(s.state, READABLE_LOCALLY), policy_in(s.policy, (P.CACHE, P.INSTALL, P.PASSTHROUGH))),
            z3.Or(s.readable[s.local], z3.And(s.write, s.write_covers, s.write_local, s.local == s.write_data)),
        ),
        "a present block's local copy is what the guest may read, or the write in flight",
    ),
    "server_is_readable": (
        lambda s: z3.Implies(
            z3.Or(policy_in(s.policy, (P.NETWORK, P.CACHE)), block_in(s.state, (S.ABSENT, S.FETCHING))),
            z3.Or(s.readable[s.server], z3.And(s.write, s.write_covers, s.write_remote, s.server == s.write_data)),
        ),
        "the server holds what the guest may read wherever the local disk is not authoritative",
    ),
    "install_server_is_image": (
        lambda s: z3.Implies(
            z3.And(policy_in(s.policy, (P.INSTALL, P.PASSTHROUGH)), block_in(s.state, (S.ABSENT, S.FETCHING, S.WRITING))),
            s.readable[s.server],
        ),
        "install never writes the server: an absent block's image is what the guest may read",
    ),
    "cache_copy_equals_server": (
        lambda s: z3.Implies(
            z3.And(cache_like(s), s.state == block(S.PRESENT), z3.Not(z3.And(s.write, s.write_covers))),
            s.local == s.server,
        ),
        "in cache a present block repeats the server",
    ),
    "landed_write_holds": (
        lambda s: z3.Implies(
            z3.And(s.write, s.write_covers),
            z3.And(
                z3.Implies(z3.And(s.write_local_done, s.write_local_ok), s.local == s.write_data),
                z3.Implies(z3.And(s.write_remote_done, s.write_remote_ok), s.server == s.write_data),
            ),
        ),
        "a write that completed left its data; one not yet completed left the old",
    ),
    "fill_reads_server": (
        lambda s: z3.Implies(
            s.fill == FILL["WRITING"],
            z3.And(s.fill_data == s.server, s.local_at_risk[s.fill_data], s.since_flush[s.fill_data]),
        ),
        "a fill writes what the server holds; no write to the server overlaps it",
    ),
    "readable_may_survive": (lambda s: subset(s.readable, s.may_survive), "what a read may return survives until overwritten"),
    "pending_write_at_risk": (
        lambda s: z3.Implies(
            z3.And(local_write_pending(s), s.write_covers),
            z3.And(s.local_at_risk[s.write_data], s.since_flush[s.write_data]),
        ),
        "a submitted write may reach the medium",
    ),
    "flush_snapshot_is_durable_view": (
        lambda s: z3.Implies(
            z3.And(s.commit != COMMIT["NONE"], s.snapshot),
            z3.And(
                subset(s.since_flush, survives_cut(s)),
                survives_cut(s)[s.flush_covers],
                s.local_at_risk[s.flush_covers],
            ),
        ),
        "what the commit's first flush makes durable on a snapshot block is data the guest may see after a cut",
    ),
    "flush_covers_at_risk": (
        lambda s: z3.Implies(s.commit != COMMIT["NONE"], s.local_at_risk[s.flush_covers]),
        "the value a flush was submitted for may survive",
    ),
    "cache_map_trusted_only_clean": (
        lambda s: z3.Implies(
            z3.And(s.policy == policy(P.CACHE), s.map_may_trust),
            z3.Or(
                s.durable_clean,
                z3.And(
                    block_in_commit(s, ("WRITE_MAP", "FLUSH_AFTER")), s.commit_clean, z3.Not(s.commit_install)
                ),
            ),
        ),
        "the manager knows a trusted cache map is on disk, so it marks it dirty before a write",
    ),
    "network_has_no_trusted_map": (
        lambda s: z3.Implies(
            z3.And(s.policy == policy(P.NETWORK), z3.Not(s.switching)), z3.And(z3.Not(s.map_may_trust), z3.Not(s.persisted))
        ),
        "leaving cache commits a dirty map before network serves the guest",
    ),
    "marked_stays_present": (
        lambda s: z3.Implies(
            z3.And(s.policy != policy(P.NETWORK), s.map_may_trust), s.state == block(S.PRESENT)
        ),
        "a block a trusted map marks stays present: install never drops it, cache writes only under a dirty map",
    ),
    "snapshot_stays_present": (
        lambda s: z3.Implies(
            z3.And(s.commit != COMMIT["NONE"], s.snapshot, z3.Or(s.commit_install, s.commit_clean)),
            s.state == block(S.PRESENT),
        ),
        "nothing drops a present block while a commit runs",
    ),
    "commit_snapshot_covers_trusted": (
        lambda s: z3.Implies(
            z3.And(s.commit != COMMIT["NONE"], s.map_may_trust, s.policy != policy(P.NETWORK)), s.snapshot
        ),
        "a block a map trusts is present, so the next snapshot holds it",
    ),
    "commit_matches_policy": (
        lambda s: z3.Implies(
            s.commit != COMMIT["NONE"],
            z3.And(
                s.commit_install == (s.policy == policy(P.INSTALL)),
                z3.Implies(s.policy == policy(P.NETWORK), z3.Not(s.commit_clean)),
            ),
        ),
        "a commit writes the map of the policy it started under, which cannot change under it",
    ),
    "passthrough_is_quiet": (
        lambda s: z3.Implies(
            s.devirtualized,
            z3.And(s.commit == COMMIT["NONE"], s.fill == FILL["NONE"], s.flush_wait == FLUSH_WAIT["IDLE"], z3.Not(s.switching)),
        ),
        "after de-virtualization the manager starts no fill and no commit",
    ),
    "local_since_flush": (
        lambda s: z3.Implies(s.commit != COMMIT["NONE"], z3.Or(s.local == s.flush_covers, s.since_flush[s.local])),
        "the current value is the one the flush covers or one written since",
    ),
    "cache_write_under_dirty_map": (
        lambda s: z3.Implies(
            z3.And(s.policy == policy(P.CACHE), s.write),
            z3.And(
                z3.Not(s.map_may_trust),
                z3.Not(s.durable_clean),
                z3.Implies(s.commit != COMMIT["NONE"], z3.Not(s.commit_clean)),
            ),
        ),
        "a cache write starts only after a dirty map is durable, and no clean commit runs beside it",
    ),
    "flushed_snapshot_is_readable": (
        lambda s: z3.Implies(
            z3.And(s.flush_wait == FLUSH_WAIT["COMMITTING"], s.snapshot),
            z3.And(subset(s.since_flush, s.readable), s.readable[s.flush_covers]),
        ),
        "while a guest flush's commit runs the guest writes nothing: what it flushes is what the guest may read",
    ),
    "flushed_unsnapshotted_is_image": (
        lambda s: z3.Implies(z3.And(s.flush_wait == FLUSH_WAIT["COMMITTING"], z3.Not(s.snapshot)), s.readable[s.server]),
        "a block outside a guest flush's snapshot was not written since, so the server's copy is readable",
    ),
    "network_snapshots_nothing": (
        lambda s: z3.Implies(z3.And(s.commit != COMMIT["NONE"], s.policy == policy(P.NETWORK)), z3.Not(s.snapshot)),
        "network holds no present block",
    ),
    "cache_trusted_copy_is_server": (
        lambda s: z3.Implies(z3.And(cache_like(s), s.map_may_trust), only(s.local_at_risk, s.server)),
        "under a trusted cache map nothing but the server's data can be on the local medium",
    ),
    "clean_cache_commit_copies_server": (
        lambda s: z3.Implies(
            z3.And(cache_like(s), s.commit != COMMIT["NONE"], s.snapshot, z3.Or(s.commit_clean, s.switching)),
            z3.And(s.flush_covers == s.server, only(s.since_flush, s.server), s.local == s.server),
        ),
        "a clean cache commit, or a switch commit, runs with no guest write: the present copy it flushes is the server's",
    ),
    "switching_blocks_guest": (
        lambda s: z3.Implies(s.switching, z3.And(guest_idle(s), s.fill == FILL["NONE"], s.policy != policy(P.PASSTHROUGH))),
        "a policy change waits for quiescence and serves nothing until its commit lands",
    ),
    "since_flush_at_risk": (lambda s: subset(s.since_flush, s.local_at_risk), "values written since a flush may survive"),
    "map_marks_something": (lambda s: z3.Or(s.map_may_trust, s.map_may_not), "recovery finds some map or none"),
    "persisted_is_durable": (
        lambda s: z3.Implies(
            z3.And(policy_in(s.policy, (P.INSTALL, P.PASSTHROUGH)), z3.Not(s.switching), s.persisted),
            z3.And(s.map_may_trust, z3.Not(s.map_may_not)),
        ),
        "between commits the persisted set is what recovery finds",
    ),
    "flush_wait_in_commit_policies": (
        lambda s: z3.Implies(s.flush_wait != FLUSH_WAIT["IDLE"], z3.And(local_policy(s), z3.Not(s.write))),
        "only cache and install flushes wait for a commit",
    ),
    "committing_flush_has_commit": (
        lambda s: z3.Implies(s.flush_wait == FLUSH_WAIT["COMMITTING"], s.commit != COMMIT["NONE"]),
        "a ticketed flush waits for a commit that is running",
    ),
}


def strengthened(s: State) -> z3.BoolRef:
    """The inductive invariant: the catalogue and the auxiliary facts."""
    return z3.And([p(s) for p in CATALOGUE.values()] + [p(s) for p, _ in STRENGTHENING.values()])
