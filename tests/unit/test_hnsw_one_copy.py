"""A full-precision HNSW or IVF-Flat shard keeps its vectors once: exact search, filters,
range search and vector reads come from the index's own vectors (vecdb.index.HnswVectors,
IvfVectors), its checkpoints hold no exact.faiss, and a data directory whose checkpoint
still has one opens unchanged."""
import glob
import json
import os

import numpy as np
import pytest

from tests.conftest import clustered
from tests.unit.test_search_recall import DIM, brute_force, mixed_workload
from vecdb import SearchParams, checkpoint
from vecdb.index import HnswVectors, IvfVectors, new_exact, snapshot
from vecdb.quant import index_bytes


FACE = {"hnsw": HnswVectors, "ivf_flat": IvfVectors}
# an HNSW checkpoint is lean (the graph without its vectors: the records hold them)
FILES = {"hnsw": {"ann.graph", "ids.npy", "dead.npy", "tombstones.npy"},
         "ivf_flat": {"ann.faiss", "tombstones.npy"}}


def make(db, index="hnsw", metric="cosine"):
    db.create_collection("c", DIM, metric=metric, index=index, index_params={"build_threshold": 500})
    return mixed_workload(db, "c", 3000)  # deletes (HNSW tombstones), replaced vectors, later adds


def shard_of(db):
    return db.collections["c"].shards[0]


def ckpt_files(db) -> set[str]:
    [ckpt] = glob.glob(os.path.join(shard_of(db).dir, "ckpt-*"))
    with open(os.path.join(ckpt, "meta.json")) as f:
        return set(json.load(f)["files"])


@pytest.mark.parametrize("index,metric", [("hnsw", "cosine"), ("hnsw", "l2"), ("ivf_flat", "cosine"),
                                          ("ivf_flat", "l2")])
def test_exact_answers_come_from_the_index_vectors(db, index, metric):
    model, deleted = make(db, index, metric)
    shard = shard_of(db)
    assert isinstance(shard.exact, FACE[index]) and (index != "hnsw" or shard.ann.tombstones)
    assert shard.exact.ntotal == db.count("c") == len(model)
    # one copy of the vectors: what the shard holds beside the graph is small
    vectors = len(model) * DIM * 4
    assert shard.memory_bytes() < index_bytes(shard.ann.index) + vectors / 2
    q = clustered(20, DIM, seed=7)
    truth, truth_scores = brute_force(model, q, 10, metric)
    got = db.search("c", q, k=10, params=SearchParams(exact=True), with_payload=False)
    assert [r.ids for r in got] == truth
    np.testing.assert_allclose([r.scores for r in got], truth_scores, rtol=1e-4, atol=1e-4)
    # filters: a small matching set (re-scored from reconstructed vectors) and a large one
    tagged = {p.id: p.payload["i"] for p in db.get("c", sorted(model)) if p.payload}
    for cut in (40, 2500):
        sub = {i: v for i, v in model.items() if tagged.get(i, cut) < cut}
        want, _ = brute_force(sub, q, 10, metric)
        res = db.search("c", q, k=10, filter={"key": "i", "range": {"lt": cut}}, with_payload=False,
                        params=SearchParams(exact=True))
        assert [r.ids for r in res] == want
    # exact range search excludes deleted (HNSW: tombstoned) points
    far = 1e9 if metric == "l2" else -1e9
    [every] = db.range_search("c", q[:1], far, limit=10_000, with_payload=False,
                              params=SearchParams(exact=True))
    assert sorted(every.ids) == sorted(model) and not set(every.ids) & deleted
    # stored vectors read back by label (what a re-scoring or an analytics job reads)
    some = sorted(model)[:50]
    labels = np.array(shard.labels_of(some), np.int64)
    want = np.stack([model[i] for i in some])
    if metric == "cosine":
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(shard.exact.reconstruct_batch(labels), want, rtol=1e-5, atol=1e-6)
    gone = min(shard.ann.tombstones) if index == "hnsw" else 0  # HNSW keeps the vector; not served
    with pytest.raises(KeyError):
        shard.exact.reconstruct_batch(np.array([gone], np.int64))


@pytest.mark.parametrize("index", ["hnsw", "ivf_flat"])
def test_checkpoint_holds_the_vectors_once_and_recovers(db, reopen, index):
    model, _ = make(db, index)
    db.checkpoint()
    assert ckpt_files(db) == FILES[index]
    late = clustered(5, DIM, seed=11)
    db.upsert("c", [f"late{i}" for i in range(5)], late)  # in the WAL only
    model.update({f"late{i}": v for i, v in enumerate(late)})
    q = clustered(20, DIM, seed=8)
    before = [r.ids for r in db.search("c", q, k=10, params=SearchParams(exact=True))]
    db = reopen(db)
    try:
        assert isinstance(shard_of(db).exact, FACE[index])
        assert db.count("c") == len(model)
        assert [r.ids for r in db.search("c", q, k=10, params=SearchParams(exact=True))] == before
        assert before == brute_force(model, q, 10, "cosine")[0]
    finally:
        db.close()


@pytest.mark.parametrize("index", ["hnsw", "ivf_flat"])
def test_a_checkpoint_with_exact_faiss_opens_unchanged(db, reopen, index):
    """Data directories written before: exact.faiss beside ann.faiss. It is not read; the
    next checkpoint drops it."""
    model, _ = make(db, index)
    db.checkpoint()
    shard = shard_of(db)
    labels, vecs = snapshot(shard.exact)
    legacy = new_exact(DIM, "cosine")
    legacy.add_with_ids(vecs, labels)
    checkpoint.commit(shard.dir, shard.checkpoint_seq, checkpoint.dump(shard.dir, legacy, shard.ann))
    assert ckpt_files(db) == {"exact.faiss", "ann.faiss", "tombstones.npy"}
    q = clustered(20, DIM, seed=9)
    before = [(r.ids, list(r.scores)) for r in db.search("c", q, k=10)]
    db = reopen(db)
    try:
        assert isinstance(shard_of(db).exact, FACE[index])
        assert [(r.ids, list(r.scores)) for r in db.search("c", q, k=10)] == before
        assert db.count("c") == len(model)
        assert db.checkpoint() == 1  # rewritten without the second copy
        assert ckpt_files(db) == FILES[index]
    finally:
        db.close()
