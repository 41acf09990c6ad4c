"""Recommend (both strategies), vector arithmetic and grouped search against brute-force
numpy references over every point (real RocksDB + FAISS, flat indexes, several shards)."""
import numpy as np
import pytest

from tests.conftest import clustered
from vecdb import FailedPrecondition, InvalidArgument, NotFound

DIM = 16
N = 1200


def _space(X, metric):
    X = np.asarray(X, np.float64)
    return X / np.linalg.norm(X, axis=-1, keepdims=True) if metric == "cosine" else X


def _sim(X, E, metric):
    """(n, m) similarity, higher = closer (l2: minus the squared distance)."""
    if metric == "l2":
        return -((X[:, None, :] - E[None]) ** 2).sum(-1)
    return X @ E.T


def ref_search(ids, X, q, k, metric, skip=()):
    """Exact top-k of query q (already in the metric's space) over rows of X."""
    keep = [i for i, pid in enumerate(ids) if pid not in skip]
    S = _sim(_space(X[keep], metric), q[None], metric)[:, 0]
    order = np.argsort(-S, kind="stable")[:k]
    scores = -S[order] if metric == "l2" else S[order]
    return [ids[keep[j]] for j in order], scores


def ref_best_score(ids, X, pos, neg, k, metric, skip=()):
    keep = [i for i, pid in enumerate(ids) if pid not in skip]
    V = _space(X[keep], metric)
    bp = _sim(V, pos, metric).max(1)
    bn = _sim(V, neg, metric).max(1) if len(neg) else np.full(len(V), -np.inf)
    sig = lambda x: 0.5 * (x / (1 + np.abs(x)) + 1)
    s = np.where(bp > bn, sig(bp), -sig(np.where(bp > bn, 0, bn)))
    order = np.argsort(-s, kind="stable")[:k]
    return [ids[keep[j]] for j in order], s[order]


@pytest.fixture
def data():
    X = clustered(N, DIM, clusters=12, seed=3)
    ids = [f"p{i}" for i in range(N)]
    pays = [{"author": f"a{i % 37}", "year": 2000 + i % 20, "i": i} for i in range(N)]
    return ids, X, pays


def make(db, name, data, metric, shards):
    ids, X, pays = data
    db.create_collection(name, dim=DIM, metric=metric, index="flat", shards=shards)
    db.upsert(name, ids, X, payloads=pays)


METRICS_SHARDS = [("cosine", 1), ("cosine", 3), ("ip", 2), ("l2", 3)]


@pytest.mark.parametrize("metric,shards", METRICS_SHARDS)
def test_recommend_average_equals_reference(db, data, metric, shards):
    ids, X, pays = data
    make(db, "c", data, metric, shards)
    pos_ids, neg_ids = ["p3", "p40", "p77"], ["p500", "p901"]
    raw = clustered(2, DIM, seed=9)[0]
    pos = _space(np.stack([X[3], X[40], X[77], raw]), metric)
    neg = _space(X[[500, 901]], metric)
    q = pos.mean(0) - neg.mean(0)
    q = _space(q[None], metric)[0]
    got = db.recommend("c", pos_ids + [raw], neg_ids, k=15)
    want_ids, want_scores = ref_search(ids, X, q, 15, metric, skip=set(pos_ids + neg_ids))
    assert got.ids == want_ids
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-4)
    # examples come back when asked
    assert "p3" in db.recommend("c", ["p3"], k=3, include_examples=True).ids
    assert "p3" not in db.recommend("c", ["p3"], k=50).ids
    # filter respected: reference over the matching points only
    flt = {"key": "year", "range": {"gte": 2015}}
    got = db.recommend("c", pos_ids, neg_ids, k=10, filter=flt)
    skip = set(pos_ids + neg_ids) | {pid for pid, p in zip(ids, pays) if p["year"] < 2015}
    q = _space((pos[:3].mean(0) - neg.mean(0))[None], metric)[0]
    assert got.ids == ref_search(ids, X, q, 10, metric, skip=skip)[0]


@pytest.mark.parametrize("metric,shards", METRICS_SHARDS)
def test_recommend_best_score_equals_reference(db, data, metric, shards):
    ids, X, pays = data
    make(db, "c", data, metric, shards)
    pos_ids, neg_ids = ["p10", "p600"], ["p11", "p250", "p1100"]
    pos, neg = _space(X[[10, 600]], metric), _space(X[[11, 250, 1100]], metric)
    got = db.recommend("c", pos_ids, neg_ids, strategy="best_score", k=20)
    want_ids, want_scores = ref_best_score(ids, X, pos, neg, 20, metric, set(pos_ids + neg_ids))
    assert got.ids == want_ids
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-5)
    assert "scan" not in got.plan  # answered from the positives' neighbours
    # no negatives: sig(best positive similarity)
    got = db.recommend("c", pos_ids, strategy="best_score", k=7)
    assert got.ids == ref_best_score(ids, X, pos, neg[:0], 7, metric, set(pos_ids))[0]
    # a negative equal to the positive: nothing is closer to a positive, so the ranking is
    # "farthest from the negatives" -> the whole matching set is scored (the exact fallback)
    got = db.recommend("c", ["p10"], [X[10]], strategy="best_score", k=12)
    want_ids, want_scores = ref_best_score(ids, X, pos[:1], pos[:1], 12, metric, {"p10"})
    assert got.plan == "best_score(scan)"
    assert got.ids == want_ids and (got.scores < 0).all()
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-5)
    # the same with a filter (few matches: the candidates hold all of them)
    flt = {"key": "author", "any": ["a1", "a2", "a3", "a4"]}
    for strategy_neg in ([X[10]], neg_ids):
        got = db.recommend("c", ["p10"], strategy_neg, strategy="best_score", k=12, filter=flt)
        skip = {"p10", *[n for n in strategy_neg if isinstance(n, str)]} | {
            pid for pid, p in zip(ids, pays) if p["author"] not in ("a1", "a2", "a3", "a4")}
        negv = pos[:1] if not isinstance(strategy_neg[0], str) else neg
        want_ids, want_scores = ref_best_score(ids, X, pos[:1], negv, 12, metric, skip)
        assert got.ids == want_ids
        np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric,shards", METRICS_SHARDS)
def test_expression_equals_reference(db, data, metric, shards):
    ids, X, pays = data
    make(db, "c", data, metric, shards)
    raw = clustered(3, DIM, seed=11)
    expr = [("+", "id:p5"), ("-", "id:p6"), ("+", raw[0]), (0.5, {"vector": raw[1]}),
            {"id": "p7", "weight": -0.25}]
    T = _space(np.stack([X[5], X[6], raw[0], raw[1], X[7]]), metric)
    w = np.array([1, -1, 1, 0.5, -0.25])
    q = _space((w @ T)[None], metric)[0]
    got = db.search_expression("c", expr, k=12)
    want_ids, want_scores = ref_search(ids, X, q, 12, metric, skip={"p5", "p6", "p7"})
    assert got.ids == want_ids
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-4)
    with_terms = db.search_expression("c", expr, k=12, include_terms=True)
    assert with_terms.ids == ref_search(ids, X, q, 12, metric)[0]
    flt = {"key": "author", "match": "a5"}
    got = db.search_expression("c", expr, k=5, filter=flt)
    skip = {"p5", "p6", "p7"} | {pid for pid, p in zip(ids, pays) if p["author"] != "a5"}
    assert got.ids == ref_search(ids, X, q, 5, metric, skip=skip)[0]


def ref_groups(ids, X, pays, q, metric, key, size, count, skip=()):
    got_ids, _ = ref_search(ids, X, q, len(ids), metric, skip)
    groups: dict = {}
    for pid in got_ids:
        v = pays[int(pid[1:])].get(key)
        if v is not None:
            groups.setdefault(v, []).append(pid)
    return [(g, hits[:size]) for g, hits in list(groups.items())[:count]]


@pytest.mark.parametrize("metric,shards", METRICS_SHARDS)
def test_grouped_search_equals_reference(db, metric, shards):
    # one dominant author near the query, a few rare ones far away, points without the field:
    # the first over-fetch sees few groups, so the discovery and per-group rounds must run
    rng = np.random.default_rng(5)
    near = rng.standard_normal(DIM)
    n = 3000
    X = np.where(np.arange(n)[:, None] < 2400, near + 0.3 * rng.standard_normal((n, DIM)),
                 rng.standard_normal((n, DIM))).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    pays = [{"author": "big"} if i < 2400 else ({} if i % 5 == 0 else {"author": f"a{i % 23}"})
            for i in range(n)]
    db.create_collection("g", dim=DIM, metric=metric, index="flat", shards=shards)
    db.upsert("g", ids, X, payloads=pays)
    q = _space(near[None].astype(np.float32), metric)
    for size, count in ((1, 10), (3, 5), (4, 30)):
        res = db.search_groups("g", q, group_by="author", group_size=size, groups=count)[0]
        want = ref_groups(ids, X, pays, q[0], metric, "author", size, count)
        got = []
        for gk, pid in zip(res.group_keys, res.ids):
            if not got or got[-1][0] != gk:
                got.append((gk, []))
            got[-1][1].append(pid)
        assert got == want, (size, count)
        assert [p["author"] for p in res.payloads] == res.group_keys
    flt = {"key": "author", "except": ["a3", "a4"]}
    res = db.search_groups("g", q, group_by="author", group_size=2, groups=8, filter=flt)[0]
    skip = {pid for pid, p in zip(ids, pays) if p.get("author") in ("a3", "a4")}
    want = ref_groups(ids, X, pays, q[0], metric, "author", 2, 8, skip)
    assert [pid for _, hits in want for pid in hits] == res.ids
    # groups by an expression, its terms left out
    res = db.search_groups("g", None, group_by="author", groups=3, group_size=2,
                           expression=[("+", "id:p2500"), ("+", "id:p2501")])[0]
    qq = _space((_space(X[[2500, 2501]], metric).sum(0))[None], metric)[0]
    want = ref_groups(ids, X, pays, qq, metric, "author", 2, 3, {"p2500", "p2501"})
    assert [pid for _, hits in want for pid in hits] == res.ids


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_grouped_search_fills_groups_whose_members_are_far_apart(db, metric):
    # each small group has one point near the query and its others on the far side, behind
    # 2000 points of one big group: the over-fetch cannot reach them, the fill round must
    rng = np.random.default_rng(8)
    near = rng.standard_normal(DIM)
    small = 500
    X = np.concatenate([near + 0.3 * rng.standard_normal((small + 2000, DIM)),
                        -near + 0.3 * rng.standard_normal((3 * small, DIM))]).astype(np.float32)
    pays = ([{"g": f"s{i}"} for i in range(small)] + [{"g": "big"}] * 2000
            + [{"g": f"s{i % small}"} for i in range(3 * small)])
    ids = [f"p{i}" for i in range(len(X))]
    db.create_collection("far", dim=DIM, metric=metric, index="flat", shards=2)
    db.upsert("far", ids, X, payloads=pays)
    q = _space(near[None].astype(np.float32), metric)
    res = db.search_groups("far", q, group_by="g", group_size=3, groups=5)[0]
    want = ref_groups(ids, X, pays, q[0], metric, "g", 3, 5)
    assert sum(len(h) for _, h in want) == 15
    assert res.ids == [pid for _, hits in want for pid in hits]
    assert res.group_keys == [g for g, hits in want for _ in hits]


def test_grouped_search_integer_and_bool_groups_stay_apart(db):
    X = clustered(200, DIM, seed=1)
    pays = [{"g": [1, True, "1"][i % 3]} for i in range(200)]
    db.create_collection("t", dim=DIM, index="flat")
    db.upsert("t", [f"p{i}" for i in range(200)], X, payloads=pays)
    res = db.search_groups("t", X[:1], group_by="g", groups=5, group_size=2)[0]
    keys = list(dict.fromkeys((type(k).__name__, k) for k in res.group_keys))
    assert sorted(keys, key=str) == sorted([("int", 1), ("bool", True), ("str", "1")], key=str)
    assert len(res.ids) == 6


def test_bad_input_names_the_field_and_writes_nothing(db, data):
    make(db, "c", data, "cosine", 2)
    seqs = [s.applied_seq for s in db.collections["c"].shards]

    def err(cls, fn, field):
        with pytest.raises(cls) as e:
            fn()
        assert e.value.field == field, e.value.message
        return e.value.message

    err(InvalidArgument, lambda: db.recommend("c", []), "positive")
    assert "'nope'" in err(NotFound, lambda: db.recommend("c", ["p1"], ["p2", "nope"]), "negative[1]")
    err(FailedPrecondition, lambda: db.recommend("c", ["p1", {"text": "hi"}]), "positive[1]")
    err(InvalidArgument, lambda: db.recommend("c", ["p1"], k=10_001), "k")
    err(InvalidArgument, lambda: db.recommend("c", ["p1"], strategy="median"), "strategy")
    err(InvalidArgument, lambda: db.recommend("c", [np.zeros(DIM)]), "positive[0]")
    err(InvalidArgument, lambda: db.recommend("c", [[1.0, 2.0]]), "positive[0]")
    err(InvalidArgument, lambda: db.recommend("c", ["p1"], ["p1"]), "positive minus negative examples")
    err(NotFound, lambda: db.search_expression("c", [("+", "id:p1"), ("-", "id:zz")]), "expression[1]")
    err(FailedPrecondition, lambda: db.search_expression("c", [("+", "text:man")]), "expression[0]")
    err(InvalidArgument, lambda: db.search_expression("c", [("*", "id:p1")]), "expression[0]")
    err(InvalidArgument, lambda: db.search_expression("c", [("+", "p1")]), "expression[0]")
    err(InvalidArgument, lambda: db.search_expression("c", []), "expression")
    err(InvalidArgument, lambda: db.search_groups("c", data[1][:1], group_by=""), "group_by")
    err(InvalidArgument, lambda: db.search_groups("c", data[1][:1], group_by="$text"), "group_by")
    err(InvalidArgument, lambda: db.search_groups("c", data[1][:1], group_by="a..b"), "group_by")
    err(InvalidArgument, lambda: db.search_groups("c", data[1][:1], group_by="a",
                                                  groups=200, group_size=100), "groups")
    db.upsert("c", ["arr", "flt"], data[1][:2], payloads=[{"tags": ["x"]}, {"w": 0.5}])
    seqs = [s.applied_seq for s in db.collections["c"].shards]
    q = data[1][:1]
    assert "'tags'" in err(InvalidArgument, lambda: db.search_groups("c", q, group_by="tags"), "group_by")
    err(InvalidArgument, lambda: db.search_groups("c", q, group_by="w"), "group_by")
    assert [s.applied_seq for s in db.collections["c"].shards] == seqs
    assert db.count("c") == N + 2


def test_sign_times_dict_weight(db, data):
    """("-", {"weight": 2}) weighs -2 and ("+", {"weight": -1}) -1 (the dict's weight used to
    replace the sign); a numeric sign multiplies too. Recommend examples take no weight."""
    ids, X, _ = data
    make(db, "c", data, "l2", 2)
    got = db.search_expression("c", [("+", "id:p5"), ("-", {"id": "p6", "weight": 2}),
                                     ("+", {"vector": X[9], "weight": -1}),
                                     (0.5, {"id": "p7", "weight": 4})], k=10)
    q = X[5] - 2 * X[6] - X[9] + 2 * X[7]
    want_ids, want_scores = ref_search(ids, X, q, 10, "l2", skip={"p5", "p6", "p7"})
    assert got.ids == want_ids
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-3)
    with pytest.raises(InvalidArgument) as e:
        db.recommend("c", ["p1", {"id": "p2", "weight": 3}])
    assert e.value.field == "positive[1].weight"


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_best_score_memory_is_bounded_by_blocks(metric):
    """best_score over many candidates and examples computes the (candidates x examples)
    similarities block by block: the peak stays far below one full matrix (32 MiB here),
    and the scores equal the reference's."""
    import tracemalloc
    from vecdb import recommend
    rng = np.random.default_rng(0)
    cand = _space(rng.standard_normal((8192, 8)), metric).astype(np.float32)
    pos = _space(rng.standard_normal((1000, 8)), metric).astype(np.float32)
    neg = _space(rng.standard_normal((1000, 8)), metric).astype(np.float32)
    tracemalloc.start()
    try:
        scores, _, _ = recommend.best_score(cand, pos, neg, metric)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, peak
    bp, bn = _sim(cand, pos, metric).max(1), _sim(cand, neg, metric).max(1)
    sig = lambda x: 0.5 * (x / (1 + np.abs(x)) + 1)
    np.testing.assert_allclose(scores, np.where(bp > bn, sig(bp), -sig(bn)), rtol=1e-4, atol=1e-5)


def test_best_score_scan_lets_writers_in_between_chunks(db, data, monkeypatch):
    """The full-scan fallback reads one chunk per read-lock hold: writes complete while it
    runs (a lock held for the whole scan let none through), and points deleted meanwhile
    are skipped, not an error."""
    import threading
    import time
    from vecdb import recommend
    monkeypatch.setattr(recommend, "_SCAN_CHUNK", 4)
    ids, X, _ = data
    make(db, "c", data, "l2", 1)
    stop, done_at = threading.Event(), []

    def writer():
        i = 0
        while not stop.is_set():
            pid = ids[100 + i % 500]
            db.delete("c", [pid])
            db.upsert("c", [pid], X[100 + i % 500][None])
            done_at.append(time.monotonic())
            i += 1
    score, chunks, between = recommend.best_score, [], []

    def scoring(*a, **kw):  # scored outside the lock: a write can complete meanwhile
        chunks.append(1)
        if len(chunks) == 2:  # between two chunks: wait for one (none if the lock is held)
            n, deadline = len(done_at), time.monotonic() + 10
            while len(done_at) == n and time.monotonic() < deadline:
                time.sleep(0.001)
            between.append(len(done_at) > n)
        return score(*a, **kw)
    monkeypatch.setattr(recommend, "best_score", scoring)
    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.05)
        q = X[10:11].astype(np.float32)
        got = recommend._scan(db.collections["c"], q, q, 12, None, {"p10"}, False, False, False)
    finally:
        stop.set()
        t.join()
    assert len(got.ids) == 12 and "p10" not in got.ids
    assert len(chunks) > 2 and between == [True], (len(chunks), between)
