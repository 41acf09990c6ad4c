"""A real etcd and 3 real vecdb-server nodes: keyword, sparse and hybrid search are single
node only for now; the cluster refuses them with FAILED_PRECONDITION instead of answering
a plain dense search (or dropping sparse vectors) silently."""
from __future__ import annotations

import numpy as np
import pytest

from test_cluster import cluster  # noqa: F401 - the same fixture
from vecdb_client import FailedPreconditionError

DIM = 4


def test_keyword_and_sparse_requests_are_refused(cluster):
    pytest.importorskip("tantivy")
    with cluster.client() as c:
        c.create_collection("hyb", dim=DIM, shards=2, full_text="plain")
        c.upsert("hyb", ["a", "b"], np.eye(2, DIM, dtype=np.float32), texts=["x", "y"])
        for kwargs in (dict(keywords="x"), dict(vector=[1.0] * DIM, keywords="x"),
                       dict(sparse=([1], [1.0]))):
            with pytest.raises(FailedPreconditionError):
                c.search("hyb", **kwargs)
        with pytest.raises(FailedPreconditionError):
            c.upsert("hyb", ["c"], np.ones((1, DIM), np.float32), sparse=[([1], [1.0])])
        with pytest.raises(FailedPreconditionError):
            c.create_collection("sp", dim=DIM, sparse_dim=10)
        assert "sp" not in [x.name for x in c.list_collections()]
        assert [h.id for h in c.search("hyb", [1.0, 0, 0, 0], k=1)] == ["a"]  # still serving
        assert c.count("hyb") == 2
