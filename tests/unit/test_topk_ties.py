"""vecdb.topk.merge keeps its documented tie order (shard order, then rank) also where
argpartition cuts through ties at the k-th place: equal to a stable reference sort on
small integer scores (many ties), missing slots (-1) last, both score directions."""
import numpy as np
import pytest

from vecdb import topk
from vecdb.topk import merge


@pytest.mark.parametrize("sort_all_max", [0, 4096])  # the partition path and the sort-all one
def test_merge_ties_equal_a_stable_reference(sort_all_max, monkeypatch):
    monkeypatch.setattr(topk, "SORT_ALL_MAX", sort_all_max)
    rng = np.random.default_rng(0)
    for _ in range(500):
        q, width, shards = 3, 6, 3
        parts = []
        for _ in range(shards):
            scores = np.sort(rng.integers(0, 4, (q, width)).astype(np.float32), axis=1)[:, ::-1]
            labels = rng.integers(0, 100, (q, width))
            labels[rng.random((q, width)) < 0.1] = -1
            parts.append((scores, labels))
        k, hib = int(rng.integers(1, 20)), bool(rng.integers(0, 2))
        _, which, got = merge(parts, k, hib)
        all_scores = np.concatenate([p[0] for p in parts], 1)
        all_labels = np.concatenate([p[1] for p in parts], 1)
        all_which = np.repeat(np.arange(shards), width)
        for i in range(q):
            key = (-all_scores[i] if hib else all_scores[i]).astype(np.float64)
            key[all_labels[i] < 0] = np.inf
            want = np.lexsort((np.arange(shards * width), key))[:k]
            assert got[i].tolist() == all_labels[i][want].tolist()
            assert which[i].tolist() == all_which[want].tolist()
