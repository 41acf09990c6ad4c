"""An HNSW shard's checkpoint holds the graph without its float vectors (the RocksDB
records hold them); opening refills the graph's storage from the records: the same
vectors, tombstoned rows from the checkpoint's dead.npy, rows deleted after the
checkpoint (no record, no vector anywhere) tombstoned by the WAL replay."""
import glob
import os

import faiss
import numpy as np
import pytest

from tests.conftest import clustered
from tests.unit.test_hnsw_one_copy import ckpt_files, make, shard_of
from tests.unit.test_search_recall import DIM, brute_force
from vecdb import SearchParams, checkpoint
from vecdb.index import HnswVectors


def storage_rows(shard) -> dict[int, np.ndarray]:
    """label -> the graph's stored vector (tombstoned rows included)."""
    ex = shard.exact
    n = int(ex.storage.ntotal)
    vecs = faiss.rev_swig_ptr(ex.storage.get_xb(), n * ex.d).reshape(n, ex.d)
    return dict(zip(ex._ids().tolist(), vecs.copy()))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_reopen_refills_the_same_graph(db, reopen, metric):
    model, _ = make(db, "hnsw", metric)
    db.checkpoint()
    shard = shard_of(db)
    assert shard.ann.tombstones  # tombstoned rows: their vectors come from dead.npy
    [ckpt] = glob.glob(os.path.join(shard.dir, "ckpt-*"))
    size = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt))
    full = len(faiss.serialize_index(shard.ann.index))  # the graph with its vectors
    dead = len(shard.ann.tombstones) * DIM * 4
    assert size < full - shard.ann.index.ntotal * DIM * 4 + dead + 64 * 1024
    rows = storage_rows(shard)
    q = clustered(30, DIM, seed=12)
    before = [(r.ids, r.scores) for r in db.search("c", q, k=10, with_payload=False)]
    db = reopen(db)
    try:
        shard = shard_of(db)
        assert isinstance(shard.exact, HnswVectors)
        again = storage_rows(shard)
        assert again.keys() == rows.keys()
        np.testing.assert_array_equal(np.stack(list(again.values())), np.stack(list(rows.values())))
        got = [(r.ids, r.scores) for r in db.search("c", q, k=10, with_payload=False)]
        assert [g[0] for g in got] == [b[0] for b in before]
        np.testing.assert_array_equal([g[1] for g in got], [b[1] for b in before])
        assert db.count("c") == len(model)
    finally:
        db.close()


def test_points_deleted_after_the_checkpoint(db, reopen):
    """Their records are gone when the checkpoint is opened: the rows borrow a neighbour's
    vector, the WAL replay tombstones them, answers stay right."""
    model, _ = make(db, "hnsw", "cosine")
    db.checkpoint()
    rng = np.random.default_rng(3)
    gone = [str(x) for x in rng.choice(sorted(model), 300, replace=False)]
    db.delete("c", gone)  # in the WAL only
    for g in gone:
        model.pop(g)
    db.upsert("c", ["late"], clustered(1, DIM, seed=13))
    model["late"] = clustered(1, DIM, seed=13)[0]
    db = reopen(db)
    try:
        shard = shard_of(db)
        assert db.count("c") == len(model) and shard.exact.ntotal == len(model)
        q = clustered(50, DIM, seed=14)
        truth, _ = brute_force(model, q, 10, "cosine")
        exact = db.search("c", q, k=10, params=SearchParams(exact=True), with_payload=False)
        assert [r.ids for r in exact] == truth
        ann = db.search("c", q, k=10, with_payload=False)
        assert not {i for r in ann for i in r.ids} & set(gone)
        recall = np.mean([len(set(r.ids) & set(t)) / 10 for r, t in zip(ann, truth)])
        assert recall >= 0.95
        db.checkpoint()  # that state checkpoints (dead.npy: the borrowed vectors) and opens again
    finally:
        db.close()
    db = reopen(db)
    try:
        assert db.count("c") == len(model)
        assert [r.ids for r in db.search("c", q, k=10, params=SearchParams(exact=True),
                                         with_payload=False)] == truth
    finally:
        db.close()


def test_a_checkpoint_with_a_full_ann_faiss_opens_unchanged(db, reopen):
    """Data directories written before lean checkpoints: ann.faiss with its float storage
    (no exact.faiss). It opens as it is; the next checkpoint is lean."""
    model, _ = make(db, "hnsw", "cosine")
    db.checkpoint()
    shard = shard_of(db)
    checkpoint.commit(shard.dir, shard.checkpoint_seq, checkpoint.dump(shard.dir, shard.exact, shard.ann))
    assert ckpt_files(db) == {"ann.faiss", "tombstones.npy"}
    rows = storage_rows(shard)
    q = clustered(20, DIM, seed=15)
    before = [(r.ids, list(r.scores)) for r in db.search("c", q, k=10, with_payload=False)]
    db = reopen(db)
    try:
        assert storage_rows(shard_of(db)).keys() == rows.keys()
        assert [(r.ids, list(r.scores)) for r in db.search("c", q, k=10, with_payload=False)] == before
        assert db.count("c") == len(model)
        db.upsert("c", ["late"], clustered(1, DIM, seed=16))
        db.checkpoint()
        assert ckpt_files(db) == {"ann.graph", "ids.npy", "dead.npy", "tombstones.npy"}
    finally:
        db.close()
