"""Clustering: FAISS k-means over a collection, as a background job.

``Database.cluster`` starts a :class:`ClusterJob`; one thread then

1. gathers the vectors of the points matching the filter (population.py: shard by
   shard, label order; normalized for cosine);
2. trains ``faiss.Kmeans(dim, k, niter=iterations, seed=seed, spherical=<cosine>,
   init_method=<init: k-means++ (default) or random>, gpu=<the collection's device
   resolves to a FAISS GPU>)`` on them, or on a random
   sample of ``sample`` of them (numpy ``default_rng(seed)``, kept in gather order);
   FAISS itself subsamples to ``max_points_per_centroid`` (256) x k points, as
   faiss.Kmeans always does;
3. assigns every gathered point to its nearest centroid (``Kmeans.assign``):
   sizes, inertia (the sum of squared L2 distances of the points to their
   centroid) and the ``typical`` members of each cluster (nearest its centroid);
4. with ``write_label``: writes each point's cluster number into that payload
   field, as ONE atomic WAL-logged batch through the partial payload update path
   (Collection.label_points). The label is computed from the point's vector at
   write time (a point rewritten meanwhile gets its current cluster); points added
   after step 1 are not labelled. Any invalid payload (e.g. over
   max_payload_bytes) fails the job and writes nothing.

Progress and the result live in memory (describe_collection(...).clustering shows
the collection's latest job; ``Database.cluster_job(id)`` the result). A job
interrupted by a restart is lost; run it again.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

import faiss
import numpy as np

from .. import validation
from ..errors import InvalidArgument, NotFound, VecdbError
from ..index import prepare
from . import population

log = logging.getLogger("vecdb")
ASSIGN_BATCH = 65_536
MAX_K = 65_536
MAX_TYPICAL = 100
# init -> FAISS ClusteringInitMethod. k-means++ (D²-weighted seeding) avoids most of the
# poor local minima of random seeding (two centroids in one blob) for O(n k d) more work
# on the (subsampled) training set.
INITS = {"kmeans++": faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS,
         "random": faiss.ClusteringInitMethod_RANDOM}


@dataclass
class ClusterResult:
    centroids: np.ndarray  # (k, dim) float32
    sizes: np.ndarray  # (k,) int64: points assigned to each cluster
    inertia: float  # sum of squared L2 distances of the points to their centroid
    points: int  # points assigned (the population)
    trained_on: int  # points k-means was trained on (``sample`` or all)
    typical: list = field(default_factory=list)  # per cluster: [(id, distance, payload, text)]
    labelled: int = 0  # points whose payload field was written (write_label)


@dataclass(frozen=True)
class ClusterSpec:
    k: int
    filter: dict | None
    sample: int | None
    iterations: int
    write_label: str | None
    seed: int
    typical: int
    init: str = "kmeans++"

    @classmethod
    def check(cls, k, filter, sample, iterations, write_label, seed, typical,
              init="kmeans++") -> "ClusterSpec":
        """Validated arguments (InvalidArgument naming the field); before any work."""
        from .. import filters
        filters.parse(filter)
        if init not in INITS:
            raise InvalidArgument(f"init must be one of {', '.join(INITS)}, got {init!r}", "init")
        return cls(validation.int_in(k, 1, MAX_K, "k"), filter, population.check_sample(sample),
                   validation.int_in(iterations, 1, 1000, "iterations"),
                   None if write_label is None else _label_field(write_label),
                   population.check_seed(seed), validation.int_in(typical, 0, MAX_TYPICAL, "typical"),
                   init)


def _label_field(name: object) -> str:
    """A top-level payload key (a dot would make filters read a nested path, "$text" is
    the point's text): errors name write_label."""
    if not isinstance(name, str) or not name or "." in name or name.startswith("$"):
        raise InvalidArgument(f"write_label must be a top-level payload key (no '.', not "
                              f"starting with '$'), got {name!r}", "write_label")
    try:
        return validation.payload_field(name)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, "write_label") from None


def kmeans(vectors: np.ndarray, spec: ClusterSpec, metric: str, gpu: bool) -> faiss.Kmeans:
    """The trained faiss.Kmeans (what a caller reproduces in-process)."""
    km = faiss.Kmeans(vectors.shape[1], spec.k, niter=spec.iterations, seed=spec.seed,
                      spherical=metric == "cosine", init_method=INITS[spec.init], gpu=gpu)
    km.train(vectors)
    return km


class ClusterJob:
    def __init__(self, db, coll, spec: ClusterSpec):
        self.db, self.coll, self.spec = db, coll, spec
        self.collection = coll.config.name
        self.id = uuid.uuid4().hex[:16]
        self.state, self.phase, self.error = "running", "gathering", ""
        self.done = self.total = 0
        self.started, self.finished = time.time(), 0.0
        self.result: ClusterResult | None = None
        self.failure: VecdbError | None = None  # the error a failed job raised
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.timings: dict[str, float] = {}  # seconds per finished phase (logged at the end)
        self._phase_t0 = time.monotonic()

    def _enter(self, phase: str, total: int) -> None:
        now = time.monotonic()
        self.timings[self.phase] = now - self._phase_t0
        self.phase, self.done, self.total, self._phase_t0 = phase, 0, total, now

    def progress(self) -> dict:
        return {"job_id": self.id, "collection": self.collection, "state": self.state,
                "phase": self.phase, "done": self.done, "total": self.total, "k": self.spec.k,
                "write_label": self.spec.write_label or "", "error": self.error,
                "started": self.started, "finished": self.finished}

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"vecdb-cluster-{self.collection}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state != "running"

    # ---- the job ------------------------------------------------------------------
    def run(self) -> None:
        t0 = time.monotonic()
        try:
            self.result = self._run()
            self._enter("done", 0)
            self.state = "done"
            log.info("clustered %s into %d clusters in %.1fs (%d points, inertia %.6g; %s)",
                     self.collection, self.spec.k, time.monotonic() - t0, self.result.points,
                     self.result.inertia, ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        except _Stopped as exc:
            self.state, self.error = "failed", str(exc)
        except VecdbError as exc:
            self.state, self.error, self.failure = "failed", exc.message, exc
            log.warning("clustering %s failed: %s", self.collection, exc.message)
        except Exception as exc:  # noqa: BLE001 - reported in describe, never kills the server
            self.state, self.error = "failed", f"internal error ({type(exc).__name__})"
            log.exception("clustering %s failed", self.collection)
        finally:
            self.finished = time.time()

    def _check(self) -> None:
        if self._stop.is_set() or self.db._closed:
            raise _Stopped("the database is closing")
        if self.coll.retired:
            raise _Stopped(f"collection {self.collection!r} was dropped")

    def _run(self) -> ClusterResult:
        spec, metric = self.spec, self.coll.config.metric
        population.all_threads()
        pop = population.gather(self.coll, spec.filter)
        n = len(pop)
        train = pop.vectors
        rows = population.sample_rows(n, spec.sample, spec.seed)
        if rows is not None:
            train = pop.vectors[rows]
        if spec.k > len(train):
            raise InvalidArgument(f"k={spec.k} is larger than the {len(train)} points to cluster"
                                  f"{' (the sample)' if rows is not None else ''}", "k")
        self._check()
        self._enter("training", spec.iterations)
        km = kmeans(train, spec, metric, self.uses_gpu())
        del train
        self.done = spec.iterations
        self._check()
        self._enter("assigning", n)
        assign = np.empty(n, np.int64)
        spherical, cnorm = metric == "cosine", (km.centroids ** 2).sum(1)
        sq = np.empty(n, np.float32)
        for i in range(0, n, ASSIGN_BATCH):
            self._check()
            x = pop.vectors[i:i + ASSIGN_BATCH]
            score, lab = km.assign(x)
            assign[i:i + len(x)] = lab
            if spherical:  # IP index: squared L2 = |x|^2 + |c|^2 - 2 x.c
                score = np.einsum("ij,ij->i", x, x) + cnorm[lab] - 2 * score
            sq[i:i + len(x)] = np.maximum(score, 0)
            self.done = i + len(x)
        result = ClusterResult(km.centroids.astype(np.float32), np.bincount(assign, minlength=spec.k),
                               float(sq.sum(dtype=np.float64)), n, n if rows is None else len(rows))
        result.typical = self._typical(pop, assign, sq)
        if spec.write_label:
            self._check()
            self._enter("writing", n)
            result.labelled = self._write_labels(pop, km)
            self.done = n
        return result

    def uses_gpu(self) -> bool:
        """FAISS k-means on the GPU when the collection's shards run on a FAISS GPU."""
        return any(s.gpu is not None and s.gpu.backend == "faiss" for s in self.coll.shards) \
            and faiss.get_num_gpus() > 0

    def _typical(self, pop, assign: np.ndarray, sq: np.ndarray) -> list:
        m = self.spec.typical
        if m == 0:
            return [[] for _ in range(self.spec.k)]
        # group rows by cluster with a stable radix sort (small ints: O(n), unlike a full
        # lexsort by (cluster, distance): 0.4-0.8 s at 1M), then each cluster's m nearest
        small = assign.astype(np.int16 if self.spec.k <= np.iinfo(np.int16).max else np.int32)
        order = np.argsort(small, kind="stable")
        ends = np.cumsum(np.bincount(assign, minlength=self.spec.k)).tolist()
        picks, start = [], 0
        for end in ends:
            seg = order[start:end]
            if len(seg) > m:  # everything up to the m-th smallest distance, ties included
                kth = np.partition(sq[seg], m - 1)[m - 1]
                seg = seg[sq[seg] <= kth]
            picks.append(seg[np.lexsort((seg, sq[seg]))][:m])  # nearest first, then row
            start = end
        flat = np.concatenate(picks) if picks else np.zeros(0, np.int64)
        ids, pays, txts = population.hydrate(self.coll, pop, flat, True)
        out, j = [], 0
        for p in picks:
            out.append([(ids[j + t], float(sq[r]), pays[j + t], txts[j + t])
                        for t, r in enumerate(p.tolist()) if ids[j + t]])
            j += len(p)
        return out

    def _write_labels(self, pop, km) -> int:
        ids, _, _ = population.hydrate(self.coll, pop, np.arange(len(pop)), False)
        ids = [pid for pid in ids if pid]
        field_name = self.spec.write_label

        def payloads(points) -> list[dict]:
            vecs = np.stack([p.vector for p in points]).astype(np.float32)
            _, lab = km.assign(prepare(vecs, self.coll.config.metric))
            return [{**(p.payload or {}), field_name: int(c)} for p, c in zip(points, lab.tolist())]
        if self.coll.retired:
            raise NotFound(f"collection {self.collection!r} was dropped", "collection")
        return self.coll.label_points(ids, payloads).count


class _Stopped(Exception):
    pass


class Jobs:
    """The clustering jobs in memory: the latest KEEP, running ones never evicted."""
    KEEP = 64

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[str, ClusterJob] = {}  # id -> job, oldest first

    def add(self, job: ClusterJob) -> ClusterJob:
        with self._lock:
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state != "running"]:
                if len(self._jobs) <= self.KEEP:
                    break
                del self._jobs[old.id]
        return job

    def get(self, collection: str, job_id: str) -> ClusterJob:
        with self._lock:
            job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or job.collection != collection:
            raise NotFound(f"no clustering job {job_id!r} for collection {collection!r} (jobs "
                           "live in memory: a restart forgets them)", "job_id")
        return job

    def latest(self, collection: str) -> ClusterJob | None:
        with self._lock:
            return next((j for j in reversed(self._jobs.values()) if j.collection == collection), None)

    def stop_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
