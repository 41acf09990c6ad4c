"""The engine with GPU placement, on CPU stand-ins (gpu_standin.StandIn): results equal
a plain CPU database through writes, deletes, replacements and restarts; shards spread
over GPUs; the GPU memory budget; ANN copies (FAISS backend); fallbacks."""
from __future__ import annotations

import numpy as np
import pytest

from gpu_standin import StandIn
from vecdb import Database, DatabaseOptions, ResourceExhausted, SearchParams
from vecdb.gpu import Budget

DIM = 16


def vecs(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def opts(**kw):
    return DatabaseOptions(background=False, **kw)


def same_results(a, b, scores_atol=1e-4):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, rtol=1e-4, atol=scores_atol)
        tied = np.isclose(np.diff(x.scores), 0, atol=10 * scores_atol)
        for i, (p, q) in enumerate(zip(x.ids, y.ids)):
            if not ((i > 0 and tied[i - 1]) or (i < len(tied) and tied[i])):
                assert p == q


def shard_gpus(db, name):
    return [s.gpu for s in db.collections[name].shards]


def served(db, name, backend=None):
    """Searches served per backend, summed over shards, as describe reports them."""
    got = [s.gpu_served for s in db.describe_collection(name).shards]
    return sum(sum(d.values()) if backend is None else d.get(backend, 0) for d in got)


def fallbacks(db, name):
    return sum(sum(s.gpu_fallbacks.values()) for s in db.describe_collection(name).shards)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_gpu_collection_matches_cpu_through_writes_and_restart(tmp_path, backend, metric):
    ctx = StandIn(backend, n=2)
    gdb = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    cdb = Database.open(str(tmp_path / "c"), opts(device="cpu"))
    for db in (gdb, cdb):
        db.create_collection("c", DIM, metric=metric, index="flat", shards=3)
        db.upsert("c", [f"p{i}" for i in range(600)], vecs(600, 1), [{"i": i} for i in range(600)])
        db.delete("c", [f"p{i}" for i in range(0, 600, 4)])
        db.upsert("c", [f"p{i}" for i in range(1, 200, 2)], vecs(100, 2))  # replacements
    q = vecs(5, 9)
    desc = gdb.describe_collection("c")
    assert [s.device for s in desc.shards] == ["cuda:0", "cuda:1", "cuda:0"]
    assert desc.gpu_memory_bytes > 0 and all(s.gpu_memory_bytes > 0 for s in desc.shards)
    assert cdb.describe_collection("c").gpu_memory_bytes == 0
    assert {s.device for s in cdb.describe_collection("c").shards} == {"cpu"}
    exact = "torch" if backend == "torch" else "faiss_flat"
    before = served(gdb, "c", exact)
    same_results(gdb.search("c", q, k=20), cdb.search("c", q, k=20))
    assert served(gdb, "c", exact) == before + 3  # one search per shard, on the GPU
    assert served(gdb, "c", "cpu") == 0 and fallbacks(gdb, "c") == 0
    # filtered searches run on the CPU indexes and agree too
    flt = {"must": [{"key": "i", "range": {"gte": 300}}]}
    same_results(gdb.search("c", q, k=5, filter=flt), cdb.search("c", q, k=5, filter=flt))
    gdb.close()
    gdb = Database.open(str(tmp_path / "g"), opts(), gpu=StandIn(backend, n=2))  # recovery reloads
    same_results(gdb.search("c", q, k=20), cdb.search("c", q, k=20))
    assert [s.gpu_served for s in gdb.describe_collection("c").shards] == [{exact: 1}] * 3
    gdb.close()
    # the checkpoints are CPU indexes: a CPU-only machine opens the GPU collection
    gdb = Database.open(str(tmp_path / "g"), opts(device="cpu"))
    assert gdb.describe_collection("c").config.device == "auto"
    same_results(gdb.search("c", q, k=20), cdb.search("c", q, k=20))
    gdb.close()
    cdb.close()


def test_auto_index_exact_path_on_gpu_and_ann_copy_with_faiss(tmp_path):
    ctx = StandIn("faiss", n=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("a", DIM, index="ivf_flat", index_params={"build_threshold": 500, "nlist": 8})
    db.upsert("a", [f"p{i}" for i in range(400)], vecs(400, 1))
    g = shard_gpus(db, "a")[0]
    q = vecs(4, 5)
    db.search("a", q, k=5)  # below the build threshold: exact, on the GPU mirror
    assert served(db, "a", "faiss_flat") == 1 and g.ann is None
    db.upsert("a", [f"p{i}" for i in range(400, 1200)], vecs(800, 2))
    assert db.maintain() == 1
    assert g.ann is not None and len(ctx.clones) == 1 and g.ann.kind == "ivf_flat"
    assert ctx.clones[0]["useFloat16"] is False  # the cloner ignores it for IVF-Flat anyway
    assert db.describe_collection("a").shards[0].gpu_ann == "ivf_flat"
    ref = db.search("a", q, k=10, params=SearchParams(nprobe=8))  # every list: exact
    exact = db.search("a", q, k=10, params=SearchParams(exact=True))
    same_results(ref, exact)
    db.delete("a", ["p3", "p700"])
    db.upsert("a", [f"n{i}" for i in range(50)], vecs(50, 3))
    before = served(db, "a", "ivf_flat")
    got = db.search("a", q, k=10, params=SearchParams(nprobe=8))
    assert served(db, "a", "ivf_flat") == before + 1  # the copy answered (deletes filtered, adds followed)
    same_results(got, db.search("a", q, k=10, params=SearchParams(exact=True)))
    assert not {"p3", "p700"} & {i for r in got for i in r.ids}
    db.close()


def test_budget_refuses_a_write_that_would_not_fit(tmp_path):
    # torch rows: 16*4 bytes + 1 alive byte (cosine) = 65 B; capacity grows by 25%
    ctx = StandIn("torch", n=1, budget_mb=1)
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("b", DIM)
    db.upsert("b", [f"p{i}" for i in range(10_000)], vecs(10_000, 1))
    used = db.describe_collection("b").gpu_memory_bytes
    scratch = 2 * (1 << 20) // 32  # two concurrent torch searches' temporaries, 1/32 of the budget each
    assert ctx.torch_scratch_bytes == (1 << 20) // 32
    assert 0 < used <= 1 << 20 and ctx.budget.used(0) == used + scratch
    with pytest.raises(ResourceExhausted) as ei:
        db.upsert("b", [f"q{i}" for i in range(10_000)], vecs(10_000, 2))
    assert ei.value.field == "gpu_memory_budget_mb" and "cuda:0" in ei.value.message
    assert db.count("b") == 10_000  # nothing was written
    assert ctx.budget.used(0) == used + scratch
    db.delete("b", [f"p{i}" for i in range(9000)])  # shrinking always passes
    db.upsert("b", [f"q{i}" for i in range(5000)], vecs(5000, 2))
    assert db.count("b") == 6000
    # a second collection on the same GPU shares the budget
    db.create_collection("b2", DIM)
    with pytest.raises(ResourceExhausted):
        db.upsert("b2", [f"r{i}" for i in range(12_000)], vecs(12_000, 4))
    db.drop_collection("b")  # dropping gives its reservation back
    db.upsert("b2", [f"r{i}" for i in range(12_000)], vecs(12_000, 4))
    db.close()


def test_shard_over_budget_at_open_runs_on_the_cpu(tmp_path):
    db = Database.open(str(tmp_path / "g"), opts(), gpu=StandIn("torch", n=1))
    db.create_collection("b", DIM)
    db.upsert("b", [f"p{i}" for i in range(20_000)], vecs(20_000, 1))
    ref = db.search("b", vecs(2, 3), k=10)
    db.close()
    db = Database.open(str(tmp_path / "g"), opts(), gpu=StandIn("torch", n=1, budget_mb=1))
    desc = db.describe_collection("b")
    assert desc.shards[0].device == "cpu" and desc.gpu_memory_bytes == 0
    same_results(db.search("b", vecs(2, 3), k=10), ref)
    db.upsert("b", ["more"], vecs(1, 5))  # CPU shards ignore the budget
    db.close()


def test_gpu_search_failure_falls_back_to_cpu(tmp_path, caplog):
    db = Database.open(str(tmp_path / "g"), opts(), gpu=StandIn("torch", n=1))
    db.create_collection("f", DIM)
    db.upsert("f", [f"p{i}" for i in range(300)], vecs(300, 1))
    g = shard_gpus(db, "f")[0]
    ref = db.search("f", vecs(2, 3), k=10)

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")
    g.exact.search = boom
    same_results(db.search("f", vecs(2, 3), k=10), ref)
    assert fallbacks(db, "f") == 1 and "GPU search (torch) failed" in caplog.text
    g.exact.apply = boom  # a failed write drops the GPU copy; the shard stays correct
    db.upsert("f", ["z"], vecs(1, 4))
    assert g.exact is None and db.describe_collection("f").shards[0].device == "cpu"
    assert db.count("f") == 301 and db.search("f", vecs(1, 4), k=1)[0].ids == ["z"]
    db.close()


def test_budget_reserve_is_all_or_nothing():
    b = Budget(1000)
    assert b.reserve({"a": (0, 600), "x": (1, 900)}) == {"a": None, "x": None}
    with pytest.raises(ResourceExhausted):
        b.reserve({"a": (0, 500), "b": (0, 501)})
    assert b.used(0) == 600 and b.used(1) == 900
    prev = b.reserve({"a": (0, 300), "b": (0, 700)})
    b.restore(prev)
    assert b.used(0) == 600
    b.release("a")
    assert b.used(0) == 0
    unlimited = Budget(0)
    unlimited.reserve({"a": (0, 1 << 40)})
    assert unlimited.used(0) == 1 << 40


def test_ann_copy_over_budget_stays_on_the_cpu(tmp_path, caplog):
    # exact mirror: 2000 x 64 B = 128 KB fits 1 MiB; the IVF copy at 72 B/vector would too,
    # so fill the GPU with another shard's reservation first
    ctx = StandIn("faiss", n=1, budget_mb=1)
    ctx.budget.reserve({"other": (0, (1 << 20) - 200_000)})
    db = Database.open(str(tmp_path / "g"), opts(), gpu=ctx)
    db.create_collection("a", DIM, index="ivf_flat", index_params={"build_threshold": 500, "nlist": 8})
    db.upsert("a", [f"p{i}" for i in range(2000)], vecs(2000, 1))
    assert db.maintain() == 1
    g = shard_gpus(db, "a")[0]
    assert g.exact is not None and g.ann is None and ctx.clones == []
    st = db.describe_collection("a").shards[0]
    assert st.gpu_placement_failures == 1 and "ivf_flat" in st.gpu_error
    assert "gpu_memory_budget_mb" in st.gpu_error and st.gpu_error in caplog.text
    assert ctx.budget.used(0) == (1 << 20) - 200_000 + g.nbytes
    q = vecs(3, 2)
    same_results(db.search("a", q, k=5, params=SearchParams(nprobe=8)),
                 db.search("a", q, k=5, params=SearchParams(exact=True)))
    db.close()
