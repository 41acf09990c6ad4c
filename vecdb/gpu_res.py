"""Per-GPU state shared by the whole process, and what FAISS GPU copies cost.

* One ``StandardGpuResources`` per GPU and pool per process (not per Database: each
  reserves about 1.5 GiB of temporary memory on first use), and one lock per resources
  object. StandardGpuResources is not thread-safe (its allocation maps and temporary-memory
  stack have no mutex: faiss issues #1572, #2175), so every allocation, search and free of
  a GPU object made with it happens under that lock (``vecdb.gpu_index``).
* Pools: ``serve`` (exact mirrors, IVF copies, their searches and writes) and ``build``
  (CAGRA graph builds: seconds to minutes, on their own resources so that searches on the
  GPU do not wait for them; the graph then moves to ``serve`` through host memory).
"""
from __future__ import annotations

import threading

import faiss

class GpuLock:
    """A lock that knows which thread holds it (``held()``): tests check that GPU objects
    are allocated and freed under it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> "GpuLock":
        self._lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc) -> None:
        self.owner = None
        self._lock.release()

    def held(self) -> bool:
        return self.owner == threading.get_ident()

    def locked(self) -> bool:
        return self._lock.locked()


_PROCESS = threading.Lock()
_LOCKS: dict[tuple[int, str], GpuLock] = {}
_RESOURCES: dict[tuple[int, str], object] = {}


def gpu_lock(gpu: int, pool: str = "serve") -> GpuLock:
    """The process-wide lock of one FAISS resources object of GPU ``gpu``. StandardGpuResources
    is not thread-safe (its allocation maps and temporary-memory stack have no mutex), so
    every allocation, search and free on objects made with it holds this lock. Pools:
    ``serve`` (mirrors, IVF copies, searches, writes) and ``build`` (CAGRA graph builds, which
    take seconds to minutes and must not stall searches)."""
    with _PROCESS:
        return _LOCKS.setdefault((gpu, pool), GpuLock())


def gpu_resources(gpu: int, pool: str = "serve"):
    """One StandardGpuResources per GPU and pool per process (each reserves about 1.5 GiB
    of temporary memory on first use), shared by every Database of the process."""
    with _PROCESS:
        res = _RESOURCES.get((gpu, pool))
        if res is None:
            res = _RESOURCES[(gpu, pool)] = faiss.StandardGpuResources()
        return res


def clone_options(kind: str) -> dict[str, bool]:
    """GpuClonerOptions fields for copying a CPU IVF index of ``kind`` to a GPU.

    * IVF-PQ: fp16 lookup tables (``useFloat16``, which the cloner passes on as
      GpuIndexIVFPQConfig.useFloat16LookupTables; the codes are unchanged). fp32 tables need
      M x 2^nbits x 4 bytes of shared memory per block (64 KiB at the auto m=64), over the
      48 KiB GPUs offer, and GpuIndexIVFPQ refuses them.
    * IVF-Flat: the cloner does not apply ``useFloat16`` to IVF-Flat (storage stays fp32),
      so ``gpu_fp16`` does not change it; the coarse quantizer stays fp32 too."""
    return {"useFloat16": kind == "ivf_pq", "useFloat16CoarseQuantizer": False}


def ivf_gpu_bytes(index, kind: str, metric_type: int) -> tuple[int, int]:
    """(bytes per vector, fixed bytes) of a GPU copy of a CPU IVF index: codes or fp32
    vectors + an int64 id per vector; fixed: the coarse centroids, and for IVF-PQ with
    l2 the precomputed term tables (nlist x M x 2^nbits, fp16)."""
    ivf = faiss.extract_index_ivf(index)
    fixed = ivf.nlist * ivf.d * 4
    if kind == "ivf_flat":
        return ivf.d * 4 + 8, fixed
    pq = faiss.downcast_index(ivf).pq
    if metric_type == faiss.METRIC_L2:
        fixed += ivf.nlist * pq.M * (1 << pq.nbits) * 2
    return int(ivf.code_size) + 8, fixed
