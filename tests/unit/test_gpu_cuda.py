"""The real GPU paths: torch CUDA tensors, FAISS GPU indexes (GpuIndexFlat,
index_cpu_to_gpu of IVF-Flat/IVF-PQ, CAGRA). Each test asserts that the GPU path
actually served (describe's gpu_served per backend, no fallbacks, the ANN kind placed),
so that a GPU run can fail. They skip without a GPU, and on a GPU machine unless
VECDB_TEST_GPU=1 (tests/conftest.py hides GPUs otherwise): bench/gpu_check.sh runs them.
Every other GPU code path is covered on CPU stand-ins (test_gpu_fixes.py,
test_gpu_engine.py, test_gpu_torch_flat.py)."""
from __future__ import annotations

import multiprocessing as mp

import faiss
import numpy as np
import pytest

from gpu_standin import run_together
from vecdb import Database, DatabaseOptions, SearchParams
from vecdb.gpu import GpuContext, Gpus, faiss_gpus, torch_gpus
from vecdb.index import faiss_metric

TORCH_CUDA = torch_gpus()[0]
FAISS_GPU = faiss_gpus()
CAGRA = hasattr(faiss, "GpuIndexCagra")
WHY = "(run with VECDB_TEST_GPU=1 on a GPU machine: bench/gpu_check.sh)"
needs_torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason=f"needs torch CUDA and a GPU {WHY}")
needs_faiss_gpu = pytest.mark.skipif(not FAISS_GPU, reason=f"needs faiss GPU support and a GPU {WHY}")


def clustered(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((32, dim)).astype(np.float32)
    return (centers[rng.integers(0, 32, n)] + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)


def recall(ref, got, k):
    return np.mean([len(set(r[:k]) & set(g[:k])) / k for r, g in zip(ref, got)])


def shards(db, name):
    return db.describe_collection(name).shards


def served(db, name, backend):
    return sum(s.gpu_served.get(backend, 0) for s in shards(db, name))


def assert_no_fallback(db, name):
    for s in shards(db, name):
        assert s.gpu_fallbacks == {} and s.gpu_error == "", (s.gpu_fallbacks, s.gpu_error)


# ---------------------------------------------------------------- torch
@needs_torch_cuda
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("fp16", [False, True])
def test_torch_flat_on_cuda_matches_faiss_flat(metric, fp16):
    from vecdb.torch_flat import TorchFlat
    base, queries = clustered(50_000, 96, 1), clustered(300, 96, 2)
    m = TorchFlat(96, metric, "cuda:0", fp16=fp16)
    assert m.half_compute == fp16 and m.use_half(queries) == fp16
    m.apply(np.zeros(0, np.int64), np.arange(1, 50_001, dtype=np.int64), base)
    m.apply(np.arange(1, 50_001, 10, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, 96), np.float32))
    ref = faiss.IndexIDMap2(faiss.IndexFlat(96, faiss_metric(metric)))
    keep = np.setdiff1d(np.arange(1, 50_001), np.arange(1, 50_001, 10))
    ref.add_with_ids(base[keep - 1], keep)
    ref_s, ref_l = ref.search(queries, 10)
    got_s, got_l = m.search(queries, 10)
    assert recall(ref_l, got_l, 10) >= (0.99 if fp16 else 0.999)
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-2 if fp16 else 1e-4, atol=1e-2 if fp16 else 1e-3)


@pytest.fixture(scope="module")
def minilm_text():
    """(base, queries): 3,000 sentences and 200 others embedded with MiniLM (unit norm)."""
    pytest.importorskip("sentence_transformers")
    from gpu_sentences import sentences
    from sentence_transformers import SentenceTransformer
    from vecdb.encoders.st import minilm_path
    model = SentenceTransformer(minilm_path(), device="cuda" if TORCH_CUDA else "cpu",
                                local_files_only=True)
    text = sentences(3200)
    emb = model.encode(text, batch_size=128, normalize_embeddings=True).astype(np.float32)
    return emb[:3000], emb[3000:]


@needs_torch_cuda
def test_fp16_recall_at_10_on_minilm_text(minilm_text):
    from vecdb.torch_flat import TorchFlat
    base, q = minilm_text
    ref = faiss.IndexFlatIP(base.shape[1])
    ref.add(base)
    _, ref_rows = ref.search(q, 10)
    m = TorchFlat(base.shape[1], "ip", "cuda:0", fp16=True)
    m.apply(np.zeros(0, np.int64), np.arange(1, len(base) + 1, dtype=np.int64), base)
    assert m.use_half(q)
    _, got = m.search(q, 10)
    assert recall(ref_rows + 1, got, 10) >= 0.99


@needs_torch_cuda
def test_engine_torch_backend_on_cuda(tmp_path):
    _engine_roundtrip(tmp_path, GpuContext("gpu", gpus=Gpus(0, TORCH_CUDA)), "flat", "cosine",
                      "torch", None)


# ---------------------------------------------------------------- FAISS GPU
def _engine_roundtrip(tmp_path, ctx, index, metric, exact_backend, ann_backend, dim=64, n=20_000):
    """A GPU and a CPU database fed the same writes: results agree, the GPU path served
    (exact and ANN), nothing fell back, writes after the copy are followed, and a CPU-only
    restart opens the GPU collection."""
    data, q = clustered(n, dim, 3), clustered(50, dim, 4)
    gdb = Database.open(str(tmp_path / "g"), DatabaseOptions(background=False), gpu=ctx)
    cdb = Database.open(str(tmp_path / "c"), DatabaseOptions(background=False, device="cpu"))
    ids = [f"p{i}" for i in range(len(data))]
    params = {"build_threshold": n // 4} if index != "flat" else None
    if index.startswith("ivf"):
        params["nlist"] = 64
    if index == "ivf_pq":
        params["m"] = 16  # (auto m=64: test_ivfpq_with_auto_m64_is_placed_on_the_gpu)
    for db in (gdb, cdb):
        db.create_collection("c", dim, metric=metric, index=index, shards=2, index_params=params)
        db.upsert("c", ids, data)
        db.delete("c", ids[::7])
        db.maintain()
    desc = gdb.describe_collection("c")
    assert all(s.device.startswith("cuda:") for s in desc.shards) and desc.gpu_memory_bytes > 0
    if ann_backend:
        assert {s.gpu_ann for s in desc.shards} == {ann_backend}, [s.gpu_error for s in desc.shards]
    for p in (SearchParams(exact=True), SearchParams(nprobe=64)):
        g = [r.ids for r in gdb.search("c", q, k=10, params=p)]
        c = [r.ids for r in cdb.search("c", q, k=10, params=p)]
        assert recall(c, g, 10) >= 0.95
    # two searches over two shards: exact + ANN (a flat collection answers both exactly)
    assert served(gdb, "c", exact_backend) == (2 if ann_backend else 4) and served(gdb, "c", "cpu") == 0
    if ann_backend:
        assert served(gdb, "c", ann_backend) == 2
        # writes after the copy was made: IVF takes the adds, CAGRA goes stale until rebuilt
        new = clustered(20, dim, 5)
        for db in (gdb, cdb):
            db.upsert("c", [f"n{i}" for i in range(20)], new)
        if metric != "ip":  # (with ip a longer vector can beat a point's own score)
            hit = gdb.search("c", new[:5], k=1, params=SearchParams(nprobe=64, ef_search=64))
            assert [r.ids[0] for r in hit] == [f"n{i}" for i in range(5)]
        if ann_backend == "cagra":
            assert {s.gpu_ann for s in shards(gdb, "c")} == {""}
            import vecdb.gpu_index as gi
            gi.ANN_REFRESH_S, saved = 0.0, gi.ANN_REFRESH_S
            try:
                gdb.maintain()
            finally:
                gi.ANN_REFRESH_S = saved
            assert {s.gpu_ann for s in shards(gdb, "c")} == {"cagra"}
        before = served(gdb, "c", ann_backend)
        gdb.search("c", q, k=10, params=SearchParams(nprobe=64))
        assert served(gdb, "c", ann_backend) == before + 2
    assert_no_fallback(gdb, "c")
    gdb.close()
    with Database.open(str(tmp_path / "g"), DatabaseOptions(background=False, device="cpu")) as db:
        assert db.count("c") == cdb.count("c")  # CPU checkpoints: a CPU-only restart works
    cdb.close()


@needs_faiss_gpu
@pytest.mark.parametrize("index,metric,ann", [
    ("flat", "l2", None), ("ivf_flat", "cosine", "ivf_flat"), ("ivf_pq", "ip", "ivf_pq"),
    pytest.param("hnsw", "l2", "cagra", marks=pytest.mark.skipif(not CAGRA, reason="FAISS without cuVS"))])
def test_engine_faiss_gpu_indexes(tmp_path, index, metric, ann):
    _engine_roundtrip(tmp_path, GpuContext("gpu"), index, metric, "faiss_flat", ann)


@needs_faiss_gpu
def test_ivfpq_with_auto_m64_is_placed_on_the_gpu(tmp_path):
    """dim 384 -> m=64: fp32 lookup tables would need 64 KiB of shared memory per block."""
    data = clustered(8000, 384, 6)
    with Database.open(str(tmp_path / "g"), DatabaseOptions(background=False), gpu=GpuContext("gpu")) as db:
        db.create_collection("pq", 384, index="ivf_pq", index_params={"build_threshold": 6000})
        db.upsert("pq", [f"p{i}" for i in range(len(data))], data)
        db.maintain()
        st = shards(db, "pq")[0]
        assert st.gpu_ann == "ivf_pq" and st.gpu_placement_failures == 0, st.gpu_error
        db.search("pq", data[:8], k=10)
        assert served(db, "pq", "ivf_pq") == 1
        assert_no_fallback(db, "pq")


@needs_faiss_gpu
def test_flat_segments_follow_writes_and_merge_on_the_gpu(tmp_path, monkeypatch):
    import vecdb.gpu_mirrors as gm
    monkeypatch.setattr(gm, "TAIL_MIN", 500)
    data = clustered(5000, 32, 7)
    gdb = Database.open(str(tmp_path / "g"), DatabaseOptions(background=False), gpu=GpuContext("gpu"))
    cdb = Database.open(str(tmp_path / "c"), DatabaseOptions(background=False, device="cpu"))
    q = clustered(20, 32, 8)
    for step in range(12):
        chunk = data[step * 400:(step + 1) * 400]
        for db in (gdb, cdb):
            if step == 0:
                db.create_collection("f", 32, metric="l2")
            db.upsert("f", [f"p{step}-{i}" for i in range(len(chunk))], chunk)
            if step:
                db.delete("f", [f"p{step - 1}-{i}" for i in range(0, 400, 5)])
        if step % 4 == 3:
            gdb.maintain()
        g = [r.ids for r in gdb.search("f", q, k=10)]
        assert recall([r.ids for r in cdb.search("f", q, k=10)], g, 10) >= 0.99
    assert served(gdb, "f", "faiss_flat") == 12 and served(gdb, "f", "cpu") == 0
    assert_no_fallback(gdb, "f")
    gdb.close()
    cdb.close()


def _churn_workload(path: str, seconds: float) -> None:
    """Threads searching while others write and create/drop collections on one GPU."""
    db = Database.open(path, DatabaseOptions(background=True), gpu=GpuContext("gpu"))
    db.create_collection("a", 64, index="ivf_flat", index_params={"build_threshold": 2000})
    db.create_collection("f", 64)
    data = clustered(4000, 64, 9)
    for name in ("a", "f"):
        db.upsert(name, [f"p{i}" for i in range(4000)], data)
    db.maintain()
    def write(i):
        db.upsert("af"[i % 2], [f"w{i % 500}"], data[i % 4000:i % 4000 + 1])
        db.delete("af"[i % 2], [f"p{i % 4000}"])

    def search(i):
        db.search("af"[i % 2], data[i % 3000:i % 3000 + 8], k=10, params=SearchParams(exact=i % 2 == 0))

    def churn(i):
        db.create_collection(f"t{i}", 64, shards=2)
        db.upsert(f"t{i}", [f"p{j}" for j in range(200)], data[:200])
        db.search(f"t{i}", data[:4], k=5)
        db.drop_collection(f"t{i}")

    errors = run_together(seconds, write, write, search, search, search, churn, lambda i: db.maintain())
    db.close()
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")


@needs_faiss_gpu
def test_search_write_drop_threads_do_not_abort(tmp_path):
    p = mp.get_context("spawn").Process(target=_churn_workload, args=(str(tmp_path / "d"), 20.0))
    p.start()
    p.join(300)
    assert p.exitcode == 0  # a free outside the GPU lock can abort the process (SIGABRT: -6)


@needs_faiss_gpu
def test_one_resources_object_per_gpu_per_process(tmp_path):
    a, b = GpuContext("gpu"), GpuContext("gpu")
    assert a.resources(0) is b.resources(0) and a.gpu_lock(0) is b.gpu_lock(0)


@pytest.mark.skipif(FAISS_GPU < 2, reason=f"needs 2 GPUs with FAISS {WHY}")
def test_shards_spread_over_gpus_and_each_serves(tmp_path):
    with Database.open(str(tmp_path / "g"), DatabaseOptions(background=False), gpu=GpuContext("gpu")) as db:
        db.create_collection("m", 32, shards=FAISS_GPU)
        data = clustered(4000, 32, 10)
        db.upsert("m", [f"p{i}" for i in range(4000)], data)
        db.search("m", data[:4], k=5)
        st = shards(db, "m")
        assert [s.device for s in st] == [f"cuda:{i}" for i in range(FAISS_GPU)]
        assert all(s.gpu_served == {"faiss_flat": 1} for s in st)


@needs_faiss_gpu
def test_gpu_copies_convert_back_for_checkpoints():
    res = faiss.StandardGpuResources()
    data = clustered(5000, 32, 5)
    cpu = faiss.IndexIVFFlat(faiss.IndexFlatL2(32), 32, 16)
    cpu.train(data)
    cpu.add_with_ids(data, np.arange(5000, dtype=np.int64))
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    back = faiss.index_gpu_to_cpu(gpu)
    assert back.ntotal == 5000 and faiss.serialize_index(back).size > 0


@pytest.mark.parametrize("backend,index,metric,ann", [
    ("torch", "flat", "cosine", None), ("faiss", "flat", "l2", None),
    ("faiss", "ivf_flat", "cosine", "ivf_flat"), ("faiss", "ivf_pq", "ip", "ivf_pq"),
    ("faiss", "hnsw", "l2", "cagra")])
def test_the_gpu_checks_themselves_on_standins(tmp_path, backend, index, metric, ann):
    """The GPU checks above run on CPU stand-ins too, so they are known to pass where the
    GPU path does what it should (and to mean something when they fail on a GPU)."""
    from gpu_standin import StandIn
    ctx = StandIn(backend, n=2)
    _engine_roundtrip(tmp_path, ctx, index, metric, "torch" if backend == "torch" else "faiss_flat",
                      ann, n=8000)
    assert ctx.violations == []


@needs_faiss_gpu
def test_kmeans_on_a_faiss_gpu_collection(tmp_path):
    """k-means of a collection on a FAISS GPU trains and assigns with a GpuIndexFlat on the
    GPU's "build" resources under their lock (analytics/kmeans.py); searches on the GPU
    keep being served meanwhile; the result is faiss.Kmeans' on the CPU up to float error."""
    data = clustered(20_000, 64, 7)
    with Database.open(str(tmp_path / "g"), DatabaseOptions(background=False),
                       gpu=GpuContext("gpu")) as db:
        db.create_collection("km", 64, index="flat", metric="l2", device="gpu")
        db.upsert("km", [f"p{i}" for i in range(len(data))], data)
        job = db.cluster("km", 16, seed=3, iterations=10, write_label="topic", wait=True)
        assert job.state == "done", job.error
        db.search("km", data[:4], k=5)
        assert served(db, "km", "faiss_flat") >= 1
        assert_no_fallback(db, "km")
        assert sum(db.count("km", {"key": "topic", "match": c}) for c in range(16)) == len(data)
    ref = faiss.Kmeans(64, 16, niter=10, seed=3,
                       init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    ref.train(data)
    _, want = ref.assign(data)
    ref_inertia = float(((data - ref.centroids[want]) ** 2).sum(dtype=np.float64))
    assert job.result.inertia == pytest.approx(ref_inertia, rel=1e-3)
