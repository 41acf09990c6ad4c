"""Split a large upsert into batches that each stay under the message limit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import _codec, _codec_named
from ._codec import check_ids
from ._codec_hybrid import pack_sparse_batch
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import UnavailableError, VecdbClientError, from_rpc_error

# Per-point framing overhead of the PointBatch encoding (tags and lengths), generous.
_OVERHEAD = 16


@dataclass(frozen=True)
class UpsertPlan:
    ids: list[str]
    vectors: np.ndarray
    payloads: list[str]
    texts: list[str]
    bounds: list[tuple[int, int]]  # [start, stop) per batch
    ttl: list[float] = field(default_factory=list)  # per point, 0 = never; [] = none
    sparse: list[bytes] = field(default_factory=list)  # packed per point, b"" = none; [] = none
    named: dict = field(default_factory=dict)  # {field: [vector or None per point]} (_codec_named)

    @property
    def total(self) -> int:
        return len(self.ids)

    def batch(self, i: int) -> tpb.PointBatch:
        a, b = self.bounds[i]
        batch = _codec.point_batch(self.ids[a:b], self.vectors[a:b],
                                   self.payloads[a:b], self.texts[a:b], self.ttl[a:b])
        batch.sparse.extend(self.sparse[a:b])
        if self.named:
            batch.named_vectors.extend(_codec_named.to_proto(self.named, a, b))
        return batch


@dataclass
class StreamProgress:
    """Bookkeeping of one streaming upsert, shared by the sync and async clients:
    which batches the server acknowledged, and whether a failure may be retried
    (UNAVAILABLE only: the stream resumes after the last acknowledged batch)."""

    plan: UpsertPlan
    progress: Callable[[int, int], None] | None
    max_retries: int
    acked: int = 0     # batches acknowledged
    done: int = 0      # points acknowledged
    attempt: int = 0
    seqs: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.acked >= len(self.plan.bounds)

    def requests(self, collection: str, request_type) -> Iterator:
        """The batches not yet acknowledged, encoded lazily (one in memory at a time)."""
        return (request_type(collection=collection, points=self.plan.batch(i), batch_id=i)
                for i in range(self.acked, len(self.plan.bounds)))

    def on_ack(self, ack) -> None:
        self.acked = ack.batch_id + 1
        self.done = self.plan.bounds[ack.batch_id][1]
        self.seqs.update(ack.result.shard_seqs)
        if self.progress:
            self.progress(self.done, self.plan.total)

    def check_complete(self) -> None:
        if not self.finished:
            raise UnavailableError(f"stream ended after {self.acked} of "
                                   f"{len(self.plan.bounds)} batches")

    def on_error(self, exc: Exception) -> VecdbClientError | None:
        """None: retry after backoff(attempt - 1). Otherwise the error to raise, carrying
        ``acknowledged`` = how many leading points are durable."""
        err = from_rpc_error(exc) if not isinstance(exc, VecdbClientError) else exc
        if isinstance(err, UnavailableError) and self.attempt < self.max_retries:
            self.attempt += 1
            return None
        err.acknowledged = self.done
        return err


def plan_upsert(ids: Sequence[str], vectors: Any, payloads: Sequence[Any] | None,
                texts: Sequence[str | None] | None, *, max_bytes: int,
                max_points: int, ttl: Any = None, sparse: Any = None,
                named: Any = None) -> UpsertPlan:
    """Encode everything once, then cut batches of at most max_bytes / max_points.

    When the columns disagree in length the input goes out as ONE batch so the
    server rejects it with a message naming the field (nothing is written).
    A single point larger than max_bytes travels alone (the server may refuse it).
    """
    ids = check_ids(ids)
    arr = _codec.as_matrix(vectors, "vectors")
    enc_payloads = _codec.encode_payloads(payloads)
    enc_texts = _codec.encode_texts(texts)
    n = len(ids)
    enc_ttl = _codec.encode_ttl(ttl, n)
    enc_sparse = pack_sparse_batch(sparse)
    enc_named = _codec_named.encode(named, n)
    consistent = (arr.shape[0] == n and len(enc_payloads) in (0, n)
                  and len(enc_texts) in (0, n) and len(enc_ttl) in (0, n)
                  and len(enc_sparse) in (0, n))
    if not consistent or n == 0:  # one batch holding every column whole
        longest = max(n, arr.shape[0], len(enc_payloads), len(enc_texts), len(enc_ttl),
                      len(enc_sparse))
        return UpsertPlan(ids, arr, enc_payloads, enc_texts, [(0, longest)], enc_ttl, enc_sparse,
                          enc_named)
    sizes = np.full(n, arr.shape[1] * 4 + _OVERHEAD + (8 if enc_ttl else 0), dtype=np.int64)
    sizes += np.fromiter((len(s.encode()) for s in ids), np.int64, n)
    if enc_payloads:
        sizes += np.fromiter((len(s.encode()) for s in enc_payloads), np.int64, n)
    if enc_texts:
        sizes += np.fromiter((len(s.encode()) for s in enc_texts), np.int64, n)
    if enc_sparse:
        sizes += np.fromiter((len(s) + 4 for s in enc_sparse), np.int64, n)
    if enc_named:
        sizes += _codec_named.point_sizes(enc_named, n)
    bounds, start, acc = [], 0, 0
    for i, size in enumerate(sizes.tolist()):
        if i > start and (acc + size > max_bytes or i - start >= max_points):
            bounds.append((start, i))
            start, acc = i, 0
        acc += size
    bounds.append((start, n))
    return UpsertPlan(ids, arr, enc_payloads, enc_texts, bounds, enc_ttl, enc_sparse, enc_named)
