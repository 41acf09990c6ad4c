"""Refill an HNSW graph's float storage from the shard's records (lean checkpoints).

A lean checkpoint (vecdb/checkpoint.py) keeps the HNSW links but not the vectors: those
are the RocksDB point records (raw; normalized here for cosine, as on add). Storage row
``r`` holds the vector of label ``ids[r]``. Rows whose record is gone: tombstoned at the
checkpoint (their vectors are in the checkpoint's dead.npy), or deleted after it (the
WAL replay that follows the load tombstones them). The latter only guide the graph walk
(tombstones are never answered), so each takes the vector of a filled level-0 neighbour,
which is close to it by construction; without one, zeros.
"""
from __future__ import annotations

import faiss
import numpy as np

from .index import prepare


def attach_storage(inner, ids: np.ndarray, tombstones: np.ndarray, dead: np.ndarray,
                   vectors, metric: str) -> faiss.IndexIDMap:
    """The IndexIDMap over ``inner`` (an IndexHNSWFlat read without its storage) with
    its storage filled; ``vectors()`` yields (labels, raw float32 vectors) chunks."""
    n, d = int(inner.ntotal), int(inner.d)
    if len(ids) != n:
        raise ValueError(f"ids.npy has {len(ids)} labels for a graph of {n}")
    storage = faiss.IndexFlat(d, inner.metric_type)
    storage.codes.resize(n * d * 4)
    storage.ntotal = n
    rows = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d) if n else np.zeros((0, d), np.float32)
    filled = np.zeros(n, bool)
    order = np.argsort(ids, kind="stable")
    known = ids[order]

    def place(labels: np.ndarray, vecs: np.ndarray) -> None:
        if not len(labels) or not n:
            return
        pos = np.minimum(np.searchsorted(known, labels), n - 1)
        hit = known[pos] == labels
        at = order[pos[hit]]
        rows[at] = vecs[hit]
        filled[at] = True

    for labels, vecs in vectors():
        place(labels, prepare(vecs, metric))
    place(tombstones, dead)  # as stored (already normalized)
    if not filled.all():
        _borrow_neighbours(inner.hnsw, rows, filled)
    inner.storage = storage
    storage.this.disown()
    inner.own_fields = True
    index = faiss.IndexIDMap(faiss.IndexFlat(d, inner.metric_type))  # placeholder: must be empty
    index.index = inner
    inner.this.disown()
    index.own_fields = True
    index.ntotal = n
    faiss.copy_array_to_vector(np.ascontiguousarray(ids, np.int64), index.id_map)
    return index


def _borrow_neighbours(hnsw, rows: np.ndarray, filled: np.ndarray) -> None:
    """Give each unfilled row the vector of a filled level-0 neighbour (repeated while
    that fills more; rows left over stay zeros)."""
    n = len(rows)
    offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), n + 1)
    neighbors = faiss.rev_swig_ptr(hnsw.neighbors.data(), int(offsets[-1]))
    width = int(hnsw.nb_neighbors(0))
    todo = np.flatnonzero(~filled)
    while len(todo):
        nb = neighbors[offsets[todo].astype(np.int64)[:, None] + np.arange(width)]
        ok = (nb >= 0) & filled[np.maximum(nb, 0)]
        has = ok.any(axis=1)
        if not has.any():
            return
        src = nb[has, ok[has].argmax(axis=1)]
        rows[todo[has]] = rows[src]
        filled[todo[has]] = True
        todo = todo[~has]
