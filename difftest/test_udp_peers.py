"""The server's UDP MAC table (impl/server/datapath/peers.c) against its specification (spec/aoe/udp_peers.py).

Hypothesis sequences of claims: a few MACs and sender addresses, a clock that moves by fractions of
the takeover time and sometimes by exactly it, and a small capacity so the table fills and forgets.
Every claim's answer, the refusal count and the number of MACs held must be the spec's.
"""

from hypothesis import example, given
from hypothesis import strategies as st

from impl.server.datapath import library
from spec.aoe.udp_peers import TAKEOVER_SECONDS, PeerTable

CAPACITY = 4
MACS = [bytes([2, 0, 0, 0, 0, n]) for n in range(1, 7)]
SENDERS = [bytes([2, 0]) + port.to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(8) for port in (40001, 40002, 40003)]  # sockaddr_in
STEPS = st.sampled_from([0.0, 1.0, TAKEOVER_SECONDS / 3, TAKEOVER_SECONDS - 1, TAKEOVER_SECONDS, TAKEOVER_SECONDS + 0.5])
CLAIMS = st.lists(st.tuples(st.sampled_from(MACS), st.sampled_from(SENDERS), STEPS), max_size=60)


@example(claims=[(MACS[0], SENDERS[0], 0.0), (MACS[0], SENDERS[1], TAKEOVER_SECONDS)])  # exactly the takeover time: taken over
@example(claims=[(m, SENDERS[0], 0.0) for m in MACS[:CAPACITY]] + [(MACS[4], SENDERS[1], TAKEOVER_SECONDS - 1), (MACS[4], SENDERS[1], 1.0)])
@given(claims=CLAIMS)
def test_the_mac_table_answers_every_claim_as_the_spec(claims):
    lib = library()
    table = lib.dp_peers_new(TAKEOVER_SECONDS, CAPACITY)
    spec = PeerTable(capacity=CAPACITY)
    now = 1000.0
    try:
        for mac, sender, step in claims:
            now += step
            assert bool(lib.dp_peers_claim(table, mac, sender, len(sender), now)) == spec.claim(mac, sender, now)
            assert lib.dp_peers_refusals(table).contents.count == spec.refused
            assert lib.dp_peers_count(table) == len(spec.owners)
    finally:
        lib.dp_peers_free(table)
