"""While a commit of a client copies, the operator's `reset` and `compact` of that client are refused
with a clear error and change nothing; once the copy is done the same request succeeds.

The commit is begun as the control channel begins it (its answer is the copy, for a thread) and held
in progress for real: one chunk of three copied by hand when the operator asks.
"""

import dataclasses

import pytest

from impl.server.config import TargetConfig
from impl.server.control import guarded, run_operation
from impl.server.frames import format_mac
from impl.server.operations import Operations
from impl.server.overlay import COMMIT_CHUNK_SECTORS
from spec.aoe.constants import SECTOR_BYTES
from tests.server.conftest import CLIENT_A, image_bytes, make_target

CHUNKS = 3  # the operator asks with one chunk copied and the rest to go
SECTORS = CHUNKS * COMMIT_CHUNK_SECTORS
BASE = image_bytes(SECTORS)
MAC = format_mac(CLIENT_A)


@dataclasses.dataclass
class Served:
    operations: Operations
    disk: object
    images: object
    copies: list = dataclasses.field(default_factory=list)  # commits begun and not yet finished

    def whole_disk(self) -> bytes:
        return self.disk.read(0, SECTORS)

    def begin_commit(self) -> None:
        """A commit of the client to `golden`, begun, with its first chunk copied and the rest to go."""
        begun = run_operation(self.operations, {"op": "commit", "mac": MAC, "name": "golden"})
        assert begun["ok"], begun
        self.copies.append(begun["result"])
        overlay = self.disk.overlay
        assert overlay.lib.dp_commit_step(overlay.handle) > 0, "the copy is not complete"

    def finish_commit(self) -> dict:
        return guarded("commit", self.copies.pop())


@pytest.fixture
def served(tmp_path, images):
    (images / "big.img").write_bytes(BASE)
    target = make_target(tmp_path, images, targets=[TargetConfig(0, 0, "big", None)])
    disk = target.disks.open(CLIENT_A, target.catalogue.get("big"), read_only=False)
    disk.write(0, b"a" * 2 * SECTOR_BYTES)
    disk.write(1, b"b" * 2 * SECTOR_BYTES)  # overlaps the first: the journal holds a record compaction merges
    disk.write(SECTORS - 1, b"c" * SECTOR_BYTES)  # in the last chunk, which the copy has not reached when the operator asks
    served = Served(Operations(target.catalogue, target.disks, set()), disk, images)
    yield served
    while served.copies:
        served.finish_commit()  # closing waits for a commit's copy: a failed test must not leave one hanging
    target.disks.close()


@pytest.mark.parametrize("op", ["reset", "compact"])
def test_a_request_that_changes_the_overlay_is_refused_while_a_commit_copies(served, op):
    before, described = served.whole_disk(), served.disk.describe()
    served.begin_commit()
    answer = run_operation(served.operations, {"op": op, "mac": MAC})
    assert not answer["ok"] and f"a commit of client {MAC} is in progress" in answer["error"], answer
    assert served.whole_disk() == before and served.disk.describe() == described, "the refused request changed nothing"
    assert served.finish_commit()["ok"]
    assert (served.images / "golden.img").read_bytes() == before, "the new image is the disk untouched by the refused request"


def test_a_reset_refused_during_a_commit_succeeds_once_the_commit_is_done(served):
    served.begin_commit()
    assert not run_operation(served.operations, {"op": "reset", "mac": MAC})["ok"]
    assert served.finish_commit()["ok"]
    answer = run_operation(served.operations, {"op": "reset", "mac": MAC})
    assert answer["ok"] and answer["result"]["overlay_sectors"] == 0, answer
    assert served.whole_disk() == BASE, "the client sees its base image again"


def test_a_compact_refused_during_a_commit_succeeds_once_the_commit_is_done(served):
    before, journal_before = served.whole_disk(), served.disk.overlay.journal_bytes()
    served.begin_commit()
    assert not run_operation(served.operations, {"op": "compact", "mac": MAC})["ok"]
    assert served.finish_commit()["ok"]
    answer = run_operation(served.operations, {"op": "compact", "mac": MAC})
    assert answer["ok"] and answer["result"]["overlay_journal_bytes"] < journal_before, answer
    assert served.whole_disk() == before, "compaction keeps every sector"
