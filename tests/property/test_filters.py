"""Filters against a brute-force evaluator (tests/property/reference_filter.py).

Random payloads (nested objects, arrays, missing keys, mixed types) and random
filters: count, scroll, exact filtered search and delete-by-filter must agree
with brute force, with and without payload indexes. Then selectivity from
0.01% to 100%: results are always min(k, matches); exact for flat; recall@10
>= 0.95 against the exact filtered results for the ANN indexes.
"""
from __future__ import annotations

import datetime as dt

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import clustered
from vecdb import Database, DatabaseOptions, SearchParams

from .reference_filter import evaluate

DIM = 8
N = 600
CATS = ["red", "green", "blue", "x y", "Ünï"]
INDEXES = {"cat": "keyword", "n": "integer", "score": "float", "flag": "bool", "when": "datetime",
           "$text": "text", "nested.x": "integer", "tags": "keyword"}


def make_payload(rng: np.random.Generator, i: int):
    p = {}
    if rng.random() < 0.85:
        p["cat"] = CATS[rng.integers(len(CATS))]
    r = rng.random()
    if r < 0.6:
        p["n"] = int(rng.integers(0, 100))
    elif r < 0.7:
        p["n"] = float(rng.integers(0, 100)) + 0.5
    elif r < 0.75:
        p["n"] = str(rng.integers(0, 100))       # a string where numbers usually are
    elif r < 0.8:
        p["n"] = None
    if rng.random() < 0.7:
        p["score"] = float(rng.random())
    if rng.random() < 0.6:
        p["flag"] = bool(rng.random() < 0.5) if rng.random() < 0.8 else int(rng.integers(0, 2))
    if rng.random() < 0.7:
        p["tags"] = [CATS[j] for j in rng.choice(len(CATS), int(rng.integers(0, 3)), replace=False)]
    if rng.random() < 0.6:
        day = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=int(rng.integers(0, 24 * 60)))
        p["when"] = day.isoformat() if rng.random() < 0.5 else day.strftime("%Y-%m-%dT%H:%M:%SZ")
    if rng.random() < 0.7:
        p["nested"] = {"x": int(rng.integers(0, 10)),
                       "items": [{"k": CATS[int(rng.integers(len(CATS)))]} for _ in range(int(rng.integers(0, 3)))]}
    return p


def dataset(seed=7):
    rng = np.random.default_rng(seed)
    ids = [f"id{i:04d}" for i in range(N)]
    payloads = [make_payload(rng, i) for i in range(N)]
    texts = [None if rng.random() < 0.2 else " ".join(rng.choice(["alpha", "beta", "Gamma", "delta", "ε"],
                                                                 3).tolist()) for _ in range(N)]
    return ids, clustered(N, DIM, seed=seed), payloads, texts


scalars = st.one_of(st.sampled_from(CATS), st.integers(0, 100), st.booleans())
keys = st.sampled_from(["cat", "n", "score", "flag", "tags", "when", "nested.x", "nested.items.k",
                        "missing", "nested"])
dates = st.sampled_from(["2024-01-15T00:00:00Z", "2024-02-01", "2024-02-20T12:00:00+02:00"])
numbers = st.one_of(st.integers(-5, 105), st.floats(-5, 105, allow_nan=False))


@st.composite
def ranges(draw):
    bound = dates if draw(st.booleans()) and draw(st.booleans()) else numbers
    ops = draw(st.lists(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1, max_size=2, unique=True))
    if set(ops) in ({"gt", "gte"}, {"lt", "lte"}):
        ops = ops[:1]
    return {op: draw(bound) for op in ops}


conditions = st.one_of(
    st.builds(lambda k, v: {"key": k, "match": v}, keys, scalars),
    st.builds(lambda k, v: {"key": k, "any": v}, keys, st.lists(scalars, max_size=3)),
    st.builds(lambda k, v: {"key": k, "except": v}, keys, st.lists(scalars, max_size=3)),
    st.builds(lambda k, r: {"key": k, "range": r}, keys, ranges()),
    st.builds(lambda k, b: {"key": k, "exists": b}, keys, st.booleans()),
    st.builds(lambda k, b: {"key": k, "is_null": b}, keys, st.booleans()),
    st.builds(lambda k, b: {"key": k, "is_empty": b}, keys, st.booleans()),
    st.builds(lambda ids: {"has_id": ids}, st.lists(st.sampled_from([f"id{i:04d}" for i in range(0, N, 7)]
                                                                    + ["nope"]), max_size=20)),
    st.builds(lambda t: {"text": t}, st.sampled_from(["alpha", "BETA gamma", "ε", "delta alpha"])),
    st.builds(lambda t: {"key": "cat", "text": t}, st.sampled_from(["x", "y x", "ünï", "red"])),
)


def clauses(children):
    return st.builds(
        lambda must, should, must_not: {k: v for k, v in
                                        (("must", must), ("should", should), ("must_not", must_not)) if v},
        st.lists(children, min_size=1, max_size=3), st.lists(children, max_size=3),
        st.lists(children, max_size=2))


filters = st.recursive(conditions, clauses, max_leaves=6).map(
    lambda f: f if any(k in f for k in ("must", "should", "must_not")) else {"must": [f]})


@pytest.fixture(scope="module", params=["unindexed", "indexed"])
def loaded(request, tmp_path_factory):
    db = Database.open(str(tmp_path_factory.mktemp("filters") / "data"), DatabaseOptions(background=False))
    ids, vecs, pays, texts = dataset()
    db.create_collection("c", DIM, metric="l2", shards=3, index="flat",
                         payload_indexes=INDEXES if request.param == "indexed" else None)
    db.upsert("c", ids, vecs, pays, texts)
    yield Loaded(db, ids, vecs, pays, texts)
    db.close()


class Loaded(tuple):
    def __new__(cls, *items):
        return super().__new__(cls, items)

    def __repr__(self) -> str:  # keep hypothesis' failure reports readable
        return "<loaded collection>"


def brute(f, ids, pays, texts):
    return [i for i, (pid, p, t) in enumerate(zip(ids, pays, texts)) if evaluate(f, pid, p, t)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=filters, qi=st.integers(0, N - 1), k=st.sampled_from([1, 5, 10, 50]))
def test_filtered_reads_match_brute_force(loaded, f, qi, k):
    db, ids, vecs, pays, texts = loaded
    want = brute(f, ids, pays, texts)
    assert db.count("c", filter=f) == len(want), f
    page = db.scroll("c", limit=N, filter=f)
    assert [p.id for p in page.points] == sorted(ids[i] for i in want)
    res = db.search("c", vecs[qi:qi + 1], k=k, filter=f, with_payload=False)[0]
    assert len(res.ids) == min(k, len(want)), (f, res.plan)
    if want:
        d = ((vecs[want] - vecs[qi]) ** 2).sum(1)
        best = np.sort(d)[:k]
        np.testing.assert_allclose(res.scores, best, rtol=1e-4, atol=1e-4)
        assert set(res.ids) <= {ids[i] for i in want}


@settings(max_examples=25, deadline=None)
@given(f=filters)
def test_delete_by_filter_matches_brute_force(tmp_path_factory, f):
    db = Database.open(str(tmp_path_factory.mktemp("del") / "data"), DatabaseOptions(background=False))
    try:
        ids, vecs, pays, texts = dataset(seed=3)
        db.create_collection("c", DIM, metric="l2", shards=2, index="flat", payload_indexes={"cat": "keyword"})
        db.upsert("c", ids, vecs, pays, texts)
        gone = brute(f, ids, pays, texts)
        assert db.delete("c", filter=f).count == len(gone)
        left = {p.id for p in db.scroll("c", limit=N).points}
        assert left == set(ids) - {ids[i] for i in gone}
    finally:
        db.close()


# ---- selectivity sweep ----------------------------------------------------------
SWEEP_N = 20_000
SELECTIVITY = [0.0001, 0.001, 0.01, 0.1, 0.5, 1.0]


@pytest.fixture(scope="module", params=["flat", "ivf_flat", "hnsw"])
def sweep(request, tmp_path_factory):
    kind = request.param
    db = Database.open(str(tmp_path_factory.mktemp("sweep") / "data"), DatabaseOptions(background=False))
    vecs = clustered(SWEEP_N, 16, seed=11)
    rng = np.random.default_rng(5)
    rank = rng.permutation(SWEEP_N)
    ids = [f"p{i}" for i in range(SWEEP_N)]
    pays = [{"rank": int(r), "rank_u": int(r)} for r in rank]
    params = None if kind == "flat" else {"build_threshold": 1000}
    db.create_collection("s", 16, metric="cosine", shards=2, index=kind, index_params=params,
                         payload_indexes={"rank": "integer"})
    for a in range(0, SWEEP_N, 5000):
        db.upsert("s", ids[a:a + 5000], vecs[a:a + 5000], pays[a:a + 5000])
    db.maintain()
    yield kind, db, vecs, rank
    db.close()


@pytest.mark.parametrize("field", ["rank", "rank_u"])  # with and without a payload index
def test_selectivity_sweep_count_and_recall(sweep, field):
    kind, db, vecs, rank = sweep
    queries = clustered(30, 16, seed=99)
    k = 10
    for s in SELECTIVITY:
        limit = max(1, int(round(s * SWEEP_N)))
        f = {"must": [{"key": field, "range": {"lt": limit}}]}
        allowed = np.flatnonzero(rank < limit)
        exact = db.search("s", queries, k=k, filter=f, params=SearchParams(exact=True), with_payload=False)
        approx = db.search("s", queries, k=k, filter=f, with_payload=False)
        normed = vecs[allowed] / np.linalg.norm(vecs[allowed], axis=1, keepdims=True)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        truth = np.argsort(-(qn @ normed.T), axis=1)[:, :k]
        hits = total = 0
        for i in range(len(queries)):
            assert len(exact[i]) == len(approx[i]) == min(k, len(allowed)), (kind, field, s, approx[i].plan)
            want = {f"p{allowed[j]}" for j in truth[i]}
            assert set(exact[i].ids) == want, (kind, field, s, exact[i].plan)
            hits += len(want & set(approx[i].ids))
            total += len(want)
        recall = hits / total
        if kind == "flat":
            assert recall == 1.0, (field, s)
        assert recall >= 0.95, (kind, field, s, recall, approx[0].plan)
