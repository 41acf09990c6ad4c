"""Recall against exact ground truth after mixed upsert/replace/delete, per index type."""
import numpy as np
import pytest

from tests.conftest import clustered
from vecdb import SearchParams

DIM = 32


def brute_force(model: dict, queries: np.ndarray, k: int, metric: str):
    ids = list(model)
    X = np.stack([model[i] for i in ids])
    Q = queries
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        S = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
        order = np.argsort(S, axis=1)[:, :k]
    else:
        S = Q @ X.T
        order = np.argsort(-S, axis=1)[:, :k]
    return [[ids[j] for j in row] for row in order], np.take_along_axis(S, order, 1)


def score_of(vec, q, metric):
    if metric == "l2":
        return float(((vec - q) ** 2).sum())
    if metric == "cosine":
        return float(vec @ q / np.linalg.norm(vec) / np.linalg.norm(q))
    return float(vec @ q)


def mixed_workload(db, name, n, seed=0):
    """Insert n, replace 20%, delete 10%, insert 10% more; returns the model."""
    rng = np.random.default_rng(seed)
    X = clustered(int(n * 1.3), DIM, seed=seed)
    model = {}
    ids = [f"p{i}" for i in range(n)]
    for lo in range(0, n, 1000):
        db.upsert(name, ids[lo:lo + 1000], X[lo:lo + 1000], [{"i": i} for i in range(lo, min(n, lo + 1000))])
    model.update(zip(ids, X[:n]))
    db.maintain()  # ANN indexes get built here (threshold is low in these tests)
    rep = rng.choice(n, n // 5, replace=False)
    newv = X[n:n + len(rep)]
    db.upsert(name, [ids[j] for j in rep], newv)
    model.update({ids[j]: v for j, v in zip(rep, newv)})
    dele = [ids[j] for j in rng.choice(n, n // 10, replace=False)]
    db.delete(name, dele)
    for d in dele:
        model.pop(d, None)
    extra = [f"q{i}" for i in range(n // 10)]
    db.upsert(name, extra, X[n + len(rep):n + len(rep) + len(extra)] + 0.01)
    model.update(zip(extra, X[n + len(rep):n + len(rep) + len(extra)] + 0.01))
    return model, set(dele)


@pytest.mark.parametrize("index,metric,min_recall", [
    ("flat", "cosine", 1.0), ("flat", "l2", 1.0), ("flat", "ip", 1.0),
    ("ivf_flat", "cosine", 0.95), ("ivf_flat", "l2", 0.95),
    ("ivf_pq", "cosine", 0.95), ("ivf_pq", "l2", 0.95),
    ("hnsw", "cosine", 0.95), ("hnsw", "ip", 0.95),
    ("auto", "cosine", 0.95),
])
def test_recall_after_mixed_writes(db, index, metric, min_recall):
    params = {} if index == "flat" else {"build_threshold": 2000}
    db.create_collection("c", DIM, metric=metric, index=index, index_params=params, shards=2)
    model, deleted = mixed_workload(db, "c", 6000)
    db.maintain()  # HNSW compaction / IVF retrain if due
    desc = db.describe_collection("c")
    assert desc.points == len(model) == db.count("c")
    assert desc.index_state == ("exact" if index == "flat" else "built")
    queries = clustered(200, DIM, seed=99)
    truth, truth_scores = brute_force(model, queries, 10, metric)
    results = db.search("c", queries, k=10)
    hits = 0
    for q, res, want in zip(queries, results, truth):
        assert len(res) == 10
        for h in res:
            assert h.id not in deleted
            # the score is the one of the CURRENT vector: replaced vectors never leak
            assert h.score == pytest.approx(score_of(model[h.id], q, metric), rel=1e-3, abs=1e-3)
        hits += len(set(res.ids) & set(want))
    recall = hits / (10 * len(queries))
    assert recall >= min_recall, f"{index}/{metric}: recall@10 {recall:.3f}"
    exact = db.search("c", queries[:20], k=10, params=SearchParams(exact=True))
    for res, want_s in zip(exact, truth_scores[:20]):
        np.testing.assert_allclose(res.scores, want_s, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shards", [1, 3, 8])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_merge_across_shards(db, shards, metric):
    db.create_collection("c", 8, metric=metric, index="flat", shards=shards)
    X = clustered(3000, 8, seed=shards)
    ids = [f"id{i}" for i in range(3000)]
    db.upsert("c", ids, X)
    Q = clustered(50, 8, seed=7)
    truth, truth_s = brute_force(dict(zip(ids, X)), Q, 25, metric)
    for res, want, want_s in zip(db.search("c", Q, k=25), truth, truth_s):
        np.testing.assert_allclose(res.scores, want_s, rtol=1e-4, atol=1e-4)
        assert res.ids[:5] == want[:5] or np.allclose(res.scores[:5], want_s[:5])


def test_k_larger_than_collection_returns_all(db):
    db.create_collection("c", 4, shards=3, index="hnsw", index_params={"build_threshold": 1})
    db.upsert("c", ["a", "b", "c"], np.eye(3, 4, dtype=np.float32) + 0.1)
    db.maintain()
    [res] = db.search("c", [[1, 0, 0, 0]], k=100)
    assert sorted(res.ids) == ["a", "b", "c"]
    assert list(res.scores) == sorted(res.scores, reverse=True)


def test_hnsw_tombstones_compact(db):
    db.create_collection("c", 16, index="hnsw", index_params={"build_threshold": 100})
    X = clustered(1000, 16)
    ids = [str(i) for i in range(1000)]
    db.upsert("c", ids, X)
    db.maintain()
    db.delete("c", ids[:300])
    stats = db.describe_collection("c").shards[0]
    assert stats.deleted_pending == 300
    for res in db.search("c", X[:300], k=5):
        assert not set(res.ids) & set(ids[:300])
    assert db.maintain() == 1  # 30% tombstones: rebuilt without them
    assert db.describe_collection("c").shards[0].deleted_pending == 0
    for res in db.search("c", X[:300], k=5):
        assert not set(res.ids) & set(ids[:300])


def test_ivf_pq_waits_for_enough_training_points(db):
    db.create_collection("c", 8, index="ivf_pq", index_params={"build_threshold": 10, "m": 4})
    X = clustered(200, 8)
    db.upsert("c", [str(i) for i in range(200)], X)
    assert db.maintain() == 0  # PQ with 8-bit codes needs >= 256 training points
    assert db.describe_collection("c").index_state == "exact"
    assert db.search("c", X[:1], k=1)[0].ids == ["0"]
    db.upsert("c", [f"more{i}" for i in range(100)], clustered(100, 8, seed=3))
    assert db.maintain() == 1 and db.describe_collection("c").index_state == "built"
