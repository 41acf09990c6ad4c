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
    """Deleted after a checkpoint, then a clean close (which checkpoints again: their rows
    go to dead.npy) and an open: answers stay right. After a crash instead, see
    test_points_changed_after_the_checkpoint_then_a_crash."""
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
        db.checkpoint()  # that state checkpoints and opens again
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


CRASH_AFTER_CHECKPOINT = """
import os, sys
import numpy as np
from tests.conftest import clustered
from vecdb import Database, DatabaseOptions
path, dim = sys.argv[1], int(sys.argv[2])
db = Database.open(path, DatabaseOptions(background=False))
db.create_collection("c", dim, metric="cosine", index="hnsw", index_params={"build_threshold": 500})
ids = [f"p{i}" for i in range(1500)]
db.upsert("c", ids, clustered(1500, dim, seed=30))
db.maintain()
db.checkpoint()
changed = ids[:450]
np.save(path + ".labels.npy", db.collections["c"].shards[0].labels_of(changed))
db.upsert("c", ids[:150], clustered(150, dim, seed=31) + 3)  # overwritten
db.delete("c", ids[150:450])
db.upsert("c", ids[300:450], clustered(150, dim, seed=32) - 3)  # deleted, then back
db.upsert("c", ["late"], clustered(1, dim, seed=33))
os._exit(0)  # a crash: no checkpoint at close, the next open replays the WAL
"""


def test_points_changed_after_the_checkpoint_then_a_crash(tmp_path):
    """Overwritten, deleted, deleted and inserted again after the checkpoint, then the
    process dies: their old rows have no record when the checkpoint is opened; each
    borrows a neighbour's vector (not zeros, which would misguide the walk), the replay
    tombstones it, and the live rows hold the records' vectors."""
    import subprocess
    import sys

    from vecdb import Database, DatabaseOptions
    from vecdb.index import prepare
    path = str(tmp_path / "data")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", CRASH_AFTER_CHECKPOINT, path, str(DIM)], cwd=root,
                   check=True, timeout=120)
    X = clustered(1500, DIM, seed=30)
    model = {f"p{i}": X[i] for i in range(450, 1500)}
    model.update({f"p{i}": v + 3 for i, v in enumerate(clustered(150, DIM, seed=31))})
    model.update({f"p{300 + i}": v - 3 for i, v in enumerate(clustered(150, DIM, seed=32))})
    model["late"] = clustered(1, DIM, seed=33)[0]
    db = Database.open(path, DatabaseOptions(background=False))
    try:
        shard = shard_of(db)
        assert isinstance(shard.exact, HnswVectors) and db.count("c") == len(model)
        rows = storage_rows(shard)
        old = np.load(path + ".labels.npy")
        assert set(old.tolist()) <= set(shard.ann.tombstones)
        np.testing.assert_allclose(np.linalg.norm([rows[int(lab)] for lab in old], axis=1), 1,
                                   atol=1e-4)  # borrowed (cosine rows are unit vectors)
        ids = list(model)
        live = shard.labels_of(ids)
        np.testing.assert_allclose([rows[int(lab)] for lab in live],
                                   prepare(np.stack([model[i] for i in ids]), "cosine"), atol=1e-5)
        q = np.concatenate([clustered(20, DIM, seed=34), clustered(20, DIM, seed=34) + 3])
        truth, _ = brute_force(model, q, 10, "cosine")
        exact = db.search("c", q, k=10, params=SearchParams(exact=True), with_payload=False)
        assert [r.ids for r in exact] == truth
        ann = db.search("c", q, k=10, with_payload=False)
        assert np.mean([len(set(r.ids) & set(t)) / 10 for r, t in zip(ann, truth)]) >= 0.95
    finally:
        db.close()
