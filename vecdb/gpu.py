"""Where a collection runs: device resolution, the GPU memory budget, GPU factories.

Settings (docs/gpu.md): the server's ``device`` (DatabaseOptions) and each
collection's ``device`` (CollectionConfig), both ``auto`` | ``cpu`` | ``gpu``.

* collection ``cpu``, or ``auto`` on a server with ``device=cpu``: CPU.
* collection ``gpu``: a usable GPU is required (FailedPrecondition naming
  ``device`` at create time; a server with ``device=cpu`` refuses it too).
* collection ``auto``: follows the server; on a server with ``device=auto``
  a GPU is used when one is usable, else the CPU (logged once).
* server ``gpu`` without a usable GPU: the database does not open.

A usable GPU is either FAISS with GPU support (``faiss-gpu*``: exact and
IVF/CAGRA indexes through FAISS's GPU API) or, without it, a CUDA build of
torch (exact search in torch). Shard ``i`` of a collection goes to GPU
``i % n`` of the ``n`` GPUs that backend sees.

Probing never imports torch when the setting is ``cpu``, when torch is not
installed or is a CPU build (read from ``torch/version.py`` without importing
it), or on Linux without an NVIDIA driver.

Collections stored as ``gpu`` that are opened on a machine without a GPU (a
restart on a CPU-only host) run on the CPU with a warning: checkpoints always
hold CPU indexes, so nothing is lost.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass

import faiss

from .errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from .gpu_res import clone_options, gpu_lock, gpu_resources

log = logging.getLogger("vecdb.gpu")
DEVICES = ("auto", "cpu", "gpu")
_MIB = 1 << 20
TORCH_SEARCHES_PER_GPU = 2  # concurrent torch searches per GPU (more wait)
TORCH_SCRATCH_BYTES = 256 * _MIB  # temporaries of one torch search, at most


def check_device(value, field: str = "device") -> str:
    if value not in DEVICES:
        raise InvalidArgument(f"{field} must be one of {', '.join(DEVICES)}, got {value!r}", field)
    return value


# ---------------------------------------------------------------- probing
@dataclass(frozen=True)
class Gpus:
    """What this process can use: GPU counts per backend, and why none when none."""

    faiss: int  # GPUs FAISS sees (0 without GPU support in the installed faiss)
    torch: int  # CUDA devices torch sees (0 without a CUDA build of torch)
    why: str = ""  # why no GPU is usable ("" when one is)

    @property
    def backend(self) -> str | None:
        """"faiss" when FAISS has GPUs, else "torch" when torch CUDA has, else None."""
        return "faiss" if self.faiss else "torch" if self.torch else None

    def count(self, backend: str) -> int:
        return self.faiss if backend == "faiss" else self.torch


def faiss_gpus() -> int:
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except Exception:  # noqa: BLE001 - a broken CUDA runtime means: no GPU
        return 0


_CUDA_LINE = re.compile(r"^cuda\s*(?::[^=\n]*)?=\s*(None|'[^']*'|\"[^\"]*\")", re.M)


def torch_cuda_build() -> tuple[bool, str]:
    """(is torch installed as a CUDA build, reason if not), without importing torch."""
    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda is not None, "torch is a CPU build"
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):  # a broken or hidden install
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return False, "torch is not installed"
    try:
        with open(os.path.join(list(spec.submodule_search_locations)[0], "version.py")) as f:
            m = _CUDA_LINE.search(f.read())
    except OSError:
        m = None
    if m is not None and m.group(1) == "None":
        return False, "torch is a CPU build"
    return True, ""


def _no_nvidia_driver() -> bool:
    return (sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia")
            and not os.path.exists("/dev/dxg"))  # /dev/dxg: WSL2's GPU


def torch_gpus() -> tuple[int, str]:
    """(CUDA devices torch sees, reason when 0). Imports torch only when it can help."""
    ok, why = torch_cuda_build()
    if not ok:
        return 0, why
    if "torch" not in sys.modules and _no_nvidia_driver():
        return 0, "no NVIDIA driver"
    try:
        import torch
        if torch.cuda.is_available():
            return int(torch.cuda.device_count()), ""
        return 0, "torch.cuda.is_available() is False"
    except Exception as exc:  # noqa: BLE001 - a broken torch install means: no GPU
        return 0, f"torch failed to load ({exc.__class__.__name__})"


def probe() -> Gpus:
    nf = faiss_gpus()
    nt, why_t = torch_gpus()
    why = "" if nf or nt else (
        f"faiss: {'no GPU support (faiss-cpu)' if not hasattr(faiss, 'StandardGpuResources') else 'no GPU visible'}; "
        f"torch: {why_t}")
    return Gpus(nf, nt, why)


# ---------------------------------------------------------------- budget
class Budget:
    """GPU memory reserved by shards, per GPU, against ``gpu_memory_budget_mb``.

    A shard reserves what it WILL hold after a write before the write is
    committed (so a refused write changes nothing); decreases always pass.
    ``limit_bytes`` 0 = no limit (usage is still tracked). Thread-safe."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self._lock = threading.Lock()
        self._held: dict[object, tuple[int, int]] = {}  # key -> (gpu, bytes)

    def used(self, gpu: int) -> int:
        with self._lock:
            return sum(b for g, b in self._held.values() if g == gpu)

    def reserve(self, items: dict[object, tuple[int, int]]) -> dict[object, tuple[int, int] | None]:
        """Set every key's reservation at once, or raise ResourceExhausted and set none.
        Returns the previous reservations (pass them to ``restore`` to undo)."""
        with self._lock:
            prev = {k: self._held.get(k) for k in items}
            if self.limit:
                after = dict(self._held)
                after.update(items)
                for gpu in {g for g, _ in items.values()}:
                    total = sum(b for g, b in after.values() if g == gpu)
                    grows = any(g == gpu and b > (prev[k] or (gpu, 0))[1] for k, (g, b) in items.items())
                    if total > self.limit and grows:
                        mine = sum(b for k, (g, b) in items.items() if g == gpu)
                        raise ResourceExhausted(
                            f"GPU memory budget exceeded on cuda:{gpu}: this would keep "
                            f"{total / _MIB:.1f} MiB resident ({mine / _MIB:.1f} MiB for the shards "
                            f"written), over gpu_memory_budget_mb={self.limit // _MIB}; delete points, "
                            "raise the budget, or use device=cpu for some collections",
                            "gpu_memory_budget_mb")
            self._held.update(items)
            return prev

    def restore(self, prev: dict[object, tuple[int, int] | None]) -> None:
        with self._lock:
            for k, v in prev.items():
                if v is None:
                    self._held.pop(k, None)
                else:
                    self._held[k] = v

    def release(self, key: object) -> None:
        with self._lock:
            self._held.pop(key, None)


# ---------------------------------------------------------------- context
class GpuContext:
    """The database's GPU side: settings, the probe (once), the budget, and the factories
    of GPU objects (FAISS resources and their locks are per process: ``vecdb.gpu_res``).
    Tests subclass the factories (``torch_device``, ``faiss_flat``, ``faiss_clone``,
    ``faiss_kmeans_flat``, ``cagra_build``/``cagra_load``) to run every GPU code path on
    CPU stand-ins."""

    def __init__(self, device: str = "auto", budget_mb: int = 0, fp16: bool = False,
                 gpus: Gpus | None = None):
        self.device = check_device(device)
        self.fp16 = fp16
        self.budget = Budget(budget_mb * _MIB)
        self._gpus = gpus
        self._lock = threading.Lock()
        self._slots: dict[int, threading.BoundedSemaphore] = {}
        # temporaries of one torch search: 256 MiB, or 1/32 of a budget below 8 GiB
        self.torch_scratch_bytes = min(TORCH_SCRATCH_BYTES, self.budget.limit // 32 or TORCH_SCRATCH_BYTES)
        self._fallback_logged = False

    @classmethod
    def from_options(cls, options) -> "GpuContext":
        return cls(options.device, options.gpu_memory_budget_mb, options.gpu_fp16)

    @property
    def gpus(self) -> Gpus:
        """The probe result (probed once, on first use; never when device=cpu)."""
        if self._gpus is None:
            with self._lock:
                if self._gpus is None:
                    self._gpus = Gpus(0, 0, "device=cpu") if self.device == "cpu" else probe()
        return self._gpus

    def check_server(self) -> None:
        """At open: device=gpu needs a usable GPU; device=auto logs what it found."""
        if self.device == "cpu":
            return
        g = self.gpus
        if g.backend is None and self.device == "gpu":
            raise FailedPrecondition(f"device=gpu but no usable GPU ({g.why}); set device to auto "
                                     "or cpu, or install a GPU build (docs/gpu.md)", "device")
        if g.backend is None:
            self._log_fallback()
        else:
            log.info("GPUs: %d for FAISS, %d for torch CUDA; GPU collections use %s", g.faiss,
                     g.torch, "FAISS GPU indexes" if g.backend == "faiss" else "torch exact search")

    def _log_fallback(self) -> None:
        if not self._fallback_logged:
            self._fallback_logged = True
            log.info("device=auto: no usable GPU (%s); collections run on the CPU", self.gpus.why)

    def resolve(self, requested: str, strict: bool, name: str = "") -> str:
        """The backend of a collection: "cpu", "faiss" or "torch". ``strict`` (create):
        FailedPrecondition naming ``device`` when a GPU is required and there is none;
        otherwise (reopen) that falls back to the CPU with a warning."""
        check_device(requested)
        if requested == "cpu" or (requested == "auto" and self.device == "cpu"):
            return "cpu"
        if requested == "gpu" and self.device == "cpu":
            why = "the server runs with device=cpu"
        else:
            backend = self.gpus.backend
            if backend is not None:
                return backend
            if requested == "auto" and self.device == "auto":
                self._log_fallback()
                return "cpu"
            why = f"no usable GPU here ({self.gpus.why})"
        if strict:
            raise FailedPrecondition(f"device='gpu' needs a GPU but {why}; use device auto or "
                                     "cpu (docs/gpu.md)", "device")
        log.warning("collection %s has device=gpu but %s; it runs on the CPU", name, why)
        return "cpu"

    def gpu_of(self, backend: str, shard: int) -> int:
        """Shard i goes to GPU i % n of the n GPUs the backend sees."""
        return shard % max(self.gpus.count(backend), 1)

    # ---- factories (overridden by tests with CPU stand-ins) -----------------
    def gpu_lock(self, gpu: int, pool: str = "serve"):
        """The process-wide lock of GPU ``gpu``'s FAISS resources (``vecdb.gpu_res``): every
        FAISS GPU allocation, search and free on that GPU holds it."""
        return gpu_lock(gpu, pool)

    def resources(self, gpu: int, pool: str = "serve"):
        return gpu_resources(gpu, pool)

    def search_slots(self, gpu: int) -> threading.BoundedSemaphore:
        """Bounds the concurrent torch searches on one GPU (each holds up to
        ``torch_scratch_bytes`` of temporaries)."""
        with self._lock:
            return self._slots.setdefault(gpu, threading.BoundedSemaphore(TORCH_SEARCHES_PER_GPU))

    def reserve_scratch(self, gpu: int) -> None:
        """Count the torch search temporaries of GPU ``gpu`` against the budget (once per
        GPU: slots x scratch). ResourceExhausted when they do not fit."""
        self.budget.reserve({("torch-scratch", gpu): (gpu, TORCH_SEARCHES_PER_GPU * self.torch_scratch_bytes)})

    def torch_device(self, gpu: int) -> str:
        return f"cuda:{gpu}"

    def faiss_flat(self, gpu: int, dim: int, metric_type: int):
        """An empty GPU flat index (rows addressed by position). Caller holds gpu_lock(gpu)."""
        cfg = faiss.GpuIndexFlatConfig()
        cfg.device = gpu
        cfg.useFloat16 = self.fp16
        return faiss.GpuIndexFlat(self.resources(gpu), dim, metric_type, cfg)

    def faiss_clone(self, gpu: int, index, kind: str):
        """A GPU copy of a CPU IVF index (ids kept). Caller holds gpu_lock(gpu)."""
        opts = faiss.GpuClonerOptions()
        for name, value in clone_options(kind).items():
            setattr(opts, name, value)
        return faiss.index_cpu_to_gpu(self.resources(gpu), gpu, index, opts)

    def faiss_kmeans_flat(self, gpu: int, dim: int, metric_type: int):
        """The flat index k-means trains and assigns with on GPU ``gpu`` (analytics/kmeans.py),
        on that GPU's ``build`` resources: a long training must not stall searches. Caller
        holds gpu_lock(gpu, "build") while it makes, uses and frees it."""
        cfg = faiss.GpuIndexFlatConfig()
        cfg.device = gpu
        return faiss.GpuIndexFlat(self.resources(gpu, "build"), dim, metric_type, cfg)

    def has_cagra(self) -> bool:
        return hasattr(faiss, "GpuIndexCagra")

    def cagra_build(self, gpu: int, dim: int, metric_type: int, vectors, graph_degree: int):
        """Build a CAGRA graph over ``vectors`` (rows by position) on GPU ``gpu``'s ``build``
        resources, under their own lock (searches on the GPU do not wait), and return it in
        host memory (IndexHNSWCagra, base level only); the GPU copy is freed here."""
        with self.gpu_lock(gpu, "build"):
            cfg = faiss.GpuIndexCagraConfig()
            cfg.device = gpu
            cfg.graph_degree = graph_degree
            cfg.intermediate_graph_degree = 2 * graph_degree
            index = faiss.GpuIndexCagra(self.resources(gpu, "build"), dim, metric_type, cfg)
            try:
                index.train(vectors)
                host = faiss.IndexHNSWCagra(dim, max(graph_degree // 2, 1), metric_type)
                host.base_level_only = True
                index.copyTo(host)
            finally:
                del index  # freed under the build lock
        return host

    def cagra_load(self, gpu: int, host):
        """A CAGRA index on the serving resources from a host graph (a copy, no build).
        Caller holds gpu_lock(gpu)."""
        cfg = faiss.GpuIndexCagraConfig()
        cfg.device = gpu
        index = faiss.GpuIndexCagra(self.resources(gpu), host.d, host.metric_type, cfg)
        index.copyFrom(host)
        return index

    def cagra_params(self, k: int, ef_search: int):
        """Search parameters for a top-``k`` CAGRA search (k = the over-fetched k)."""
        params = faiss.SearchParametersCagra()
        params.itopk_size = max(k, ef_search)
        return params
