"""The server's interceptors build their wrapper of a method's handler once, not per call."""
from __future__ import annotations

from collections import Counter

import numpy as np

from harness import InProcessServer
from vecdb_server.interceptors import WrapCache

CHAIN = 4  # metrics, drain, guard, error: each wraps every /vecdb.v1. method


def test_each_interceptor_wraps_a_method_once_across_calls(tmp_path, monkeypatch):
    built: list[str] = []
    real = WrapCache.get

    def counting(self, method, handler, build):
        return real(self, method, handler, lambda: (built.append(method), build())[1])
    monkeypatch.setattr(WrapCache, "get", counting)
    srv = InProcessServer(tmp_path / "data")
    try:
        with srv.client() as c:
            c.create_collection("c", dim=4)
            rng = np.random.default_rng(0)
            for i in range(5):
                c.upsert("c", [f"p{i}"], rng.random((1, 4), dtype=np.float32))
                hits = c.search("c", rng.random(4, dtype=np.float32), k=3)
                assert len(hits) == min(i + 1, 3)
    finally:
        srv.stop()
    counts = Counter(built)
    assert counts["/vecdb.v1.PointService/Search"] == CHAIN, counts
    assert counts["/vecdb.v1.PointService/Upsert"] == CHAIN, counts
