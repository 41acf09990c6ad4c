"""A background ANN build bounds what piles up beside it: once the writes it missed add as
many points as it was built from, writers wait for it to catch up and swap (the exact
store is then freed) instead of holding every vector twice at the swap."""
import threading
import time

import numpy as np
import pytest

from tests.conftest import clustered
from vecdb import SearchParams, shard as shard_mod


def test_writes_wait_for_a_build_that_missed_as_many_points(db, monkeypatch):
    db.create_collection("c", 16, metric="cosine", index="hnsw", index_params={"build_threshold": 500})
    X = clustered(1400, 16, seed=21)
    ids = [f"p{i}" for i in range(len(X))]
    db.upsert("c", ids[:600], X[:600])
    started, go = threading.Event(), threading.Event()
    real = shard_mod.build_ann

    def paused_build(*args):  # the real build, held until the writes below are in
        started.set()
        go.wait()
        return real(*args)
    monkeypatch.setattr(shard_mod, "build_ann", paused_build)
    builder = threading.Thread(target=db.maintain)
    builder.start()
    assert started.wait(30)
    shard = db.collections["c"].shards[0]
    assert shard.building

    def write():
        for lo in range(600, 1400, 100):
            db.upsert("c", ids[lo:lo + 100], X[lo:lo + 100])
    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 30
    while db.count("c") < 1200 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.join(1.0)
    # 600 missed points = the build's 600: the next write is held back before it commits,
    # holding no lock: a delete goes on meanwhile; the wait is bounded
    assert writer.is_alive() and db.count("c") == 1200 and shard.exact.ntotal == 1200
    deleter = threading.Thread(target=db.delete, args=("c", ["p0"]), daemon=True)
    deleter.start()
    deleter.join(10)
    assert not deleter.is_alive() and db.count("c") == 1199
    t0 = time.monotonic()
    shard.await_build(timeout=0.2)
    assert shard.building and 0.15 < time.monotonic() - t0 < 5
    go.set()
    builder.join(60)
    writer.join(60)
    assert not builder.is_alive() and not writer.is_alive()
    assert db.count("c") == 1399 and db.describe_collection("c").index_state == "built"
    got = db.search("c", X[1:], k=1, with_payload=False, params=SearchParams(exact=True))
    assert [r.ids[0] for r in got] == ids[1:]
    hits = db.search("c", X[1::7], k=1, with_payload=False)
    assert np.mean([r.ids[0] == ids[i] for r, i in zip(hits, range(1, 1400, 7))]) >= 0.95


def test_a_batch_insert_into_the_graph_uses_every_core_after_a_single_query(db):
    """A single-query search leaves its thread at one FAISS thread (vecdb/omp.py); a batch
    written from that thread into a built HNSW index inserts with all of them again."""
    import faiss

    from vecdb import omp
    db.create_collection("c", 16, index="hnsw", index_params={"build_threshold": 100})
    db.upsert("c", [f"p{i}" for i in range(200)], clustered(200, 16, seed=1))
    db.maintain()
    db.search("c", clustered(1, 16, seed=2), k=3)
    assert faiss.omp_get_max_threads() == 1
    db.upsert("c", [f"q{i}" for i in range(50)], clustered(50, 16, seed=3))
    assert faiss.omp_get_max_threads() == min(50, omp.CORES)


def _interrupted_build(db, monkeypatch, name, error):
    """A collection of 200 points whose first build raises ``error`` from ``name`` (a
    function of vecdb.shard); returns its shard after the raise reached maintain()."""
    db.create_collection("c", 8, index="hnsw", index_params={"build_threshold": 100})
    db.upsert("c", [f"p{i}" for i in range(200)], clustered(200, 8, seed=5))
    real = getattr(shard_mod, name)
    calls = []

    def once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args)
    monkeypatch.setattr(shard_mod, name, once)
    with pytest.raises(type(error)):
        db.maintain()
    return db.collections["c"].shards[0]


@pytest.mark.parametrize("name,error", [("build_ann", KeyboardInterrupt()),
                                        ("snapshot", MemoryError("simulated"))])
def test_a_build_that_raises_leaves_training_and_lets_writers_on(db, monkeypatch, name, error):
    """KeyboardInterrupt in the build, MemoryError in its snapshot: neither is an Exception
    the build logs as a failure, yet the shard must not stay "training" with writers
    waiting for it forever and every missed write kept."""
    shard = _interrupted_build(db, monkeypatch, name, error)
    assert not shard.building and shard._pending is None and shard._built.is_set()
    X = clustered(400, 8, seed=6)
    writer = threading.Thread(target=lambda: db.upsert("c", [f"q{i}" for i in range(400)], X),
                              daemon=True)
    writer.start()
    writer.join(30)
    assert not writer.is_alive() and db.count("c") == 600
    assert db.maintain() and db.describe_collection("c").index_state == "built"


def test_the_write_that_makes_the_first_build_due_wakes_the_maintenance_thread(db):
    """A bulk load's first build starts when a write makes it due, not at the maintenance
    thread's next round (every 0.5 s; meanwhile the load piled more points beside it)."""
    db.create_collection("c", 16, metric="cosine", index="hnsw", index_params={"build_threshold": 500})
    db.create_collection("f", 16, metric="cosine", index="flat")
    X = clustered(900, 16, seed=22)
    ids = [f"p{i}" for i in range(len(X))]
    db.upsert("f", ids, X)
    db.upsert("c", ids[:400], X[:400])
    assert not db._wake.is_set()  # a flat collection never builds; 400 < 500
    db.upsert("c", ids[400:600], X[400:600])
    assert db._wake.is_set()
    db._wake.clear()
    assert db.maintain() == 1
    db.upsert("c", ids[600:], X[600:])
    assert not db._wake.is_set()  # built: later writes insert into the graph
    assert db.count("c") == 900
