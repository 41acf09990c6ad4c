"""FAISS side of a shard: an exact store plus an optional ANN index.

Contract of :class:`ShardIndex`:
- ``exact`` (IndexIDMap2 over IndexFlat) always holds every live vector,
  keyed by int64 label. It answers exact searches and small shards, and is
  the snapshot source for building ANN indexes. Once a full-precision HNSW
  or IVF-Flat index is built, ``exact`` becomes :class:`HnswVectors` /
  :class:`IvfVectors`, a face over the index's own float vectors (one copy
  of the vectors, not two).
- ``ann`` is built in the background once the shard is big enough (see
  ``IndexSpec.build_threshold``); until then searches are exact. While a
  build runs, mutations are recorded and replayed onto the new index before
  it is swapped in, so nothing applied during the build is lost.
- IVF indexes delete with remove_ids; HNSW cannot, so deleted labels become
  tombstones excluded through an IDSelector and the graph is rebuilt
  (compacted) once tombstones pass ``COMPACT_RATIO`` of it.
- Scores: cosine/ip higher is better, l2 squared distance lower is better.
  Cosine vectors are normalized here, on add and on query.
- Not thread-safe on its own: the owning Shard serializes mutations against
  searches with a readers-writer lock. ``build_ann`` runs without the lock
  on a snapshot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import faiss
import numpy as np

from .types import IndexSpec

COMPACT_RATIO = 0.2  # HNSW rebuild when tombstones exceed this share of the graph
RETRAIN_GROWTH = 4  # IVF retrain (auto nlist) once the shard grew this many times


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def higher_is_better(metric: str) -> bool:
    return metric != "l2"


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Normalize for cosine (copy); other metrics pass through."""
    if metric != "cosine":
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def auto_nlist(n: int) -> int:
    return int(min(65536, max(8, 4 * math.sqrt(max(n, 1)))))


def auto_pq_m(dim: int) -> int:
    for m in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1):
        if dim % m == 0 and dim // m <= 16:
            return m
    return next(m for m in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0)


def ann_type(spec: IndexSpec) -> str:
    return "ivf_flat" if spec.type == "auto" else spec.type


@dataclass
class Ann:
    """A built ANN index and what it was built from."""

    kind: str
    index: faiss.Index
    trained_on: int
    tombstones: set[int] = field(default_factory=set)
    quant: str = ""  # the quantization of its codes (vecdb/quant.py); "" = full precision
    _selector: object = None  # cached (IDSelectorNot, IDSelectorBatch) pair

    def selector(self):
        if not self.tombstones:
            return None
        if self._selector is None:
            batch = faiss.IDSelectorBatch(np.fromiter(self.tombstones, dtype=np.int64))
            self._selector = (faiss.IDSelectorNot(batch), batch)
        return self._selector[0]

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        if self.kind == "hnsw":
            self.tombstones.update(int(x) for x in labels)
            self._selector = None
        else:
            self.index.remove_ids(np.ascontiguousarray(labels, dtype=np.int64))

    def needs_rebuild(self, live: int, spec: IndexSpec) -> bool:
        if self.kind == "hnsw":
            return len(self.tombstones) > COMPACT_RATIO * max(self.index.ntotal, 1)
        return spec.param("nlist") == 0 and live > RETRAIN_GROWTH * self.trained_on


def min_build_points(spec: IndexSpec) -> int:
    """Points a shard needs before its ANN index is built (PQ needs 2^nbits to train)."""
    floor = (1 << spec.param("nbits")) if ann_type(spec) == "ivf_pq" else 1
    return max(spec.param("build_threshold"), floor)


def new_exact(dim: int, metric: str) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlat(dim, faiss_metric(metric)))


class AnnVectors:
    """An exact store served from a full-precision ANN index's own vectors (HnswVectors,
    IvfVectors): the calls of the IndexIDMap2 it replaces; writes are no-ops (the shard
    applies every op to the ANN index, which holds the vectors)."""

    def __init__(self, ann: Ann):
        self.ann = ann
        self.d = ann.index.d

    def add_with_ids(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """The ANN index adds them (it holds the vectors)."""

    def remove_ids(self, labels: np.ndarray) -> int:
        """The ANN index removes (IVF) or tombstones (HNSW) them."""
        return 0


class IvfVectors(AnnVectors):
    """The exact store of a full-precision IVF-Flat shard, served from its inverted lists
    (their codes are the float vectors): exact search probes every list (exact for
    IVF-Flat); vectors by label through a hashtable direct map (about 40 bytes a vector
    instead of a second copy of it)."""

    def __init__(self, ann: Ann):
        super().__init__(ann)
        self.ivf = faiss.downcast_index(ann.index)
        if self.ivf.direct_map.type != faiss.DirectMap.Hashtable:
            self.ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # kept by adds/removes

    @property
    def ntotal(self) -> int:
        return int(self.ivf.ntotal)

    def memory_bytes(self) -> int:
        return 40 * self.ntotal  # the direct map (an unordered_map, approximate)

    def _params(self, params):
        sel = getattr(params, "sel", None) if params is not None else None
        nprobe = int(self.ivf.nlist)
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=sel) if sel is not None \
            else faiss.SearchParametersIVF(nprobe=nprobe)

    def search(self, queries: np.ndarray, k: int, params=None):
        return self.ivf.search(queries, k, params=self._params(params))

    def range_search(self, queries: np.ndarray, threshold: float, params=None):
        return self.ivf.range_search(queries, threshold, params=self._params(params))

    def _lists(self):
        """(ids, vectors) of each non-empty inverted list (views, valid under the lock)."""
        return float_lists(self.ivf.invlists, self.d)

    def labels(self) -> np.ndarray:
        parts = [ids.copy() for ids, _ in self._lists()]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """The vectors of live ``labels`` (KeyError for one not stored)."""
        labels = np.asarray(labels, np.int64).ravel()
        if not len(labels):
            return np.zeros((0, self.d), np.float32)
        try:
            return self.ivf.reconstruct_batch(labels)
        except RuntimeError:
            raise KeyError("a label is not stored") from None

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        parts = [(ids.copy(), vecs.copy()) for ids, vecs in self._lists()]
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, self.d), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def float_lists(invlists, d: int):
    """(ids, vectors) views of each non-empty list of IVF-Flat ``invlists`` (valid while
    the lists are unchanged)."""
    for lst in range(invlists.nlist):
        n = invlists.list_size(lst)
        if n:
            ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n)
            vecs = faiss.rev_swig_ptr(invlists.get_codes(lst), n * d * 4).view(np.float32)
            yield ids, vecs.reshape(n, d)


class HnswVectors(AnnVectors):
    """The exact store of a full-precision HNSW shard, served from the graph's own float
    storage (IndexHNSWFlat.storage) instead of a second IndexFlat copy of the vectors.

    Same calls as the IndexIDMap2 it replaces (``ntotal``, ``d``, ``search``,
    ``range_search``, ``reconstruct_batch``, ``add_with_ids``, ``remove_ids``). Writes are
    no-ops: the shard applies every op to the ANN index, which holds the vectors. Storage
    rows are positions in the IndexIDMap's id_map; tombstoned labels (deleted, still in
    the graph) are excluded from every answer. Reads run under the shard's read lock."""

    def __init__(self, ann: Ann):
        super().__init__(ann)
        self.storage = faiss.downcast_index(faiss.downcast_index(ann.index.index).storage)
        self._order: tuple[int, np.ndarray | None, np.ndarray] | None = None  # label -> row

    @property
    def ntotal(self) -> int:
        return int(self.ann.index.ntotal) - len(self.ann.tombstones)

    def _ids(self) -> np.ndarray:
        """Label of every storage row (a view, no copy)."""
        id_map = self.ann.index.id_map
        n = int(id_map.size())
        return faiss.rev_swig_ptr(id_map.data(), n) if n else np.zeros(0, np.int64)

    def labels(self) -> np.ndarray:
        """Every live label, in row order."""
        ids = self._ids()
        if not self.ann.tombstones:
            return ids.copy()
        return ids[~np.isin(ids, np.fromiter(self.ann.tombstones, np.int64))]

    def memory_bytes(self) -> int:
        """The label -> row look-up beside the graph: none while the id_map is ascending
        (it is searched in place), else a sort order and the sorted labels."""
        order = self._order[1] if self._order is not None else None
        return 0 if order is None else order.nbytes + self._order[2].nbytes

    def _params(self, params):
        """SearchParameters over storage rows: the caller's label selector (which already
        excludes tombstones) or the tombstones' exclusion, translated through the id_map."""
        sel = getattr(params, "sel", None) if params is not None else None
        sel = sel if sel is not None else self.ann.selector()
        if sel is None:
            return None, ()
        tr = faiss.IDSelectorTranslated(self.ann.index.id_map, sel)
        return faiss.SearchParameters(sel=tr), (tr, sel)  # keep the selectors alive

    def search(self, queries: np.ndarray, k: int, params=None):
        sp, _keep = self._params(params)
        dist, rows = self.storage.search(queries, k, params=sp)
        return dist, np.where(rows >= 0, self._ids()[np.maximum(rows, 0)], -1)

    def range_search(self, queries: np.ndarray, threshold: float, params=None):
        sp, _keep = self._params(params)
        lims, dist, rows = self.storage.range_search(queries, threshold, params=sp)
        return lims, dist, self._ids()[rows]

    def _ordering(self, ids: np.ndarray) -> tuple[int, np.ndarray | None, np.ndarray]:
        """(rows, sort order or None when ascending, sorted labels) of the id_map. It only
        grows (tombstones stay in it), so of an ascending one only the rows added since the
        last look-up are checked: O(rows written), not O(rows), after each write."""
        done = self._order[0] if self._order is not None and self._order[1] is None else 0
        tail = ids[max(done - 1, 0):] if done <= len(ids) else ids
        if np.all(tail[1:] > tail[:-1]):
            return len(ids), None, ids
        order = np.argsort(ids, kind="stable")
        return len(ids), order, ids[order]

    def _rows_of(self, labels: np.ndarray) -> np.ndarray:
        ids = self._ids()
        if self._order is None or self._order[0] != len(ids):
            self._order = self._ordering(ids)
        _, order, known = self._order
        pos = np.minimum(np.searchsorted(known, labels), max(len(known) - 1, 0))
        found = (known[pos] == labels) if len(known) else np.zeros(len(labels), bool)
        if self.ann.tombstones and found.any():
            found &= ~np.isin(labels, np.fromiter(self.ann.tombstones, np.int64))
        if not found.all():
            raise KeyError(f"label {int(labels[~found][0])} is not stored")
        return pos if order is None else order[pos]

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """The vectors of live ``labels`` (KeyError for one not stored)."""
        labels = np.asarray(labels, np.int64).ravel()
        if not len(labels):
            return np.zeros((0, self.d), np.float32)
        return self.storage.reconstruct_batch(self._rows_of(labels))

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (labels, vectors) of the live rows."""
        ids, n = self._ids(), int(self.storage.ntotal)
        if not n:
            return np.zeros(0, np.int64), np.zeros((0, self.d), np.float32)
        vecs = faiss.rev_swig_ptr(self.storage.get_xb(), n * self.d).reshape(n, self.d)
        if not self.ann.tombstones:
            return ids.copy(), vecs.copy()
        keep = ~np.isin(ids, np.fromiter(self.ann.tombstones, np.int64))
        return ids[keep], vecs[keep]


def exact_from_ann(ann: Ann | None):
    """The exact store served from ``ann``'s own storage when it holds full-precision
    vectors (HNSW-Flat, IVF-Flat), else None (the shard keeps its own IndexFlat)."""
    if ann is None or ann.quant or ann.kind not in ("hnsw", "ivf_flat"):
        return None
    if ann.kind == "ivf_flat":
        return IvfVectors(ann) if isinstance(faiss.downcast_index(ann.index), faiss.IndexIVFFlat) else None
    inner = faiss.downcast_index(ann.index.index)
    return HnswVectors(ann) if isinstance(inner, faiss.IndexHNSWFlat) else None


def snapshot(exact) -> tuple[np.ndarray, np.ndarray]:
    """Copy (labels, vectors) out of an exact store."""
    if isinstance(exact, AnnVectors):
        return exact.snapshot()
    n, d = exact.ntotal, exact.d
    flat = faiss.downcast_index(exact.index)
    vecs = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d).copy() if n else np.zeros((0, d), "float32")
    labels = faiss.vector_to_array(exact.id_map).copy() if n else np.zeros(0, "int64")
    return labels, vecs


def build_ann(spec: IndexSpec, metric: str, labels: np.ndarray, vectors: np.ndarray) -> Ann:
    """Train (if needed) and fill an ANN index from a snapshot. Slow; runs unlocked."""
    kind = ann_type(spec)
    n, dim = vectors.shape
    fm = faiss_metric(metric)
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, spec.param("M"), fm)
        inner.hnsw.efConstruction = spec.param("ef_construction")
        index = faiss.IndexIDMap(inner)
    else:
        nlist = spec.param("nlist") or auto_nlist(n)
        nlist = max(1, min(nlist, n // 4 or 1))
        quantizer = faiss.IndexFlat(dim, fm)
        if kind == "ivf_pq":
            m = spec.param("m") or auto_pq_m(dim)
            nbits = spec.param("nbits")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, fm)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, fm)
        index.own_fields = True
        quantizer.this.disown()
        sample = vectors
        max_train = 256 * nlist if kind == "ivf_flat" else max(256 * nlist, 64 * (1 << spec.param("nbits")))
        if n > max_train:
            rng = np.random.default_rng(12345)
            sample = vectors[rng.choice(n, max_train, replace=False)]
        index.train(sample)
    if n:
        index.add_with_ids(vectors, labels)
    return Ann(kind, index, trained_on=n)


def replay(ann: Ann, exact, live: np.ndarray, ops: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Apply to a freshly built ``ann`` the ops recorded while it was built, as (removed,
    added) labels, in order. Added vectors are read from ``exact`` (the store every write
    reached meanwhile), so a build holds no copy of the vectors written during it; a label
    a later op removed is not in ``live`` (exact's live labels) and is left out, and so is
    its removal (and so is one an on-disk store no longer finds: _add_stored)."""
    if not ops:
        return
    added = np.concatenate([a for _, a in ops])
    keep = np.isin(added, live)
    gone = added[~keep]
    pos = 0
    for removed, add in ops:
        k = keep[pos:pos + len(add)]
        pos += len(add)
        if len(removed) and len(gone):
            removed = removed[~np.isin(removed, gone)]
        if len(removed):
            ann.remove(removed)
        if k.any():
            _add_stored(ann, exact, add[k])


def _add_stored(ann: Ann, exact, labels: np.ndarray) -> None:
    """Add ``labels`` with their vectors from ``exact``. An on-disk store re-reads RocksDB,
    where a remove already committed (applied after the swap) has dropped the vector: such
    a label is left out."""
    found_of = getattr(exact, "reconstruct_found", None)
    if found_of is None:
        ann.add(labels, exact.reconstruct_batch(labels))
        return
    vecs, found = found_of(labels)
    if found.any():
        ann.add(labels[found], vecs[found])


def built_params(ann: Ann) -> dict[str, int]:
    """The parameters a built index really has, read off the FAISS index itself (so a
    loaded checkpoint reports them too): nlist and m as chosen at build time."""
    if ann.kind == "hnsw":
        inner = ann.index.index
        inner = inner.index if isinstance(inner, faiss.IndexBinaryIDMap) else inner  # binary codes
        hnsw = (faiss.downcast_IndexBinary(inner) if isinstance(inner, faiss.IndexBinary)
                else faiss.downcast_index(inner)).hnsw
        return {"M": int(hnsw.nb_neighbors(1)), "ef_construction": int(hnsw.efConstruction)}
    ivf = faiss.extract_index_ivf(ann.index)
    out = {"nlist": int(ivf.nlist)}
    if ann.kind == "ivf_pq":
        pq = faiss.downcast_index(ivf).pq
        out.update(m=int(pq.M), nbits=int(pq.nbits))
    return out


def search_params(ann: Ann, spec: IndexSpec, k: int, nprobe: int | None, ef_search: int | None,
                  sel=None):
    """Fresh SearchParameters per call (IndexIDMap mutates them while searching).

    ``sel``: an IDSelector of allowed labels (a filter); it must not allow
    tombstoned labels. Without it, HNSW tombstones are excluded here."""
    sel = sel if sel is not None else ann.selector()
    if ann.kind == "hnsw":
        ef = max(ef_search or spec.param("ef_search"), k)
        return faiss.SearchParametersHNSW(efSearch=ef, sel=sel) if sel else faiss.SearchParametersHNSW(efSearch=ef)
    nprobe = nprobe or spec.param("nprobe")
    if ann.quant == "rabitq":  # RaBitQ's own parameters (query bits) at their defaults
        p = faiss.IVFRaBitQSearchParameters()
        p.nprobe = nprobe
        if sel is not None:
            p.sel = sel
        return p
    return faiss.SearchParametersIVF(nprobe=nprobe, sel=sel) if sel else faiss.SearchParametersIVF(nprobe=nprobe)


def range_search(exact, ann: Ann | None, spec: IndexSpec, queries: np.ndarray, threshold: float,
                 nprobe: int | None, exact_only: bool, sel=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query (scores, labels) of every vector better than ``threshold``, unsorted: from a
    built full-precision IVF-Flat index unless ``exact_only``, else the exact store. ``sel``:
    an IDSelector of the allowed labels, or None."""
    if ann is not None and ann.kind == "ivf_flat" and not ann.quant and not exact_only:
        sp = search_params(ann, spec, 1, nprobe, None, sel=sel)
        lims, dist, labels = ann.index.range_search(queries, threshold, params=sp)
    else:
        sp = faiss.SearchParameters(sel=sel) if sel is not None else None
        lims, dist, labels = exact.range_search(queries, threshold, params=sp)
    return [(dist[lims[i]:lims[i + 1]], labels[lims[i]:lims[i + 1]]) for i in range(len(queries))]


def rerank(exact: faiss.IndexIDMap2, queries: np.ndarray, labels: np.ndarray, k: int,
           metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-scoring of candidate labels (IVF-PQ refine step), best k kept."""
    q, c = labels.shape
    valid = labels >= 0
    flat_labels = np.where(valid, labels, labels[valid][0] if valid.any() else 0).ravel()
    if not valid.any():
        return np.full((q, k), np.nan, "float32"), np.full((q, k), -1, "int64")
    vecs = exact.reconstruct_batch(flat_labels).reshape(q, c, -1)
    if metric == "l2":
        scores = ((vecs - queries[:, None, :]) ** 2).sum(-1)
        scores[~valid] = np.inf
        order = np.argsort(scores, axis=1)[:, :k]
    else:
        scores = np.einsum("qcd,qd->qc", vecs, queries)
        scores[~valid] = -np.inf
        order = np.argsort(-scores, axis=1)[:, :k]
    out_s = np.take_along_axis(scores, order, 1).astype("float32")
    out_l = np.take_along_axis(labels, order, 1)
    out_l[~np.isfinite(out_s)] = -1
    return out_s, out_l
