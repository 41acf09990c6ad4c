"""k-means write_label through the payload-only update path (Collection.set_payloads):
no FAISS index or WAL entry is touched, the labels are durable and indexed, points
rewritten or deleted during the job are handled, a payload index built meanwhile stays
exact; GPU k-means holds the lock of the GPU's build resources (CPU stand-ins)."""
from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from gpu_standin import StandIn
from test_payload_index_build import index_state
from tests.conftest import clustered
from vecdb import Database, DatabaseOptions
from vecdb.analytics import ClusterJob, ClusterSpec, population

DIM = 8


def _opts(**kw):
    return DatabaseOptions(background=False, **kw)


def test_labels_are_payload_only_durable_and_indexed(tmp_path):
    path = str(tmp_path / "d")
    db = Database.open(path, _opts())
    x = clustered(900, DIM, 5, seed=1, spread=0.4)
    ids = [f"p{i:03d}" for i in range(900)]
    db.create_collection("c", DIM, metric="l2", index="hnsw", shards=3)
    db.upsert("c", ids, x, [{"i": i} for i in range(900)], texts=[f"t{i}" for i in range(900)])
    db.create_payload_index("c", "topic", "integer", wait=True)
    coll = db.collections["c"]
    before = [(s.applied_seq, s.last_seq, s.exact.ntotal, s.data_bytes) for s in coll.shards]
    job = db.cluster("c", 5, seed=3, write_label="topic", wait=True)
    assert job.result.labelled == 900
    # no WAL entry, no FAISS change; data_bytes grew by the label bytes
    after = [(s.applied_seq, s.last_seq, s.exact.ntotal, s.data_bytes) for s in coll.shards]
    assert [a[:3] for a in after] == [b[:3] for b in before]
    assert all(a[3] > b[3] for a, b in zip(after, before))
    sizes = job.result.sizes.tolist()
    assert [db.count("c", {"key": "topic", "match": c}) for c in range(5)] == sizes
    got = {p.id: p for p in db.get("c", ids, with_vector=True)}
    assert all(got[f"p{i:03d}"].payload["i"] == i and got[f"p{i:03d}"].text == f"t{i}"
               for i in range(900))
    np.testing.assert_array_equal(np.stack([got[i].vector for i in ids]), x)
    labelled = {pid: p.payload["topic"] for pid, p in got.items()}
    live = index_state(db, "topic")
    db.close()
    db = Database.open(path, _opts())  # the labels survive a reopen; the index is rebuilt equal
    try:
        assert {p.id: p.payload["topic"] for p in db.get("c", ids)} == labelled
        assert index_state(db, "topic") == live
        assert [db.count("c", {"key": "topic", "match": c}) for c in range(5)] == sizes
    finally:
        db.close()


def test_points_rewritten_or_deleted_during_the_job(db):
    """The write step runs after the points changed: a rewritten point gets the cluster of
    its new vector, a deleted one stays deleted, the rest their assigned cluster."""
    x = clustered(400, DIM, 4, seed=2, spread=0.3)
    ids = [f"q{i:03d}" for i in range(400)]
    db.create_collection("c", DIM, metric="l2", index="flat", shards=2)
    db.upsert("c", ids, x)
    coll = db.collections["c"]
    spec = ClusterSpec.check(4, None, None, 10, "topic", 5, 0)
    pop = population.gather(coll)
    km = faiss.Kmeans(DIM, 4, niter=10, seed=5)
    km.train(pop.vectors)
    _, assign = km.assign(pop.vectors)
    gathered = population.hydrate(coll, pop, np.arange(len(pop)), False)[0]  # ids by row
    row_of = {pid: r for r, pid in enumerate(gathered)}
    mover, gone = ids[0], ids[1]
    other = next(c for c in range(4) if c != assign[row_of[mover]])
    db.upsert("c", [mover], km.centroids[other:other + 1])  # now nearest another centroid
    db.delete("c", [gone])
    job = ClusterJob(db, coll, spec)
    assert job._write_labels(pop, gathered, assign, km.centroids) == 399
    got = {p.id: p.payload for p in db.get("c", ids)}
    assert got[mover]["topic"] == other and gone not in got
    assert all(got[pid]["topic"] == assign[row_of[pid]] for pid in ids[2:])


def test_payload_index_built_while_labels_are_written_stays_exact(tmp_path):
    """Payload-only updates keep a point's label: an index built meanwhile may scan a
    payload older than the one it was told about, so it re-indexes those labels at the
    end. Counts through it equal those of an index rebuilt from RocksDB (a reopen)."""
    path = str(tmp_path / "d")
    db = Database.open(path, _opts())
    n = 30_000
    db.create_collection("c", 4, metric="l2", shards=2)
    db.upsert("c", [f"p{i}" for i in range(n)], np.random.default_rng(0).standard_normal((n, 4)),
              [{"g": 0} for _ in range(n)])
    coll, stop, errors, steps = db.collections["c"], threading.Event(), [], [0]
    writing = threading.Event()

    def relabel():
        try:
            while not stop.is_set():
                steps[0] += 1
                for s in range(2):
                    labels = population._matching_labels(coll.shards[s], None)
                    for i in range(0, len(labels), 1000):  # small batches: many interleavings
                        if stop.is_set():  # no relabel after the build: it would hide stale entries
                            return
                        coll.set_payloads(s, labels[i:i + 1000],
                                          lambda labs, _ids, pays: [{"g": steps[0]} for _ in labs])
                        writing.set()
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
    t = threading.Thread(target=relabel)
    t.start()
    assert writing.wait(30)
    db.create_payload_index("c", "g", "integer", wait=True)
    stop.set()
    t.join()
    assert not errors
    counts = [db.count("c", {"key": "g", "match": v}) for v in range(steps[0] + 1)]
    assert sum(counts) == n
    db.close()
    db = Database.open(path, _opts())
    try:
        assert [db.count("c", {"key": "g", "match": v}) for v in range(len(counts))] == counts
    finally:
        db.close()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_gpu_kmeans_runs_under_the_build_lock(tmp_path, metric):
    """On a FAISS GPU the k-means index comes from the GPU factory on the "build"
    resources and is made, used and freed under their lock; the result is faiss.Kmeans'."""
    ctx = StandIn("faiss", n=1)
    x = clustered(500, DIM, 5, seed=4, spread=0.5)
    with Database.open(str(tmp_path / "g"), _opts(), gpu=ctx) as db:
        db.create_collection("c", DIM, metric=metric, index="flat", shards=1, device="gpu")
        db.upsert("c", [f"g{i:03d}" for i in range(500)], x)
        job = db.cluster("c", 5, seed=9, iterations=8, wait=True)
        assert job.state == "done", job.error
    assert ctx.kmeans_indexes == 1 and ctx.violations == []
    xs = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    ref = faiss.Kmeans(DIM, 5, niter=8, seed=9, spherical=metric == "cosine",
                       init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    ref.train(xs)
    np.testing.assert_allclose(job.result.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
