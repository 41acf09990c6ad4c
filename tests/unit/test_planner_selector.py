"""planner.selector allows exactly its labels, also for labels above the largest allowed
one (the bitmap's size is in bytes: a size in bits let the selector read past its
buffer, and a filtered HNSW search returned points outside the filter)."""
from __future__ import annotations

import faiss
import numpy as np

from vecdb.planner import selector


def test_selector_allows_exactly_its_labels():
    rng = np.random.default_rng(3)
    for allowed in (np.arange(1, 2001), np.sort(rng.choice(5000, 700, replace=False)),
                    np.array([5, 10_000_000])):
        sel = selector(allowed)
        probe = np.unique(np.concatenate([allowed, rng.integers(0, 3 * int(allowed[-1]), 3000)]))
        got = np.array([sel.is_member(int(x)) for x in probe])
        assert (got == np.isin(probe, allowed)).all()


def test_filtered_hnsw_search_stays_inside_the_selector():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 8)).astype(np.float32)
    index = faiss.IndexIDMap(faiss.IndexHNSWFlat(8, 32))
    index.add_with_ids(x, np.arange(1, 4001))
    params = faiss.SearchParametersHNSW(efSearch=200, sel=selector(np.arange(1, 2001)))
    _, labels = index.search(rng.standard_normal((8, 8)).astype(np.float32), 10, params=params)
    assert ((labels >= 1) & (labels <= 2000)).all()
