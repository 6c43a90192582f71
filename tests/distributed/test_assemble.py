"""The driver's regrouping of the Ray engine's tagged batches into whole shards: in order,
across any batch boundaries, and refusing a lost, repeated or misplaced row."""

import numpy as np
import pytest

from modelkit.distributed.data import assemble
from modelkit.distributed.shards import Shard
from modelkit.errors import RuntimeSessionError

SHARDS = [Shard(0, "a.npy", 5, ("data",)), Shard(1, "b.npy", 0, ("data",)),
          Shard(2, "c.npy", 3, ("data",))]


def tagged(pairs):
    """One batch {__shard, __row, y} for [(shard, row), ...]; y = 10 * shard + row."""
    ids = np.array([s for s, _ in pairs])
    rows = np.array([r for _, r in pairs])
    return {"__shard": ids, "__row": rows, "y": 10.0 * ids + rows}


ALL = [(0, r) for r in range(5)] + [(2, r) for r in range(3)]


@pytest.mark.parametrize("cuts", [[8], [1, 7], [5, 3], [2, 2, 2, 2], [1] * 8])
def test_whole_shards_in_order_across_batch_boundaries(cuts):
    batches, at = [], 0
    for n in cuts:
        batches.append(tagged(ALL[at:at + n]))
        at += n
    got = list(assemble(batches, SHARDS, ["y"]))
    assert [s.path for s, _ in got] == ["a.npy", "c.npy"]
    np.testing.assert_array_equal(got[0][1]["y"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(got[1][1]["y"], [20, 21, 22])


@pytest.mark.parametrize("pairs, match", [
    (ALL[:3] + ALL[2:], "a.npy arrived out of order, twice or not at all"),      # repeated
    (ALL[:2] + ALL[3:], "a.npy arrived out of order"),                          # lost
    ([(2, 0)] + ALL, "a.npy arrived"),                                         # misplaced
    (ALL[:7], "stopped after 2 of the 3 rows of c.npy"),                       # cut short
    (ALL[:4], "stopped after 4 of the 5 rows of a.npy"),
    (ALL + [(2, 3)], "1 rows more than the shards hold"),
])
def test_a_lost_or_repeated_row_is_an_error(pairs, match):
    with pytest.raises(RuntimeSessionError, match=match):
        list(assemble([tagged(pairs)], SHARDS, ["y"]))
