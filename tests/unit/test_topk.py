import numpy as np
import pytest

from vecdb import topk
from vecdb.topk import merge, shard_of


def test_shard_of_is_stable_and_spreads():
    # Stable across processes: fixed CRC32 values, not Python's salted hash().
    assert shard_of("a", 8) == 3  # crc32(b"a") = 0xE8B7BE43
    assert shard_of("anything", 1) == 0
    counts = np.bincount([shard_of(f"id-{i}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 800


@pytest.mark.parametrize("higher", [True, False])
@pytest.mark.parametrize("nshards", [1, 3, 8])
@pytest.mark.parametrize("sort_all_max", [0, 4096])  # the partition path and the sort-all one
def test_merge_equals_brute_force(higher, nshards, sort_all_max, monkeypatch):
    monkeypatch.setattr(topk, "SORT_ALL_MAX", sort_all_max)
    rng = np.random.default_rng(nshards)
    q, k = 5, 7
    parts, all_s, all_id = [], [], []
    for s in range(nshards):
        n = int(rng.integers(0, 12))
        scores = rng.standard_normal((q, n)).astype(np.float32)
        order = np.argsort(-scores if higher else scores, axis=1)[:, :k]
        sc = np.take_along_axis(scores, order, 1)
        labels = order.astype(np.int64) + 1000 * s
        pad = k - sc.shape[1]  # shards with fewer than k points pad with -1 like FAISS
        parts.append((np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan),
                      np.pad(labels, ((0, 0), (0, pad)), constant_values=-1)))
        all_s.append(scores)
        all_id.append(np.arange(n)[None, :].repeat(q, 0) + 1000 * s)
    S, L = np.concatenate(all_s, 1), np.concatenate(all_id, 1)
    scores, which, labels = merge(parts, k, higher)
    for i in range(q):
        want = np.sort(S[i])[::-1][:k] if higher else np.sort(S[i])[:k]
        got = scores[i][labels[i] >= 0]
        np.testing.assert_allclose(got, want)
        assert set(labels[i][labels[i] >= 0]) <= set(L[i])
        assert ((labels[i][labels[i] >= 0] // 1000) == which[i][labels[i] >= 0]).all()
