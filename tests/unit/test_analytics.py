"""Analytics (vecdb/analytics/) against brute-force references on generated data:
k-means vs faiss.Kmeans on the same vectors in the same order, outlier scores vs
numpy, duplicate pairs vs all pairs in numpy; filters, sampling and bad input."""
import faiss
import numpy as np
import pytest

from vecdb import Database, DatabaseOptions
from vecdb.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from vecdb.topk import shard_of
from tests.conftest import clustered

DIM = 16
KPP = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS  # the engine's default init
INIT = {"kmeans++": KPP, "random": faiss.ClusteringInitMethod_RANDOM}


def _fill(db, name, n=600, metric="l2", shards=2, seed=0, clusters=6):
    vecs = clustered(n, DIM, clusters, seed=seed, spread=0.6)
    ids = [f"p{i:04d}" for i in range(n)]
    pays = [{"grp": "a" if i % 3 else "b", "i": i} for i in range(n)]
    db.create_collection(name, DIM, metric=metric, index="flat", shards=shards)
    db.upsert(name, ids, vecs, pays)
    return ids, vecs, pays


def _gather_order(ids, vecs, shards, keep=None):
    """The order analytics feeds k-means: shard by shard, then write order."""
    rows = [i for i in range(len(ids)) if keep is None or keep[i]]
    rows.sort(key=lambda i: (shard_of(ids[i], shards), i))
    return [ids[i] for i in rows], vecs[rows]


def _prepared(x, metric):
    if metric != "cosine":
        return x
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _distances(x, metric):
    """All-pairs distance matrix in float64 (population.py's definitions)."""
    x = x.astype(np.float64)
    if metric == "l2":
        sq = (x * x).sum(1)
        return np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    ip = x @ x.T
    return 1 - ip if metric == "cosine" else -ip


@pytest.mark.parametrize("metric,init", [("l2", "kmeans++"), ("cosine", "kmeans++"),
                                         ("l2", "random")])
def test_kmeans_matches_faiss_with_the_same_seed(db, metric, init):
    ids, vecs, _ = _fill(db, "c", metric=metric)
    job = db.cluster("c", 6, iterations=15, seed=7, write_label="cluster", wait=True, init=init)
    assert job.state == "done" and job.progress()["phase"] == "done"
    order_ids, x = _gather_order(ids, _prepared(vecs, metric), 2)
    ref = faiss.Kmeans(DIM, 6, niter=15, seed=7, spherical=metric == "cosine",
                       init_method=INIT[init])
    ref.train(x)
    _, want = ref.assign(x)
    res = job.result
    np.testing.assert_allclose(res.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
    assert res.sizes.tolist() == np.bincount(want, minlength=6).tolist()
    inertia = float(((x - ref.centroids[want]) ** 2).sum(dtype=np.float64))
    assert res.inertia == pytest.approx(inertia, rel=1e-5)
    got = {p.id: p.payload["cluster"] for p in db.get("c", order_ids)}
    assert [got[i] for i in order_ids] == want.tolist()
    assert res.labelled == len(ids)
    # the typical members are each cluster's points nearest its centroid
    d = ((x - ref.centroids[want]) ** 2).sum(1)
    for c in range(6):
        members = np.flatnonzero(want == c)
        best = [order_ids[j] for j in members[np.argsort(d[members], kind="stable")][:5]]
        assert [t[0] for t in res.typical[c]] == best
        assert res.typical[c][0][2]["i"] == ids.index(best[0])  # payload comes along
    desc = db.describe_collection("c")
    assert desc.clustering["job_id"] == job.id and desc.clustering["state"] == "done"
    assert db.count("c", {"key": "cluster", "match": 0}) == res.sizes[0]


def test_kmeans_filter_and_sample(db):
    ids, vecs, pays = _fill(db, "c")
    keep = [p["grp"] == "a" for p in pays]
    flt = {"key": "grp", "match": "a"}
    job = db.cluster("c", 4, filter=flt, seed=3, iterations=10, write_label="t", wait=True)
    order_ids, x = _gather_order(ids, vecs, 2, keep)
    ref = faiss.Kmeans(DIM, 4, niter=10, seed=3, init_method=KPP)
    ref.train(x)
    _, want = ref.assign(x)
    assert job.result.points == sum(keep)
    assert job.result.sizes.tolist() == np.bincount(want, minlength=4).tolist()
    got = {p.id: p.payload for p in db.get("c", ids)}
    assert [got[i]["t"] for i in order_ids] == want.tolist()
    assert all("t" not in got[i] for i, k in zip(ids, keep) if not k)  # outside the filter
    # sample: trained on default_rng(seed).choice rows (in gather order), all assigned;
    # a fresh collection: the labels written above re-ordered "c" (last-write order)
    ids, vecs, _ = _fill(db, "s")
    job = db.cluster("s", 4, sample=150, seed=5, iterations=10, wait=True)
    order_ids, x = _gather_order(ids, vecs, 2)
    rows = np.sort(np.random.default_rng(5).choice(len(x), 150, replace=False))
    ref = faiss.Kmeans(DIM, 4, niter=10, seed=5, init_method=KPP)
    ref.train(x[rows])
    _, want = ref.assign(x)
    assert job.result.trained_on == 150 and job.result.points == len(ids)
    np.testing.assert_allclose(job.result.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
    assert job.result.sizes.tolist() == np.bincount(want, minlength=4).tolist()


def test_kmeans_bad_input(db):
    _fill(db, "c", n=50)
    with pytest.raises(InvalidArgument) as e:
        db.cluster("c", 51, wait=True)
    assert e.value.field == "k"
    with pytest.raises(InvalidArgument) as e:
        db.cluster("c", 20, sample=10, wait=True)
    assert e.value.field == "k" and "sample" in e.value.message
    for kwargs, fld in [({"k": 0}, "k"), ({"k": 2, "iterations": 0}, "iterations"),
                        ({"k": 2, "sample": -1}, "sample"), ({"k": 2, "seed": -3}, "seed"),
                        ({"k": 2, "write_label": ""}, "write_label"),
                        ({"k": 2, "write_label": "meta.topic"}, "write_label"),
                        ({"k": 2, "write_label": "$text"}, "write_label"), ({"k": 2, "typical": 1000}, "typical"),
                        ({"k": 2, "init": "forgy"}, "init"),
                        ({"k": 2, "filter": {"bogus": 1}}, None)]:
        with pytest.raises(InvalidArgument) as e:
            db.cluster("c", **kwargs)
        if fld:
            assert e.value.field == fld
    with pytest.raises(FailedPrecondition) as e:
        db.cluster("c", 2, filter={"key": "grp", "match": "zzz"})
    assert e.value.field == "filter"
    with pytest.raises(NotFound):
        db.cluster("nope", 2)
    with pytest.raises(NotFound) as e:
        db.cluster_job("c", "0123")
    assert e.value.field == "job_id"


def test_failed_write_label_writes_nothing(tmp_path):
    with Database.open(str(tmp_path / "d"), DatabaseOptions(background=False,
                                                            max_payload_bytes=200)) as db:
        ids, _, _ = _fill(db, "c", n=100)
        db.update_payload("c", ids=["p0042"], set={"pad": "x" * 150})  # fits, but not with a label
        with pytest.raises(ResourceExhausted):
            db.cluster("c", 3, write_label="topic_label_that_is_long_enough", wait=True)
        assert db.count("c", {"key": "topic_label_that_is_long_enough", "match": 0}) == 0
        assert all("topic_label_that_is_long_enough" not in p.payload for p in db.get("c", ids))
        assert db.describe_collection("c").clustering["state"] == "failed"


def test_cluster_runs_in_the_background(tmp_path):
    with Database.open(str(tmp_path / "d"), DatabaseOptions()) as db:
        _fill(db, "c", n=300)
        job = db.cluster("c", 3, write_label="k")
        assert db.cluster_job("c", job.id) is job
        assert job.wait(60)
        assert job.state == "done", job.error
        assert db.describe_collection("c").clustering["state"] == "done"
        assert sum(db.count("c", {"key": "k", "match": c}) for c in range(3)) == 300


def _ref_knn(x, k, metric):
    d = _distances(x, metric)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k].mean(1)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_outlier_scores_equal_the_exact_reference(db, metric):
    ids, vecs, pays = _fill(db, "c", n=400, metric=metric)
    order_ids, x = _gather_order(ids, _prepared(vecs, metric), 2)
    ref = _ref_knn(x, 7, metric)
    got = db.outliers("c", n=20, k=7)
    want = np.argsort(-ref, kind="stable")[:20]
    assert [o.id for o in got.outliers] == [order_ids[j] for j in want]
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose([o.score for o in got.outliers], ref[want], rtol=1e-4, atol=1e-4 * scale)
    assert got.outliers[0].payload is not None and got.scored == got.population == 400
    # filter: the population is the matching points only
    keep = [p["grp"] == "b" for p in pays]
    order_ids, x = _gather_order(ids, _prepared(vecs, metric), 2, keep)
    ref = _ref_knn(x, 5, metric)
    got = db.outliers("c", n=10, k=5, filter={"key": "grp", "match": "b"})
    want = np.argsort(-ref, kind="stable")[:10]
    assert [o.id for o in got.outliers] == [order_ids[j] for j in want]
    assert got.population == sum(keep)


def test_outliers_sampled_and_centroid(db):
    ids, vecs, _ = _fill(db, "c", n=500)
    order_ids, x = _gather_order(ids, vecs, 2)
    ref = _ref_knn(x, 10, "l2")
    got = db.outliers("c", n=5, sample=100, seed=11)
    rows = np.sort(np.random.default_rng(11).choice(500, 100, replace=False))
    want = rows[np.argsort(-ref[rows], kind="stable")[:5]]
    assert got.scored == 100 and [o.id for o in got.outliers] == [order_ids[j] for j in want]
    np.testing.assert_allclose([o.score for o in got.outliers], ref[want], rtol=1e-4)
    cents = x[:4] + 0.1
    got = db.outliers("c", n=8, method="centroid", centroids=cents)
    d = ((x[:, None, :].astype(np.float64) - cents[None]) ** 2).sum(-1).min(1)
    want = np.argsort(-d, kind="stable")[:8]
    assert [o.id for o in got.outliers] == [order_ids[j] for j in want]
    np.testing.assert_allclose([o.score for o in got.outliers], d[want], rtol=1e-4)


def test_outliers_bad_input(db):
    _fill(db, "c", n=20)
    for kwargs, fld in [({"n": 0}, "n"), ({"method": "lof"}, "method"), ({"k": 20}, "k"),
                        ({"method": "centroid"}, "centroids"),
                        ({"method": "centroid", "centroids": np.zeros((2, 3))}, "centroids"),
                        ({"sample": 0}, "sample")]:
        with pytest.raises(InvalidArgument) as e:
            db.outliers("c", **kwargs)
        assert e.value.field == fld, kwargs
    with pytest.raises(NotFound):
        db.outliers("nope")


def _ref_pairs(ids, x, threshold, metric):
    d = _distances(x, metric)
    i, j = np.nonzero(np.triu(d < threshold, 1))
    return {tuple(sorted((ids[a], ids[b]))): d[a, b] for a, b in zip(i.tolist(), j.tolist())}


def _collect(chunks):
    pairs, last = {}, None
    for ch in chunks:
        for a, b, dist in ch.pairs:
            key = tuple(sorted((a, b)))
            assert key not in pairs
            pairs[key] = dist
        last = ch
    assert last.done
    return pairs, last


@pytest.mark.parametrize("metric,threshold", [("l2", 1.2), ("cosine", 0.02), ("ip", -25.0)])
def test_duplicate_pairs_equal_the_exact_reference(db, metric, threshold):
    rng = np.random.default_rng(1)
    ids, vecs, pays = _fill(db, "c", n=300, metric=metric)
    near = vecs[:60] + 0.05 * rng.standard_normal((60, DIM)).astype(np.float32)  # planted
    nids = [f"q{i:03d}" for i in range(60)]
    db.upsert("c", nids, near, [{"grp": "a"}] * 60)
    all_ids, all_vecs = ids + nids, np.concatenate([vecs, near])
    ref = _ref_pairs(all_ids, _prepared(all_vecs, metric), threshold, metric)
    assert 60 <= len(ref) < 3000
    pairs, last = _collect(db.duplicates("c", threshold, batch=64))
    assert set(pairs) == set(ref)
    for key, dist in pairs.items():
        assert dist == pytest.approx(ref[key], rel=1e-4, abs=1e-4)
    # groups are the connected components of the pairs
    seen = set()
    for g in last.groups:
        assert len(g) >= 2 and not seen & set(g)
        seen |= set(g)
    assert seen == {i for key in ref for i in key}
    group_of = {i: n for n, g in enumerate(last.groups) for i in g}
    assert all(group_of[a] == group_of[b] for a, b in ref)
    # filter: both points must match
    flt = {"key": "grp", "match": "a"}
    grp = {i: (p["grp"] if i in ids else "a") for i, p in zip(ids, pays)} | {i: "a" for i in nids}
    pairs, _ = _collect(db.duplicates("c", threshold, filter=flt))
    assert set(pairs) == {k for k in ref if grp[k[0]] == grp[k[1]] == "a"}
    # limit: at most that many, said truncated
    pairs, last = _collect(db.duplicates("c", threshold, limit=10))
    assert len(pairs) == 10 and last.truncated and set(pairs) <= set(ref)


def test_duplicates_bad_input(db):
    _fill(db, "c", n=20, metric="cosine")
    _fill(db, "e", n=20, metric="l2")
    _fill(db, "i", n=20, metric="ip")
    for coll, t in [("c", -0.1), ("c", 2.5), ("e", -1.0), ("e", 0), ("c", float("nan")), ("c", "x")]:
        with pytest.raises(InvalidArgument) as e:
            db.duplicates(coll, t)
        assert e.value.field == "threshold"
    assert _collect(db.duplicates("i", -1e9))[0] == {}  # ip: any finite threshold is valid
    with pytest.raises(InvalidArgument) as e:
        db.duplicates("c", 0.1, limit=0)
    assert e.value.field == "limit"
    with pytest.raises(NotFound):
        db.duplicates("nope", 0.1)


def test_gather_copies_the_live_matching_vectors_in_order(db):
    """Straight out of the index, deleted points left out, filtered or not."""
    from vecdb.analytics import population
    ids, vecs, pays = _fill(db, "c", n=300)
    db.delete("c", ["p0005", "p0100"])
    keep = [p["grp"] == "a" and i not in ("p0005", "p0100") for i, p in zip(ids, pays)]
    for flt, k in ((None, [i not in ("p0005", "p0100") for i in ids]),
                   ({"key": "grp", "match": "a"}, keep)):
        pop = population.gather(db._get("c"), flt)
        _, want = _gather_order(ids, vecs, 2, k)
        np.testing.assert_array_equal(pop.vectors, want)
        assert pop.vectors.flags.c_contiguous and pop.vectors.dtype == np.float32


def _traced_peak(fn):
    import tracemalloc
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_centroid_outliers_copy_the_population_once(db):
    """The gathered array is scored where it lies: the peak stays well under two copies
    (the population used to be copied again by a fancy index over all of its rows)."""
    n, dim = 20_000, 64
    db.create_collection("big", dim, metric="l2", index="flat", shards=1)
    x = np.random.default_rng(2).standard_normal((n, dim)).astype(np.float32)
    db.upsert("big", [f"q{i}" for i in range(n)], x)
    got, peak = _traced_peak(lambda: db.outliers("big", n=3, method="centroid",
                                                 centroids=x[:2], with_payload=False))
    assert got.scored == n
    assert peak < 1.4 * n * dim * 4, peak


def test_duplicates_memory_does_not_grow_with_the_collection(db):
    """A threshold every pair passes, limit 10: the pair search works block by block and
    keeps what the answer needs (one batch used to hold batch x N hits)."""
    import importlib
    dup_mod = importlib.import_module("vecdb.analytics.duplicates")
    n = 4 * dup_mod.BLOCK + 100
    db.create_collection("near", 4, metric="l2", index="flat", shards=1)
    x = np.random.default_rng(5).standard_normal((n, 4)).astype(np.float32) * 0.01
    db.upsert("near", [f"d{i:05d}" for i in range(n)], x)
    chunks, peak = _traced_peak(lambda: list(db.duplicates("near", 10.0, limit=10, batch=64)))
    pairs = [p for c in chunks for p in c.pairs]
    assert [(a, b) for a, b, _ in pairs] == [("d00000", f"d{j:05d}") for j in range(1, 11)]
    assert chunks[-1].truncated
    hits_per_block = 64 * dup_mod.BLOCK  # ~80 bytes each while a block is sorted out
    assert peak < 100 * hits_per_block, peak  # one batch x all n points: ~4x as many hits


def test_gather_under_concurrent_writes_copies_each_label_its_own_vector(db, monkeypatch):
    """The gather copies a chunk at a time, releasing the shard lock in between; writers
    that delete and rewrite points meanwhile move rows. Every gathered vector must still
    be the one of its point, each point at most once, and the points never touched all
    present."""
    import threading
    import time
    from vecdb.analytics import population
    monkeypatch.setattr(population, "GATHER_CHUNK", 7)
    n = 1500
    vecs = clustered(n, DIM, 6, seed=4)
    ids = [f"g{i:04d}" for i in range(n)]
    db.create_collection("w", DIM, metric="l2", index="flat", shards=2)
    db.upsert("w", ids, vecs)
    coll, stop, done_at, windows = db.collections["w"], threading.Event(), [], []

    def writer():
        rng = np.random.default_rng(1)
        while not stop.is_set():
            pick = rng.choice(n // 2, 20, replace=False)  # only the first half is touched
            db.delete("w", [ids[i] for i in pick[:10]])
            db.upsert("w", [ids[i] for i in pick[10:]], vecs[pick[10:]])
            db.upsert("w", [ids[i] for i in pick[:10]], vecs[pick[:10]])
            done_at.append(time.monotonic())
    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(5):
            t0 = time.monotonic()
            pop = population.gather(coll)
            windows.append((t0, time.monotonic()))
            got_ids, _, _ = population.hydrate(coll, pop, np.arange(len(pop)), False)
            rows = {pid: r for r, pid in enumerate(got_ids) if pid}
            assert len(set(zip(pop.shard.tolist(), pop.labels.tolist()))) == len(pop)
            for pid, r in rows.items():
                np.testing.assert_array_equal(pop.vectors[r], vecs[int(pid[1:])])
            assert all(pid in rows for pid in ids[n // 2:])
    finally:
        stop.set()
        t.join()
    # writers got in while a gather ran (one lock hold per chunk, not per gather)
    assert any(a + (b - a) / 4 < w < b - (b - a) / 4 for a, b in windows for w in done_at)


def test_max_analytics_jobs_caps_concurrent_work(tmp_path):
    """max_analytics_jobs=1: while a duplicates stream is open, outliers and cluster are
    RESOURCE_EXHAUSTED naming the setting; the slot comes back when the stream ends, is
    closed, or is dropped unread, and after a k-means job ends."""
    with Database.open(str(tmp_path / "d"), DatabaseOptions(background=False,
                                                            max_analytics_jobs=1)) as db:
        _fill(db, "c", n=300)
        stream = db.duplicates("c", 5.0, limit=5, batch=16)
        next(stream)
        for call in (lambda: db.outliers("c", n=3), lambda: db.cluster("c", 3, wait=True),
                     lambda: db.duplicates("c", 1.0)):
            with pytest.raises(ResourceExhausted) as e:
                call()
            assert e.value.field == "max_analytics_jobs" and "max_analytics_jobs=1" in e.value.message
        stream.close()
        assert db.outliers("c", n=3).scored == 300
        db.duplicates("c", 1.0)  # dropped unread: gives its slot back
        assert db.cluster("c", 3, wait=True).state == "done"
        assert list(db.duplicates("c", 1e-6))[-1].done  # read to the end
        assert db.outliers("c", n=3).scored == 300
    with Database.open(str(tmp_path / "e"), DatabaseOptions(background=False,
                                                            max_analytics_jobs=0)) as db:
        _fill(db, "c", n=100)
        streams = [db.duplicates("c", 1.0) for _ in range(5)]  # 0: no limit
        assert db.outliers("c", n=2).population == 100 and len(streams) == 5
