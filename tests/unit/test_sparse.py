"""Sparse vectors (vecdb/sparse.py) on the engine: exact dot-product search against a
dense numpy reference, the index following upserts, rewrites, deletes, TTL and reopening,
fusion with dense and keywords, and bad input named by field with nothing written."""
import time

import numpy as np
import pytest

from vecdb import Database, DatabaseOptions
from vecdb.errors import FailedPrecondition, InvalidArgument
from vecdb.fusion import rrf

DIM, SDIM = 8, 1000


def random_sparse(rng, n: int, nnz: int = 12):
    out = []
    for _ in range(n):
        idx = np.sort(rng.choice(SDIM // 10, size=nnz, replace=False))  # overlapping supports
        out.append((idx.tolist(), rng.uniform(0.1, 2.0, nnz).tolist()))
    return out


def dense_of(vectors) -> np.ndarray:
    m = np.zeros((len(vectors), SDIM))
    for i, (idx, vals) in enumerate(vectors):
        m[i, idx] = vals
    return m


def reference(docs: dict, query) -> list[tuple[str, float]]:
    ids = list(docs)
    scores = dense_of([docs[i] for i in ids]) @ dense_of([query])[0]
    hits = [(ids[j], scores[j]) for j in range(len(ids))
            if set(docs[ids[j]][0]) & set(query[0])]
    return sorted(hits, key=lambda h: (-h[1], h[0]))


def make(db, name="s", n=300, shards=2, seed=0):
    rng = np.random.default_rng(seed)
    db.create_collection(name, dim=DIM, shards=shards, sparse_dim=SDIM)
    ids = [f"p{i}" for i in range(n)]
    sp = random_sparse(rng, n)
    db.upsert(name, ids, rng.standard_normal((n, DIM)).astype(np.float32),
              payloads=[{"n": i} for i in range(n)], sparse=sp)
    return dict(zip(ids, sp)), rng


def check_exact(db, docs, rng, name="s", filter=None, keep=lambda pid: True):
    for query in random_sparse(rng, 5, nnz=6):
        want = [(pid, s) for pid, s in reference(docs, query) if keep(pid)]
        got = db.search(name, sparse=query, k=len(docs), filter=filter)[0]
        assert sorted(got.ids) == sorted(pid for pid, _ in want)
        np.testing.assert_allclose(got.scores, [s for _, s in want], rtol=1e-5)
        top = db.search(name, sparse=query, k=7, filter=filter)[0]
        np.testing.assert_allclose(top.scores, [s for _, s in want[:7]], rtol=1e-5)


def test_exact_dot_product_equals_reference(db):
    docs, rng = make(db)
    check_exact(db, docs, rng)
    check_exact(db, docs, rng, filter={"key": "n", "range": {"lt": 100}},
                keep=lambda pid: int(pid[1:]) < 100)


def test_index_follows_writes_rewrites_ttl_and_reopen(tmp_path):
    path = str(tmp_path / "data")
    db = Database.open(path, DatabaseOptions(background=False))
    docs, rng = make(db, n=200)
    new = random_sparse(rng, 2)
    db.upsert("s", ["p1", "q"], rng.standard_normal((2, DIM)).astype(np.float32), sparse=new)
    docs.update({"p1": new[0], "q": new[1]})
    db.upsert("s", ["p2"], rng.standard_normal((1, DIM)).astype(np.float32))  # no sparse now
    db.delete("s", ["p3"])
    db.upsert("s", ["p4"], rng.standard_normal((1, DIM)).astype(np.float32),
              sparse=[docs["p4"]], ttl=1)
    for gone in ("p2", "p3", "p4"):
        docs.pop(gone)
    db.update_payload("s", ids=["p5"], set={"x": 1})  # rewrites keep the sparse vector
    db.update_vectors("s", ["p6"], rng.standard_normal((1, DIM)).astype(np.float32))
    time.sleep(1.1)
    check_exact(db, docs, rng)
    assert db.expire() == 1
    db.close()
    db = Database.open(path, DatabaseOptions(background=False))
    try:
        assert db.describe_collection("s").config.sparse_dim == SDIM
        check_exact(db, docs, rng)
    finally:
        db.close()


def test_fused_with_dense_and_keywords(db):
    pytest.importorskip("tantivy")
    rng = np.random.default_rng(3)
    db.create_collection("h", dim=DIM, sparse_dim=SDIM, full_text="plain")
    n = 100
    sp = random_sparse(rng, n)
    db.upsert("h", [f"p{i}" for i in range(n)], rng.standard_normal((n, DIM)).astype(np.float32),
              texts=[f"doc code{i}" for i in range(n)], sparse=sp)
    q = rng.standard_normal((1, DIM)).astype(np.float32)
    # sparse weight only: the sparse order; keywords weight only: the BM25 order
    only_sparse = db.search("h", q, k=5, sparse=sp[7], fusion="weighted", weights=[0, 1])[0]
    assert only_sparse.ids[0] == "p7"
    # three lists fused: a reference RRF over the three separate searches
    lists = [db.search("h", q, k=100)[0].ids, db.search("h", k=100, keywords="code9 doc")[0].ids,
             db.search("h", k=100, sparse=sp[7])[0].ids]
    want = rrf(lists, (1.0, 1.0, 1.0), 60.0)[:10]
    got = db.search("h", q, k=10, keywords="code9 doc", sparse=sp[7], explain=True)[0]
    assert got.ids == [pid for pid, _ in want]
    np.testing.assert_allclose(got.scores, [s for _, s in want], rtol=1e-6)
    assert "sparse: dot product" in got.plan and f"{got.ids[0]} (dense " in got.plan
    three = db.search("h", q, k=3, keywords="code9", sparse=sp[7], fusion="weighted",
                      weights=[0, 0, 1])[0]
    assert three.ids[0] == "p7"


def test_bad_sparse_input_writes_nothing(db):
    db.create_collection("s", dim=DIM, sparse_dim=100)
    db.create_collection("plain", dim=DIM)
    v = np.ones((2, DIM), np.float32)
    good = ([1, 5], [0.5, 1.0])
    cases = [([good, ([3, 200], [1.0, 1.0])], "sparse[1].indices"),  # out of range
             ([good, ([5, 3], [1.0, 1.0])], "sparse[1].indices"),    # unsorted
             ([good, ([3, 3], [1.0, 1.0])], "sparse[1].indices"),    # duplicated
             ([good, ([-1, 3], [1.0, 1.0])], "sparse[1].indices"),
             ([good, ([1, 2], [1.0, float("nan")])], "sparse[1].values"),
             ([good, ([1, 2], [1.0])], "sparse[1]"),
             ([good], "sparse")]                                      # count
    for sparse, field in cases:
        with pytest.raises(InvalidArgument) as e:
            db.upsert("s", ["a", "b"], v, sparse=sparse)
        assert e.value.field == field, sparse
    assert db.count("s") == 0
    with pytest.raises(InvalidArgument) as e:
        db.upsert("plain", ["a", "b"], v, sparse=[good, good])
    assert e.value.field == "sparse"
    for coll, kwargs, field in [("plain", dict(sparse=good), "sparse"),
                                ("s", dict(sparse=([1, 1], [1.0, 1.0])), "sparse[0].indices"),
                                ("s", dict(sparse=[]), "sparse")]:
        with pytest.raises(InvalidArgument) as e:
            db.search(coll, **kwargs)
        assert e.value.field == field
    with pytest.raises(InvalidArgument) as e:
        db.create_collection("bad", dim=DIM, sparse_dim=-1)
    assert e.value.field == "sparse_dim"
    with pytest.raises(FailedPrecondition):
        db.reembed("s", "minilm", alias="x")


def test_writes_between_searches_use_the_delta_then_a_rebuild(db):
    """Rows added after the inverted lists were built are scored one by one, base rows
    removed since are left out, and past the threshold the lists are rebuilt: every
    search equals the reference."""
    docs, rng = make(db, n=300, shards=1)
    check_exact(db, docs, rng)  # builds the lists
    index = db._get("s").shards[0].sparse_index
    for round_ in range(3):
        n = 40 if round_ < 2 else 1500  # the last round passes the rebuild threshold
        ids = [f"r{round_}-{i}" for i in range(n)]
        new = random_sparse(rng, n)
        db.upsert("s", ids, rng.standard_normal((n, DIM)).astype(np.float32), sparse=new)
        docs.update(zip(ids, new))
        gone = [pid for pid in list(docs)[round_ * 7:round_ * 7 + 5]]
        db.delete("s", gone)
        for pid in gone:
            docs.pop(pid)
        check_exact(db, docs, rng)
        if round_ < 2:
            assert index._fresh and index._gone  # answered with the delta
        else:
            assert not index._fresh and not index._gone  # rebuilt
