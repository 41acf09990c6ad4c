"""CPU stand-ins for the GPU factories of vecdb.gpu.GpuContext.

Every GPU code path of the engine (mirrors, budget, fallbacks, shard spread) runs
on them: torch's "cpu" device for the torch backend, CPU FAISS indexes where the
FAISS GPU backend would build GPU ones. Only the GPU constructors themselves
(GpuIndexFlat, index_cpu_to_gpu, GpuIndexCagra, cuda tensors) are left to the
tests in test_gpu_cuda.py, which need a GPU.
"""
from __future__ import annotations

import faiss

from vecdb.gpu import GpuContext, Gpus


class StandIn(GpuContext):
    def __init__(self, backend: str = "torch", n: int = 2, device: str = "auto", **kw):
        gpus = Gpus(faiss=n if backend == "faiss" else 0, torch=n if backend == "torch" else 0)
        super().__init__(device, gpus=gpus, **kw)
        self.clones = 0

    def torch_device(self, gpu: int) -> str:
        return "cpu"

    def faiss_flat(self, gpu: int, dim: int, metric_type: int):
        return faiss.IndexFlat(dim, metric_type)

    def faiss_clone(self, gpu: int, index):
        self.clones += 1
        return faiss.clone_index(index)

    def cagra(self, gpu: int, dim: int, metric_type: int, vectors, graph_degree: int):
        index = faiss.IndexFlat(dim, metric_type)  # rows by position, like GpuIndexCagra
        index.add(vectors)
        return index

    def cagra_params(self, k: int, ef_search: int):
        return None
