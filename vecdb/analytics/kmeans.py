"""Clustering: FAISS k-means over a collection, as a background job.

``Database.cluster`` starts a :class:`ClusterJob`; one thread then

1. gathers the vectors of the points matching the filter (population.py: shard by
   shard, label order; normalized for cosine);
2. trains ``faiss.Kmeans(dim, k, niter=iterations, seed=seed, spherical=<cosine>,
   init_method=<init: k-means++ (default) or random>, gpu=<the collection's device
   resolves to a FAISS GPU: a GpuIndexFlat on that GPU's "build" resources, made,
   used and freed only under their lock, like every FAISS GPU object>)`` on them,
   or on a random
   sample of ``sample`` of them (numpy ``default_rng(seed)``, kept in gather order);
   FAISS itself subsamples to ``max_points_per_centroid`` (256) x k points, as
   faiss.Kmeans always does;
3. assigns every gathered point to its nearest centroid (``Kmeans.assign``):
   sizes, inertia (the sum of squared L2 distances of the points to their
   centroid) and the ``typical`` members of each cluster (nearest its centroid);
4. with ``write_label``: writes each point's cluster number into that payload
   field through the payload-only update path (Collection.set_payloads: the
   records are rewritten, the vectors and FAISS indexes are not touched), first
   checking every new payload without writing (an invalid one, e.g. over
   max_payload_bytes, fails the job before anything is written), then
   WRITE_CHUNK points per atomic batch, so writers wait for one chunk at most.
   A point keeps its label (and its vector) until it is rewritten, so a point
   still live gets the cluster assigned to it in step 3; a point rewritten
   during the job gets the cluster of its vector at write time; deleted points
   and points added after step 1 are not labelled. Each chunk is atomic and
   durable; a job stopped or failed part-way (the database closing, a disk
   error) leaves the chunks before it written: run it again.

Progress and the result live in memory (describe_collection(...).clustering shows
the collection's latest job; ``Database.cluster_job(id)`` the result). A job
interrupted by a restart is lost; run it again.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

import faiss
import numpy as np

from .. import validation
from ..errors import InvalidArgument, NotFound, ResourceExhausted
from ..index import faiss_metric, prepare
from ..jobs import Job, Stopped
from . import population

log = logging.getLogger("vecdb")
ASSIGN_BATCH = 65_536
WRITE_CHUNK = 4096  # points labelled per write-lock hold
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


def kmeans(vectors: np.ndarray, spec: ClusterSpec, metric: str, index=None) -> faiss.Kmeans:
    """The trained faiss.Kmeans (what a caller reproduces in-process); ``index``: the
    flat index it assigns with (a GPU one), else faiss.Kmeans' own CPU IndexFlat."""
    km = faiss.Kmeans(vectors.shape[1], spec.k, niter=spec.iterations, seed=spec.seed,
                      spherical=metric == "cosine", init_method=INITS[spec.init])
    if index is not None:
        km.index = index
    km.train(vectors)
    return km


class ClusterJob(Job):
    def __init__(self, db, coll, spec: ClusterSpec, give_back=lambda: None):
        super().__init__(db, f"vecdb-cluster-{coll.config.name}")
        self.coll, self.spec = coll, spec
        self.collection = coll.config.name
        self.id = uuid.uuid4().hex[:16]
        self.phase = "gathering"
        self.done = self.total = 0
        self.started, self.finished = time.time(), 0.0
        self.result: ClusterResult | None = None
        self.timings: dict[str, float] = {}  # seconds per finished phase (logged at the end)
        self._phase_t0 = time.monotonic()
        self._give_back = give_back  # the analytics slot (jobs.Slots) this job holds

    def _enter(self, phase: str, total: int) -> None:
        now = time.monotonic()
        self.timings[self.phase] = now - self._phase_t0
        self.phase, self.done, self.total, self._phase_t0 = phase, 0, total, now

    def progress(self) -> dict:
        return {"job_id": self.id, "collection": self.collection, "state": self.state,
                "phase": self.phase, "done": self.done, "total": self.total, "k": self.spec.k,
                "write_label": self.spec.write_label or "", "error": self.error,
                "started": self.started, "finished": self.finished}

    # ---- the job ------------------------------------------------------------------
    def what(self) -> str:
        return f"clustering {self.collection}"

    def finish(self) -> None:
        self.finished = time.time()
        self._give_back()

    def work(self) -> None:
        t0 = time.monotonic()
        self.result = self._run()
        self._enter("done", 0)
        log.info("clustered %s into %d clusters in %.1fs (%d points, inertia %.6g; %s)",
                 self.collection, self.spec.k, time.monotonic() - t0, self.result.points,
                 self.result.inertia, ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))

    def _check(self) -> None:
        self.check_closing()
        if self.coll.retired:
            raise Stopped(f"collection {self.collection!r} was dropped")

    def _run(self) -> ClusterResult:
        spec, metric = self.spec, self.coll.config.metric
        population.all_threads()
        pop = population.gather(self.coll, spec.filter)
        n = len(pop)
        # with write_label: the ids now, to find the points rewritten before the labels are written
        ids = population.hydrate(self.coll, pop, np.arange(n), False)[0] if spec.write_label else None
        train = pop.vectors
        rows = population.sample_rows(n, spec.sample, spec.seed)
        if rows is not None:
            train = pop.vectors[rows]
        if spec.k > len(train):
            raise InvalidArgument(f"k={spec.k} is larger than the {len(train)} points to cluster"
                                  f"{' (the sample)' if rows is not None else ''}", "k")
        self._check()
        self._enter("training", spec.iterations)
        gpu = self.gpu()
        lock = contextlib.nullcontext() if gpu is None else self.db.gpu.gpu_lock(gpu, "build")
        with lock:  # a GPU index is made, used and freed under its resources' lock
            index = None if gpu is None else self.db.gpu.faiss_kmeans_flat(
                gpu, pop.vectors.shape[1], faiss_metric("ip" if metric == "cosine" else "l2"))
            km = kmeans(train, spec, metric, index)
        del train
        self.done = spec.iterations
        try:
            assign, sq = self._assign(pop, km, lock)
        finally:
            with lock:
                km.index = index = None
        result = ClusterResult(km.centroids.astype(np.float32), np.bincount(assign, minlength=spec.k),
                               float(sq.sum(dtype=np.float64)), n, n if rows is None else len(rows))
        result.typical = self._typical(pop, assign, sq)
        if spec.write_label:
            self._check()
            self._enter("writing", n)
            result.labelled = self._write_labels(pop, ids, assign, result.centroids)
            self.done = n
        return result

    def _assign(self, pop, km, lock) -> tuple[np.ndarray, np.ndarray]:
        """Each point's cluster and squared L2 distance to its centroid."""
        self._check()
        n, metric = len(pop), self.coll.config.metric
        self._enter("assigning", n)
        assign = np.empty(n, np.int64)
        spherical, cnorm = metric == "cosine", (km.centroids ** 2).sum(1)
        sq = np.empty(n, np.float32)
        for i in range(0, n, ASSIGN_BATCH):
            self._check()
            x = pop.vectors[i:i + ASSIGN_BATCH]
            with lock:
                score, lab = km.assign(x)
            assign[i:i + len(x)] = lab
            if spherical:  # IP index: squared L2 = |x|^2 + |c|^2 - 2 x.c
                score = np.einsum("ij,ij->i", x, x) + cnorm[lab] - 2 * score
            sq[i:i + len(x)] = np.maximum(score, 0)
            self.done = i + len(x)
        return assign, sq

    def gpu(self) -> int | None:
        """The GPU k-means runs on: that of the first shard on a FAISS GPU (None: the CPU)."""
        return next((s.gpu.gpu for s in self.coll.shards
                     if s.gpu is not None and s.gpu.backend == "faiss"), None)

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

    def _write_labels(self, pop, ids: list[str], assign: np.ndarray, centroids: np.ndarray) -> int:
        """Module doc, step 4: check every new payload, then write them chunk by chunk.
        ``ids``: each gathered point's id, read after the gather ("" if already gone)."""
        name, limit = self.spec.write_label, self.coll.options.max_payload_bytes
        chunks = [(s, rows[i:i + WRITE_CHUNK]) for s in np.unique(pop.shard).tolist()
                  for rows in [np.flatnonzero(pop.shard == s)]
                  for i in range(0, len(rows), WRITE_CHUNK)]
        for s, r in chunks:  # check first: an invalid payload fails the job before any write
            self._check()
            now, pays, _, _ = self.coll.shards[s].hydrate(pop.labels[r], True, False)
            for pid, pay, c in zip(now, pays, assign[r].tolist()):
                if pid:
                    _check_payload(pid, {**(pay or {}), name: c}, limit)
        labelled, gone = 0, {}
        for s, r in chunks:
            self._check()
            of = dict(zip(pop.labels[r].tolist(), assign[r].tolist()))
            written = set(self.coll.set_payloads(s, pop.labels[r], _with_label(name, of)))
            labelled += len(written)
            gone.setdefault(s, []).extend(ids[row] for row, lab in zip(r.tolist(), pop.labels[r].tolist())
                                          if lab not in written and ids[row])
            self.done += len(r)
        return labelled + self._label_rewritten(gone, centroids)

    def _label_rewritten(self, gone: dict[int, list[str]], centroids: np.ndarray) -> int:
        """Points whose label went since the gather: the ones rewritten (a new label, so
        perhaps a new vector) get the cluster of their vector now; deleted ones nothing."""
        metric, labelled = self.coll.config.metric, 0
        kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        for s, ids in gone.items():
            shard = self.coll.shards[s]
            for i in range(0, len(ids), WRITE_CHUNK):
                self._check()
                labs = np.array([lab for lab in shard.labels_of(ids[i:i + WRITE_CHUNK])
                                 if lab is not None], np.int64)
                if len(labs):
                    vecs = prepare(shard.hydrate(labs, False, True)[3], metric)
                    nearest = faiss.knn(vecs, centroids, 1, metric=kind)[1][:, 0]
                    of = dict(zip(labs.tolist(), nearest.tolist()))
                    labelled += len(self.coll.set_payloads(s, labs, _with_label(self.spec.write_label, of)))
        return labelled


def _with_label(name: str, cluster_of: dict[int, int]):
    """Collection.set_payloads' callback: each payload with its point's cluster number."""
    def payloads(labels: list[int], ids: list[str], pays: list) -> list[dict]:
        return [{**(p or {}), name: cluster_of[lab]} for lab, p in zip(labels, pays)]
    return payloads


def _check_payload(pid: str, payload: dict, limit: int) -> None:
    try:
        validation.payloads([payload], 1, limit)
    except (InvalidArgument, ResourceExhausted) as exc:
        raise type(exc)(f"write_label: point {pid!r} cannot take the label ({exc.message}); "
                        "nothing was written", "write_label") from None


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
