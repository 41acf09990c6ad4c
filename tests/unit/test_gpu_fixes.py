"""The GPU path's defects found by reading faiss-gpu and torch (issue 23), each pinned by
a CPU stand-in test (gpu_standin.StandIn; the real GPU runs are test_gpu_cuda.py):
IVF-PQ placement with fp16 lookup tables and visible placement failures, GPU objects made
and freed under their GPU's lock, flat writes that never copy the base, CAGRA built off
the locks, torch temporaries bounded and searches bounded per GPU."""
from __future__ import annotations

import gc
import logging
import os
import threading
import time

import numpy as np
import pytest

from gpu_standin import StandIn, run_together
from vecdb import Database, DatabaseOptions, SearchParams
from vecdb.gpu import GpuContext

DIM = 16


def vecs(n, seed=0, dim=DIM):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def opts(**kw):
    return DatabaseOptions(background=False, **kw)


def shard0(db, name):
    return db.collections[name].shards[0].gpu


def ids(results):
    return [r.ids for r in results]


def close_checked(db, ctx):
    """Close, collect, and check that no stand-in GPU index was used or freed unlocked."""
    db.close()
    gc.collect()
    assert ctx.violations == []


# ---------------------------------------------------------------- IVF-PQ placement
def test_ivfpq_auto_m64_reaches_the_gpu_with_fp16_lookup_tables(tmp_path):
    # dim 128 (or 384) -> auto m=64: fp32 tables need 64 KiB of shared memory per block (48 KiB exist)
    ctx = StandIn("faiss", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("pq", 128, index="ivf_pq", index_params={"build_threshold": 2000, "nlist": 8})
    db.upsert("pq", [f"p{i}" for i in range(2000)], vecs(2000, 1, 128))
    assert db.maintain() == 1
    st = db.describe_collection("pq").shards[0]
    assert ctx.clones == [{"useFloat16": True, "useFloat16CoarseQuantizer": False}]
    assert st.gpu_ann == "ivf_pq" and st.gpu_placement_failures == 0 and st.gpu_error == ""
    assert db.collections["pq"].shards[0].ann.index.pq.M == 64
    db.search("pq", vecs(3, 2, 128), k=5, params=SearchParams(nprobe=8))
    assert db.describe_collection("pq").shards[0].gpu_served == {"ivf_pq": 1}
    db.close()


def test_placement_failure_is_counted_shown_and_not_retried(tmp_path, caplog):
    import vecdb.gpu_index as gi
    ctx = StandIn("faiss", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    # 6 bits per code: GPU FAISS without cuVS takes 8 only
    db.create_collection("pq", DIM, index="ivf_pq",
                         index_params={"build_threshold": 2000, "nlist": 8, "nbits": 6, "m": 4})
    db.upsert("pq", [f"p{i}" for i in range(2000)], vecs(2000, 1))
    caplog.set_level(logging.DEBUG, "vecdb.gpu")
    assert db.maintain() == 1
    gi.ANN_REFRESH_S, saved = 0.0, gi.ANN_REFRESH_S
    try:
        db.maintain()
        db.maintain()  # the same CPU index: no new attempt
    finally:
        gi.ANN_REFRESH_S = saved
    st = db.describe_collection("pq").shards[0]
    assert len(ctx.clones) == 1 and st.gpu_placement_failures == 1 and st.gpu_ann == ""
    assert "copying the ivf_pq index on cuda:0 failed" in st.gpu_error
    assert "Bits per code must be 8" in st.gpu_error and st.device == "cuda:0"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # one line, no traceback
    db.search("pq", vecs(2, 3), k=5)
    st = db.describe_collection("pq").shards[0]
    assert st.gpu_served == {"cpu": 1} and st.gpu_fallbacks == {}  # visible: not on the GPU
    db.close()


def test_hnsw_without_cuvs_is_a_visible_placement_failure(tmp_path):
    ctx = StandIn("faiss", n=1)
    ctx.cagra = False
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("h", DIM, index="hnsw", index_params={"build_threshold": 300})
    db.upsert("h", [f"p{i}" for i in range(400)], vecs(400, 1))
    db.maintain()
    db.maintain()
    st = db.describe_collection("h").shards[0]
    assert st.gpu_placement_failures == 1 and "GpuIndexCagra" in st.gpu_error and st.gpu_ann == ""
    db.close()


# ---------------------------------------------------------------- locking discipline
def test_gpu_objects_are_made_used_and_freed_under_the_gpu_lock(tmp_path):
    """Writers, searchers and a thread creating and dropping collections at once; every
    FAISS stand-in index records use or free outside its GPU's lock (a real
    StandardGpuResources can abort the process there)."""
    import vecdb.gpu_mirrors as gm
    ctx = StandIn("faiss", n=2)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("f", DIM, shards=2)
    db.create_collection("a", DIM, index="ivf_flat", shards=2,
                         index_params={"build_threshold": 400, "nlist": 8})
    for name in ("f", "a"):
        db.upsert(name, [f"p{i}" for i in range(1000)], vecs(1000, 1))
    db.maintain()
    def write(i):
        name = "fa"[i % 2]
        db.upsert(name, [f"w{i % 300}", f"x{i}"], vecs(2, i))
        db.delete(name, [f"p{i % 1000}"])

    def search(i):
        db.search("fa"[i % 2], vecs(4, i), k=10, params=SearchParams(exact=i % 3 == 0, nprobe=8))

    def churn(i):
        db.create_collection(f"t{i}", DIM, shards=2)
        db.upsert(f"t{i}", [f"p{j}" for j in range(50)], vecs(50, i))
        db.search(f"t{i}", vecs(1, i), k=3)
        db.drop_collection(f"t{i}")

    before = [s.gpu.exact for s in db.collections["f"].shards]
    old = gm.TAIL_MIN
    gm.TAIL_MIN = 64  # merges happen during the run
    try:
        errors = run_together(2, write, search, search, churn, lambda i: db.maintain())
    finally:
        gm.TAIL_MIN = old
    assert errors == []
    assert all(s.gpu.exact is not b for s, b in zip(db.collections["f"].shards, before))  # merged
    close_checked(db, ctx)


def test_drop_and_close_free_gpu_copies_under_the_lock(tmp_path):
    ctx = StandIn("faiss", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("a", DIM, index="ivf_flat", index_params={"build_threshold": 400, "nlist": 8})
    db.upsert("a", [f"p{i}" for i in range(800)], vecs(800, 1))
    db.maintain()
    g = shard0(db, "a")
    ann = g.ann
    db.drop_collection("a")  # a search thread might still hold `ann`: it is closed anyway
    assert ann.index is None and g.exact is None and ctx.budget.used(0) == 0
    db.create_collection("b", DIM)
    db.upsert("b", ["x"], vecs(1, 2))
    close_checked(db, ctx)


# ---------------------------------------------------------------- flat writes: segments
def test_flat_writes_never_copy_the_base_and_merge_in_the_background(tmp_path, monkeypatch):
    import vecdb.gpu_mirrors as gm
    monkeypatch.setattr(gm, "TAIL_MIN", 300)
    ctx = StandIn("faiss", n=1)
    gdb = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    cdb = Database.open(str(tmp_path / "c"), opts(device="cpu"))
    for db in (gdb, cdb):
        db.create_collection("f", DIM, metric="ip")
        db.upsert("f", [f"p{i}" for i in range(2000)], vecs(2000, 1))
    gdb.close()  # reopen: the base is loaded from the checkpoint in one piece
    gdb = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    m = shard0(gdb, "f").exact
    base = m.base.index
    assert m.base.rows.n == 2000 and m.tail.rows.n == 0
    assert m.row_bytes == DIM * 4 + 4  # GpuIndexFlat keeps a float norm per row, any metric
    for step in range(5):  # small writes: the base is untouched, the tail takes them
        for db in (gdb, cdb):
            db.upsert("f", [f"n{step}-{j}" for j in range(50)], vecs(50, 10 + step))
            db.delete("f", [f"p{step * 7 + j}" for j in range(3)])
    assert m.base.index is base and base.ntotal == 2000 and m.tail.rows.n == 250
    assert shard0(gdb, "f").nbytes == 2250 * m.row_bytes
    q = vecs(6, 3)
    assert ids(gdb.search("f", q, k=15)) == ids(cdb.search("f", q, k=15))
    for db in (gdb, cdb):
        db.upsert("f", [f"z{j}" for j in range(100)], vecs(100, 30))
    assert m.needs_merge()
    gdb.maintain()  # background merge: one new base with every live row, empty tail
    merged = shard0(gdb, "f").exact
    assert merged is not m and m.base.index is None  # the old one is closed
    assert merged.base.rows.n == gdb.count("f") and merged.tail.rows.n == 0 and merged.dead == 0
    assert ids(gdb.search("f", q, k=15)) == ids(cdb.search("f", q, k=15))
    assert sum(db.describe_collection("f").shards[0].gpu_served.get("cpu", 0) for db in (gdb,)) == 0
    gdb.close()
    cdb.close()
    assert ctx.violations == []


def test_merge_replays_the_writes_made_while_it_ran():
    import faiss
    from vecdb.gpu_mirrors import FaissFlatMirror
    from vecdb.index import faiss_metric, new_exact, snapshot
    m = FaissFlatMirror(lambda: faiss.IndexFlat(DIM, faiss_metric("ip")), DIM, "ip", False)
    ref = new_exact(DIM, "ip")
    x = vecs(600, 1)
    labels = np.arange(1, 601, dtype=np.int64)
    m.load(labels, x)
    ref.add_with_ids(x, labels)
    m.apply(labels[:40], np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    ref.remove_ids(labels[:40])
    m.pending = []  # the merge starts: snapshot of the CPU store now
    snap_l, snap_v = snapshot(ref)
    y = vecs(30, 2)
    new = np.arange(601, 631, dtype=np.int64)
    for removed, added, v in ((labels[100:110], new, y), (new[:5], np.zeros(0, np.int64), y[:0])):
        m.apply(removed, added, v)  # written while the new base is built
        ref.remove_ids(removed)
        if len(added):
            ref.add_with_ids(v, added)
    order = np.argsort(snap_l)
    merged = m.merged(m.new_base(snap_l[order], snap_v[order]))
    q = vecs(5, 3)
    got_s, got_l = merged.search(q, 20)
    ref_s, ref_l = ref.search(q, 20)
    assert (got_l == ref_l).all()
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-5)
    assert merged.base.rows.n == 560 and merged.tail.rows.n == 30 and merged.dead == 15


# ---------------------------------------------------------------- CAGRA off the locks
def test_cagra_builds_off_the_locks_and_swaps_in(tmp_path, monkeypatch):
    import vecdb.gpu_index as gi
    monkeypatch.setattr(gi, "ANN_REFRESH_S", 0.0)
    ctx = StandIn("faiss", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("h", DIM, metric="l2", index="hnsw", index_params={"build_threshold": 300})
    db.upsert("h", [f"p{i}" for i in range(400)], vecs(400, 1))
    started, go, seen = threading.Event(), threading.Event(), {}

    def hook():  # runs inside cagra_build, in the maintenance thread
        seen["serve_lock_free"] = not ctx.gpu_lock(0).locked()
        started.set()
        assert go.wait(10)
    ctx.build_hook = hook
    bg = threading.Thread(target=db.maintain)
    bg.start()
    assert started.wait(10)
    # while the graph builds: searches on this GPU and writes to this shard go on
    t0 = time.monotonic()
    db.search("h", vecs(2, 2), k=5, params=SearchParams(exact=True))
    db.delete("h", ["p1", "p2"])
    assert time.monotonic() - t0 < 5 and seen["serve_lock_free"]
    go.set()
    bg.join()
    g = shard0(db, "h")
    assert g.ann is not None and g.ann.kind == "cagra" and g.ann.gone >= {2, 3}  # labels of p1, p2
    got = db.search("h", vecs(3, 4), k=10)
    assert not {"p1", "p2"} & {i for r in got for i in r.ids}
    assert db.describe_collection("h").shards[0].gpu_served["cagra"] == 1
    # an add during the build: the new graph would miss it, so it is not swapped in
    ctx.build_hook = lambda: db.upsert("h", ["late"], vecs(1, 9))
    db.upsert("h", ["trigger"], vecs(1, 8))  # CAGRA takes no adds: the copy goes stale
    assert g.ann is None
    db.maintain()
    assert g.ann is None
    ctx.build_hook = None
    db.maintain()  # no write meanwhile: swapped in
    assert g.ann is not None and len(g.ann.row_labels) == 400 and "late" in db.search(
        "h", vecs(1, 9), k=1)[0].ids
    close_checked(db, ctx)


# ---------------------------------------------------------------- torch: slots, scratch
def test_concurrent_torch_searches_are_bounded_per_gpu(tmp_path):
    ctx = StandIn("torch", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("t", DIM)
    db.upsert("t", [f"p{i}" for i in range(500)], vecs(500, 1))
    slots = ctx.search_slots(0)
    assert slots.acquire(timeout=1) and slots.acquire(timeout=1)  # both slots taken
    done = threading.Event()
    t = threading.Thread(target=lambda: (db.search("t", vecs(1, 2), k=3), done.set()))
    t.start()
    assert not done.wait(0.5)  # waits for a slot
    slots.release()
    assert done.wait(10)
    slots.release()
    t.join()
    db.close()


def test_one_lock_per_gpu_per_process():
    a, b = GpuContext("cpu"), GpuContext("auto")
    assert a.gpu_lock(0) is b.gpu_lock(0) and a.gpu_lock(0) is not a.gpu_lock(1)
    assert a.gpu_lock(0) is not a.gpu_lock(0, "build")


def test_tests_not_about_the_gpu_run_pinned_to_the_cpu(tmp_path):
    """tests/conftest.py hides GPUs (CUDA_VISIBLE_DEVICES="") unless VECDB_TEST_GPU=1."""
    if os.environ.get("VECDB_TEST_GPU") == "1":
        pytest.skip("a GPU run (bench/gpu_check.sh): GPUs are visible on purpose")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    with Database.open(str(tmp_path / "d"), DatabaseOptions(background=False)) as db:
        db.create_collection("c", 4)
        assert db.gpu.gpus.backend is None
        assert db.describe_collection("c").shards[0].device == "cpu"
