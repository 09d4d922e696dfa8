"""The data path's numbers (datapath_constants.h) are generated from spec/aoe and impl/server, never hand-copied."""

from impl.server.datapath.generate_constants import HEADER_PATH, render


def test_the_committed_datapath_header_is_what_the_generator_writes():
    assert HEADER_PATH.read_text() == render(), "regenerate: python -m impl.server.datapath.generate_constants"
