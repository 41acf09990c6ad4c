"""Sparse vectors (SPLADE- or BM42-style, made by the user's model): one optional sparse
vector per point in a collection created with ``sparse_dim``, searched by exact dot
product.

A sparse vector is (indices, values): indices strictly increasing integers in
[0, sparse_dim), values finite float32, at most MAX_NNZ of them. Stored packed: the
indices as little-endian uint32, then the values as little-endian float32 (8 bytes an
entry). Like the text index, each shard's SparseIndex is derived state in RAM: it
follows every applied op and is rebuilt from RocksDB when the shard opens.
"""
from __future__ import annotations

import threading

import numpy as np

from .errors import InvalidArgument
from .storage import U64

MAX_DIM = 1 << 31
MAX_NNZ = 65_536
_U32, _F32 = np.dtype("<u4"), np.dtype("<f4")


def check_dim(value) -> int:
    """The ``sparse_dim`` collection option: 0 (no sparse vectors) or 1..2^31."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not 0 <= value <= MAX_DIM:
        raise InvalidArgument(f"sparse_dim must be an integer in 0..{MAX_DIM}, got {value!r}",
                              "sparse_dim")
    return int(value)


def pack(value, dim: int, field: str) -> bytes:
    """One sparse vector, (indices, values) or {"indices", "values"}, validated -> bytes."""
    if isinstance(value, dict):
        value = (value.get("indices"), value.get("values"))
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidArgument(f"{field} must be (indices, values)", field)
    try:
        idx = np.asarray(value[0])
        vals = np.asarray(value[1], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field}: indices must be integers and values numbers", field) from None
    if idx.ndim != 1 or vals.ndim != 1 or len(idx) != len(vals):
        raise InvalidArgument(f"{field}: indices and values must be two lists of one length", field)
    if len(idx) > MAX_NNZ:
        raise InvalidArgument(f"{field}: at most {MAX_NNZ} entries, got {len(idx)}", field)
    if len(idx) and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= dim):
        raise InvalidArgument(f"{field}.indices must be integers in 0..{dim - 1}", f"{field}.indices")
    if np.any(np.diff(idx) <= 0):
        raise InvalidArgument(f"{field}.indices must be strictly increasing (sorted, no "
                              "duplicates)", f"{field}.indices")
    if not np.all(np.isfinite(vals)) or np.any(np.abs(vals) > np.finfo(np.float32).max):
        raise InvalidArgument(f"{field}.values must be finite float32 numbers", f"{field}.values")
    return idx.astype(_U32).tobytes() + vals.astype(_F32).tobytes()


def unpack(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = len(raw) // 8
    return (np.frombuffer(raw, _U32, n).astype(np.int64),
            np.frombuffer(raw, _F32, n, offset=4 * n))


def from_packed(raw: bytes, field: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The wire's packed form -> (indices, values); empty = None (no sparse vector)."""
    if not raw:
        return None
    if len(raw) % 8:
        raise InvalidArgument(f"{field} must be packed uint32 indices then float32 values "
                              f"(8 bytes an entry), got {len(raw)} bytes", field)
    return unpack(raw)


def check_batch(values, n: int, dim: int) -> list[bytes | None] | None:
    """Upsert ``sparse``: None, or one (indices, values) or None per point."""
    if values is None:
        return None
    if not dim:
        raise InvalidArgument("sparse: this collection has no sparse vectors (create it with "
                              "sparse_dim)", "sparse")
    if isinstance(values, (str, bytes, dict)) or len(values) != n:
        raise InvalidArgument(f"sparse must give one entry (or None) per point: {n}", "sparse")
    return [None if v is None else pack(v, dim, f"sparse[{i}]") for i, v in enumerate(values)]


def stored(coll, ids: list[str]) -> list[bytes | None]:
    """The stored sparse vectors of these points (a rewrite keeps them)."""
    out: list[bytes | None] = [None] * len(ids)
    for s, rows in coll._route(ids).items():
        shard = coll.shards[s]
        for j, lab in zip(rows, shard.labels_of([ids[j] for j in rows])):
            if lab is not None:
                out[j] = shard.store.get(shard.prefix + b"s" + U64.pack(lab))
    return out


def _dot(raw: bytes, q_idx: np.ndarray, q_vals: np.ndarray) -> float | None:
    """Dot product of a stored vector with a query; None when they share no index."""
    idx, vals = unpack(raw)
    _, a, b = np.intersect1d(idx, q_idx, assume_unique=True, return_indices=True)
    return float(np.dot(vals[a].astype(np.float64), q_vals[b].astype(np.float64))) if len(a) else None


class SparseIndex:
    """The sparse vectors of one shard by label; exact dot-product search over inverted
    lists (every entry sorted by index; a query reads only the lists of its own indices)
    built over a base set of rows, plus the rows added since (scored one by one) and
    the base rows removed since (left out). The lists are rebuilt at a search once the
    changes pass an eighth of the rows (at least 1024). The caller serializes changes
    against searches (the shard's write/read lock)."""

    def __init__(self):
        self.rows: dict[int, bytes] = {}
        self._csr: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._base: set[int] = set()   # the rows the lists hold
        self._fresh: set[int] = set()  # live rows added since
        self._gone: set[int] = set()   # base rows removed since
        self._lock = threading.Lock()  # concurrent searches: one rebuilds

    def apply(self, removed: np.ndarray, added: np.ndarray, sparse: list | None) -> None:
        for lab in np.asarray(removed).tolist():
            if self.rows.pop(lab, None) is not None:
                if lab in self._base:
                    self._gone.add(lab)
                else:
                    self._fresh.discard(lab)
        for lab, raw in zip(np.asarray(added).tolist(), sparse or ()):
            if raw:  # labels are never reused: an added label is new
                self.rows[lab] = raw
                self._fresh.add(lab)

    def rebuild(self, pairs) -> None:
        self.rows = {lab: raw for lab, raw in pairs if raw}
        self._csr = None

    def _lists(self):
        """((row labels, then per entry sorted by index: index, row, value) of the base,
        the rows added since, the base rows removed since), taken together."""
        with self._lock:
            if self._csr is None or \
                    len(self._fresh) + len(self._gone) > max(1024, len(self.rows) // 8):
                self._build()
            return self._csr, list(self._fresh), np.fromiter(self._gone, np.int64, len(self._gone))

    def _build(self) -> None:
        self._base, self._fresh, self._gone = set(self.rows), set(), set()
        labels = np.fromiter(self.rows, np.int64, len(self.rows))
        parts = [unpack(self.rows[lab]) for lab in labels.tolist()]
        counts = np.array([len(i) for i, _ in parts], np.int64)
        idx = np.concatenate([i for i, _ in parts] or [np.zeros(0, np.int64)])
        order = np.argsort(idx, kind="stable")
        self._csr = (labels, idx[order], np.repeat(np.arange(len(labels)), counts)[order],
                     np.concatenate([v for _, v in parts] or [np.zeros(0, np.float32)])[order])

    def search(self, query: bytes, k: int, allowed: np.ndarray | None, exclude: np.ndarray,
               accept=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of the best ``k`` dot products, best first, over the vectors
        sharing an index with ``query``; ``allowed``/``exclude``/``accept`` as in
        TextIndex.search."""
        (labels, idx, row, vals), fresh, gone = self._lists()
        q_idx, q_vals = unpack(query)
        starts, ends = np.searchsorted(idx, q_idx, "left"), np.searchsorted(idx, q_idx, "right")
        pos = np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), ends.tolist())]
                             or [np.zeros(0, np.int64)])
        weight = np.repeat(q_vals.astype(np.float64), ends - starts)
        scores = np.bincount(row[pos], weights=vals[pos].astype(np.float64) * weight,
                             minlength=len(labels))
        rows = np.flatnonzero(np.bincount(row[pos], minlength=len(labels)))
        cand, cand_scores = labels[rows], scores[rows]
        if len(gone):
            keep = ~np.isin(cand, gone)
            cand, cand_scores = cand[keep], cand_scores[keep]
        if fresh:
            extra = [(lab, _dot(self.rows[lab], q_idx, q_vals)) for lab in fresh]
            extra = [(lab, s) for lab, s in extra if s is not None]
            cand = np.concatenate([cand, np.array([lab for lab, _ in extra], np.int64)])
            cand_scores = np.concatenate([cand_scores, np.array([s for _, s in extra], np.float64)])
        keep = np.ones(len(cand), bool)
        if len(exclude):
            keep &= ~np.isin(cand, exclude)
        if allowed is not None:
            keep &= np.isin(cand, allowed)
        cand, cand_scores = cand[keep], cand_scores[keep]
        if accept is None and len(cand) > k:  # only those tying with the k-th or better
            kth = np.partition(cand_scores, len(cand) - k)[len(cand) - k]
            top = cand_scores >= kth
            cand, cand_scores = cand[top], cand_scores[top]
        order = np.lexsort((cand, -cand_scores))
        if accept is None:
            order = order[:k]
            return cand_scores[order].astype(np.float32), cand[order]
        out: list[int] = []
        for lo in range(0, len(order), 4 * k):  # the filter read on the best first
            chunk = order[lo:lo + 4 * k]
            ok = np.isin(cand[chunk], accept(np.sort(cand[chunk])))
            out.extend(chunk[ok].tolist())
            if len(out) >= k:
                break
        sel = np.array(out[:k], np.int64)
        return cand_scores[sel].astype(np.float32), cand[sel]
