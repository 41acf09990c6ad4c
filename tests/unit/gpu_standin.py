"""CPU stand-ins for the GPU factories of vecdb.gpu.GpuContext.

Every GPU code path of the engine (mirrors, budget, fallbacks, shard spread, locking)
runs on them: torch's "cpu" device for the torch backend, CPU FAISS indexes where the
FAISS GPU backend would build GPU ones. Only the GPU constructors themselves
(GpuIndexFlat, index_cpu_to_gpu, GpuIndexCagra, cuda tensors) are left to the tests
in test_gpu_cuda.py, which need a GPU.

The FAISS stand-in indexes are wrapped in ``Tracked``, which checks the locking
discipline a real GPU needs: made, used and freed (``__del__``) only while the
thread holds the GPU's lock; violations are collected in ``StandIn.violations``.
"""
from __future__ import annotations

import threading
import time

import faiss

from vecdb.gpu import GpuContext, Gpus
from vecdb.gpu_res import clone_options


class Tracked:
    """A CPU FAISS index standing in for a GPU one; records use outside the GPU lock."""

    def __init__(self, ctx: "StandIn", gpu: int, index, pool: str = "serve"):
        self._ctx, self._gpu, self._pool, self._index = ctx, gpu, pool, index
        self._check("made")

    def _check(self, what: str) -> None:
        if not self._ctx.gpu_lock(self._gpu, self._pool).held():
            self._ctx.violations.append(f"{what} outside the lock of cuda:{self._gpu} "
                                        f"({threading.current_thread().name})")

    def __getattr__(self, name):
        if name in ("add", "add_with_ids", "search", "reset", "train"):
            self._check(name)
        return getattr(self._index, name)

    def __del__(self):
        self._check("freed")


SHARED_MEM_PER_BLOCK = 48 << 10


def run_together(seconds: float, *fns) -> list[str]:
    """Run each ``fn(i)`` for i = 0, 1, ... in its own thread for ``seconds``; the errors
    (each thread stops at its first)."""
    stop, errors = threading.Event(), []

    def run(fn):
        i = 0
        while not stop.is_set():
            try:
                fn(i)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                return
            i += 1
    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return errors


def check_gpu_ivfpq(pq, fp16_tables: bool) -> None:
    """What a FAISS GPU build without cuVS checks when it takes an IVF-PQ index (its
    GpuIndexIVFPQ settings check): 8 bits per code, and the per-block lookup tables
    (M x 2^nbits entries of 2 or 4 bytes) within the block's shared memory."""
    if pq.nbits != 8:
        raise RuntimeError(f"Error in verifyPQSettings_: Bits per code must be 8 (passed {pq.nbits})")
    need = (2 if fp16_tables else 4) * pq.M * (1 << pq.nbits)
    if need > SHARED_MEM_PER_BLOCK:
        raise RuntimeError(f"Error in verifyPQSettings_: Device 0 has {SHARED_MEM_PER_BLOCK} bytes of "
                           f"shared memory, while {pq.nbits} bits per code and {pq.M} sub-quantizers "
                           f"requires {need} bytes. Consider useFloat16LookupTables")


class StandIn(GpuContext):
    def __init__(self, backend: str = "torch", n: int = 2, device: str = "auto", **kw):
        gpus = Gpus(faiss=n if backend == "faiss" else 0, torch=n if backend == "torch" else 0)
        super().__init__(device, gpus=gpus, **kw)
        self.clones: list[dict] = []  # GpuClonerOptions fields of each IVF copy
        self.violations: list[str] = []
        self.cagra = True  # False: a FAISS without cuVS
        self.build_hook = None  # called inside cagra_build (tests block it there)

    def torch_device(self, gpu: int) -> str:
        return "cpu"

    def faiss_flat(self, gpu: int, dim: int, metric_type: int):
        return Tracked(self, gpu, faiss.IndexFlat(dim, metric_type))

    def faiss_clone(self, gpu: int, index, kind: str):
        opts = clone_options(kind)
        self.clones.append(opts)
        if kind == "ivf_pq":
            check_gpu_ivfpq(faiss.downcast_index(index).pq, opts["useFloat16"])
        return Tracked(self, gpu, faiss.clone_index(index))

    def faiss_kmeans_flat(self, gpu: int, dim: int, metric_type: int):
        """A real CPU IndexFlat (FAISS's C++ k-means takes it), subclassed to check the
        calls made on it from Python (faiss.Kmeans.assign) and its free against the lock
        of the GPU's "build" resources."""
        ctx = self

        class KmeansFlat(faiss.IndexFlat):
            def _check(self, what: str) -> None:
                if not ctx.gpu_lock(gpu, "build").held():
                    ctx.violations.append(f"k-means index {what} outside the build lock of cuda:{gpu}")

            def add(self, *a, **kw):
                self._check("add")
                return super().add(*a, **kw)

            def search(self, *a, **kw):
                self._check("search")
                return super().search(*a, **kw)

            def __del__(self):
                self._check("freed")
        self.kmeans_indexes = getattr(self, "kmeans_indexes", 0) + 1
        index = KmeansFlat(dim, metric_type)
        index._check("made")
        return index

    def has_cagra(self) -> bool:
        return self.cagra

    def cagra_build(self, gpu: int, dim: int, metric_type: int, vectors, graph_degree: int):
        if self.build_hook is not None:
            self.build_hook()
        index = faiss.IndexFlat(dim, metric_type)  # the "host graph": rows by position
        index.add(vectors)
        return index

    def cagra_load(self, gpu: int, host):
        return Tracked(self, gpu, faiss.clone_index(host))

    def cagra_params(self, k: int, ef_search: int):
        return None
