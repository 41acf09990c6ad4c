"""The real GPU paths: torch CUDA tensors, FAISS GPU indexes (GpuIndexFlat,
index_cpu_to_gpu, CAGRA). They skip on machines without a GPU (every other GPU code
path is covered on CPU stand-ins by test_gpu_torch_flat.py and test_gpu_engine.py).
bench/gpu_bench.py runs this file on the GPU box."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from vecdb import Database, DatabaseOptions, SearchParams
from vecdb.gpu import GpuContext, Gpus, faiss_gpus, torch_gpus
from vecdb.index import faiss_metric

TORCH_CUDA = torch_gpus()[0]
FAISS_GPU = faiss_gpus()
needs_torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason="needs torch with CUDA and a GPU")
needs_faiss_gpu = pytest.mark.skipif(not FAISS_GPU, reason="needs faiss with GPU support and a GPU")


def clustered(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((32, dim)).astype(np.float32)
    return (centers[rng.integers(0, 32, n)] + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)


def recall(ref, got, k):
    return np.mean([len(set(r[:k]) & set(g[:k])) / k for r, g in zip(ref, got)])


@needs_torch_cuda
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("fp16", [False, True])
def test_torch_flat_on_cuda_matches_faiss_flat(metric, fp16):
    from vecdb.torch_flat import TorchFlat
    base, queries = clustered(50_000, 96, 1), clustered(300, 96, 2)
    m = TorchFlat(96, metric, "cuda:0", fp16=fp16)
    m.apply(np.zeros(0, np.int64), np.arange(1, 50_001, dtype=np.int64), base)
    m.apply(np.arange(1, 50_001, 10, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, 96), np.float32))
    ref = faiss.IndexIDMap2(faiss.IndexFlat(96, faiss_metric(metric)))
    keep = np.setdiff1d(np.arange(1, 50_001), np.arange(1, 50_001, 10))
    ref.add_with_ids(base[keep - 1], keep)
    ref_s, ref_l = ref.search(queries, 10)
    got_s, got_l = m.search(queries, 10)
    assert recall(ref_l, got_l, 10) >= (0.99 if fp16 else 0.999)
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-2 if fp16 else 1e-4, atol=1e-2 if fp16 else 1e-3)


def _engine_roundtrip(tmp_path, ctx, index, metric, params=None):
    data, q = clustered(20_000, 64, 3), clustered(50, 64, 4)
    gdb = Database.open(str(tmp_path / "g"), DatabaseOptions(background=False), gpu=ctx)
    cdb = Database.open(str(tmp_path / "c"), DatabaseOptions(background=False, device="cpu"))
    ids = [f"p{i}" for i in range(len(data))]
    for db in (gdb, cdb):
        db.create_collection("c", 64, metric=metric, index=index, shards=2,
                             index_params={"build_threshold": 5000} if index != "flat" else None)
        db.upsert("c", ids, data)
        db.delete("c", ids[::7])
        db.maintain()
    desc = gdb.describe_collection("c")
    assert all(s.device.startswith("cuda:") for s in desc.shards) and desc.gpu_memory_bytes > 0
    sp = params or SearchParams()
    for p in (SearchParams(exact=True), sp):
        g = [r.ids for r in gdb.search("c", q, k=10, params=p)]
        c = [r.ids for r in cdb.search("c", q, k=10, params=p)]
        assert recall(c, g, 10) >= 0.95
    assert sum(s.gpu.served for s in gdb.collections["c"].shards) > 0
    gdb.close()
    with Database.open(str(tmp_path / "g"), DatabaseOptions(background=False, device="cpu")) as db:
        assert db.count("c") == cdb.count("c")  # CPU checkpoints: a CPU-only restart works
    cdb.close()


@needs_torch_cuda
def test_engine_torch_backend_on_cuda(tmp_path):
    _engine_roundtrip(tmp_path, GpuContext("gpu", gpus=Gpus(0, TORCH_CUDA)), "flat", "cosine")


@needs_faiss_gpu
@pytest.mark.parametrize("index,metric", [("flat", "l2"), ("ivf_flat", "cosine"), ("ivf_pq", "ip"),
                                          ("hnsw", "l2")])
def test_engine_faiss_gpu_indexes(tmp_path, index, metric):
    _engine_roundtrip(tmp_path, GpuContext("gpu"), index, metric, SearchParams(nprobe=64))


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
