"""A real etcd and 3 real vecdb-server nodes refuse named vectors (not replicated yet):
creating a collection with vector fields, upserting or updating named vectors, and
searching, range-searching or recommending with using= are FAILED_PRECONDITION naming
them; nothing is written and the cluster keeps serving."""
from __future__ import annotations

import numpy as np
import pytest

from test_cluster import cluster  # noqa: F401 - the same fixture
from vecdb_client import FailedPreconditionError

DIM = 4


def test_named_vectors_are_refused(cluster):  # noqa: F811 - the fixture
    with cluster.client() as c:
        with pytest.raises(FailedPreconditionError) as ei:
            c.create_collection("nv", dim=DIM, vectors=[{"name": "image", "dim": 3}])
        assert "named vectors" in ei.value.message
        assert "nv" not in [x.name for x in c.list_collections()]
        c.create_collection("plain", dim=DIM, shards=2)
        c.upsert("plain", ["a", "b"], np.eye(2, DIM, dtype=np.float32))
        calls = [
            lambda: c.upsert("plain", ["c"], np.ones((1, DIM), np.float32),
                             named={"image": [np.ones(3)]}),
            lambda: c.update_vectors("plain", ["a"], named={"image": [np.ones(3)]}),
            lambda: c.search("plain", np.ones(3), k=1, using="image"),
            lambda: c.range_search("plain", np.ones(3), threshold=0.5, using="image"),
            lambda: c.recommend("plain", ["a"], k=1, using="image"),
        ]
        for call in calls:
            with pytest.raises(FailedPreconditionError) as ei:
                call()
            assert "named vectors" in ei.value.message
        assert c.count("plain") == 2 and not c.get("plain", ["c"])
        assert [h.id for h in c.search("plain", [1.0, 0, 0, 0], k=1)] == ["a"]
