"""A real etcd and 3 real vecdb-server nodes: keyword (BM25) and hybrid search through
the cluster answer exactly what a single server with the same shards answers (ids,
scores, payloads, the explain plan's ranks); sparse search and sparse vectors are
still refused with FAILED_PRECONDITION (they are not replicated yet)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from test_cluster import cluster, single  # noqa: F401 - the same fixtures
from vecdb_client import FailedPreconditionError, InvalidArgumentError

DIM = 4
WORDS = ["pump", "valve", "motor", "seal", "farm", "water", "spare", "part"]


def _texts(n: int) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choices(WORDS, k=rng.randrange(2, 9))) + f" code{i}x" for i in range(n)]


def _hits(hits) -> list[tuple]:
    return [(h.id, pytest.approx(h.score, rel=1e-6), h.payload, h.text) for h in hits]


def test_keyword_and_hybrid_search_equal_a_single_server(cluster, single):
    pytest.importorskip("tantivy")
    n = 120
    vecs = np.random.default_rng(2).standard_normal((n, DIM)).astype(np.float32)
    ids, texts = [f"p{i}" for i in range(n)], _texts(n)
    with cluster.client() as c, single.client() as s:
        for cl in (c, s):
            cl.create_collection("hyb", dim=DIM, shards=3, full_text="english")
            cl.upsert("hyb", ids, vecs, texts=texts, payloads=[{"n": i} for i in range(n)])
        q = np.random.default_rng(5).standard_normal((2, DIM)).astype(np.float32)
        flt = {"key": "n", "range": {"lt": 90}}
        asks = [dict(keywords="pumps seal", k=20), dict(keywords="code7x", k=3),
                dict(keywords="motor", k=10, filter=flt),
                dict(vector=q[0], keywords="valve water", k=10),
                dict(vector=q[0], keywords="valve", k=5, fusion="weighted", weights=[0.3, 1.0],
                     filter=flt),
                dict(vector=q[0], keywords="farm", k=7, rrf_k=10.0)]
        for kwargs in asks:
            got, want = c.search("hyb", **kwargs), s.search("hyb", **kwargs)
            assert want and _hits(got) == _hits(want), kwargs
        both = dict(vectors=q, keywords=["pump", "code9x"], k=4)
        assert [_hits(r) for r in c.search("hyb", **both)] == \
            [_hits(r) for r in s.search("hyb", **both)]
        (got, plan), (want, want_plan) = (cl.search("hyb", q[1], keywords="seal", k=5, explain=True)
                                          for cl in (c, s))
        assert _hits(got) == _hits(want)
        assert plan.split("; query 0 hits: ")[1] == want_plan.split("; query 0 hits: ")[1]
        c.delete("hyb", ["p7"])
        assert c.search("hyb", keywords="code7x", k=3) == []
        for kwargs, field in [(dict(keywords="x", vector=q[0], fusion="max"), "fusion"),
                              (dict(keywords=["a", "b"], vector=q[0]), "keywords")]:
            with pytest.raises(InvalidArgumentError) as ei:
                c.search("hyb", **kwargs)
            assert ei.value.field == field


def test_sparse_requests_are_refused(cluster):
    pytest.importorskip("tantivy")
    with cluster.client() as c:
        c.create_collection("dense_only", dim=DIM, shards=2)
        c.upsert("dense_only", ["a", "b"], np.eye(2, DIM, dtype=np.float32))
        with pytest.raises(InvalidArgumentError) as ei:  # no full_text
            c.search("dense_only", keywords="x")
        assert ei.value.field == "keywords"
        with pytest.raises(FailedPreconditionError):
            c.search("dense_only", sparse=([1], [1.0]))
        with pytest.raises(FailedPreconditionError):
            c.upsert("dense_only", ["c"], np.ones((1, DIM), np.float32), sparse=[([1], [1.0])])
        with pytest.raises(FailedPreconditionError):
            c.create_collection("sp", dim=DIM, sparse_dim=10)
        assert "sp" not in [x.name for x in c.list_collections()]
        assert [h.id for h in c.search("dense_only", [1.0, 0, 0, 0], k=1)] == ["a"]
        assert c.count("dense_only") == 2
