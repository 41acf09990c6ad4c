"""Pure functions of the router: split a request's points by shard, merge per-shard
answers (PointBatch, QueryResult) back into one, exactly as a single node would answer.
Shards are chosen by vecdb.topk.shard_of, the hash the engine itself uses."""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb.topk import shard_of

F32 = np.dtype("<f4")


def split_ids(ids: Sequence[str], shards: int) -> dict[int, list[int]]:
    """shard -> positions in ``ids`` (in order)."""
    out: dict[int, list[int]] = {}
    for pos, pid in enumerate(ids):
        out.setdefault(shard_of(pid, shards), []).append(pos)
    return out


def _rows(vectors: tpb.Vectors, rows: list[int]) -> tpb.Vectors:
    if not vectors.data:
        return tpb.Vectors(count=vectors.count, dim=vectors.dim)
    dim = vectors.dim
    mat = np.frombuffer(vectors.data, F32).reshape(-1, dim) if dim > 0 else None
    if mat is None or mat.shape[0] != vectors.count:
        return vectors  # malformed: let the shard's validation name it
    return tpb.Vectors(count=len(rows), dim=dim, data=mat[rows].tobytes())


def _json_list(text: str, n: int) -> list | None:
    """The payloads' JSON list, or None when it is not a list of n (malformed: the
    shard's validation names it, from the text passed on as it is)."""
    try:
        values = json.loads(text)
    except ValueError:
        return None
    return values if isinstance(values, list) and len(values) == n else None


def slice_batch(batch: tpb.PointBatch, rows: list[int]) -> tpb.PointBatch:
    """The rows ``rows`` of an upsert/read batch (ids, vectors, payloads, texts, ttls)."""
    return slice_batches(batch, {0: rows})[0]


def slice_batches(batch: tpb.PointBatch, parts: dict[int, list[int]]
                  ) -> dict[int, tpb.PointBatch]:
    """slice_batch of each part (the payloads are parsed once)."""
    ids = list(batch.ids)
    n = len(ids)
    values = _json_list(batch.payloads, n) if batch.payloads else None
    out = {}
    for i, rows in parts.items():
        part = out[i] = tpb.PointBatch(ids=[ids[j] for j in rows])
        if batch.HasField("vectors"):
            part.vectors.CopyFrom(_rows(batch.vectors, rows))
        part.payloads = batch.payloads if values is None else json.dumps(
            [values[j] for j in rows], ensure_ascii=False, allow_nan=False)
        if len(batch.texts) == n:
            part.texts.extend(batch.texts[j] for j in rows)
        elif batch.texts:
            part.texts.extend(batch.texts)
        if len(batch.ttl_seconds) == n:
            part.ttl_seconds.extend(batch.ttl_seconds[j] for j in rows)
        elif batch.ttl_seconds:
            part.ttl_seconds.extend(batch.ttl_seconds)
    return out


def concat_batches(parts: list[tpb.PointBatch], order: Sequence[str] | None = None
                   ) -> tpb.PointBatch:
    """One batch from several; with ``order``, rows follow those ids (missing ones
    omitted, as Get answers)."""
    rows: list[tuple] = []
    for b in parts:
        n = len(b.ids)
        vecs = (np.frombuffer(b.vectors.data, F32).reshape(n, -1)
                if b.HasField("vectors") and b.vectors.data and n else None)
        pays = json.loads(b.payloads) if b.payloads else [None] * n
        texts = list(b.texts) if len(b.texts) == n else [""] * n
        for i in range(n):
            rows.append((b.ids[i], None if vecs is None else vecs[i], pays[i], texts[i]))
    if order is not None:
        by_id = {r[0]: r for r in rows}
        rows = [by_id[i] for i in order if i in by_id]
    out = tpb.PointBatch(ids=[r[0] for r in rows])
    if any(p.HasField("vectors") for p in parts):
        vec_rows = [r[1] for r in rows if r[1] is not None]
        dim = vec_rows[0].shape[0] if vec_rows else max(
            (p.vectors.dim for p in parts if p.HasField("vectors")), default=0)
        out.vectors.CopyFrom(tpb.Vectors(count=len(vec_rows), dim=dim,
                                         data=np.asarray(vec_rows, F32).tobytes()
                                         if vec_rows else b""))
    if any(p.payloads for p in parts):
        out.payloads = json.dumps([r[2] for r in rows], ensure_ascii=False)
    if any(t for r in rows for t in [r[3]]):
        out.texts.extend(r[3] for r in rows)
    return out


def _hits(per_shard: list[ppb.QueryResult]) -> list[tuple]:
    """(score, shard, row, id, payload, vector, text, group key) of every hit."""
    hits = []
    for s, r in enumerate(per_shard):
        n = len(r.ids)
        scores = np.frombuffer(r.scores, F32) if n else np.zeros(0, F32)
        pays = json.loads(r.payloads) if r.payloads else None
        vecs = (np.frombuffer(r.vectors.data, F32).reshape(n, -1)
                if r.HasField("vectors") and r.vectors.data and n else None)
        keys = json.loads(r.group_keys) if r.group_keys else None
        for i in range(n):
            hits.append((float(scores[i]), s, i, r.ids[i], None if pays is None else pays[i],
                         None if vecs is None else vecs[i], r.texts[i] if r.texts else "",
                         None if keys is None else keys[i]))
    return hits


def _ranked(hits: list[tuple], higher_is_better: bool) -> list[tuple]:
    return sorted(hits, key=lambda h: ((-h[0]) if higher_is_better else h[0], h[1], h[2]))


def _result(hits: list[tuple], per_shard: list[ppb.QueryResult], explain: bool,
            grouped: bool = False) -> ppb.QueryResult:
    out = ppb.QueryResult(ids=[h[3] for h in hits],
                          scores=np.asarray([h[0] for h in hits], F32).tobytes())
    if any(r.payloads for r in per_shard):
        out.payloads = json.dumps([h[4] for h in hits], ensure_ascii=False)
    if any(r.HasField("vectors") for r in per_shard):
        rows = [h[5] for h in hits if h[5] is not None]
        dim = rows[0].shape[0] if rows else 0
        out.vectors.CopyFrom(tpb.Vectors(count=len(rows), dim=dim,
                                         data=np.asarray(rows, F32).tobytes() if rows else b""))
    if any(h[6] for h in hits):
        out.texts.extend(h[6] for h in hits)
    if grouped:
        out.group_keys = json.dumps([h[7] for h in hits], ensure_ascii=False)
    if explain:
        out.plan = "; ".join(f"shard {s}: {r.plan.split(': ', 1)[-1]}"
                             for s, r in enumerate(per_shard) if r.plan)
    return out


def merge_results(per_shard: list[ppb.QueryResult], limit: int, higher_is_better: bool,
                  explain: bool, exclude: frozenset = frozenset()) -> ppb.QueryResult:
    """The best ``limit`` hits over the shards' answers to one query (ties: shard order),
    leaving out the ids in ``exclude``."""
    if len(per_shard) == 1 and not exclude:  # one shard: its answer is the merged one
        out = ppb.QueryResult()
        out.CopyFrom(per_shard[0])
        if out.plan:
            out.plan = f"shard 0: {out.plan.split(': ', 1)[-1]}"
        return out
    hits = [h for h in _ranked(_hits(per_shard), higher_is_better) if h[3] not in exclude]
    return _result(hits[:limit], per_shard, explain)


def group_key(value: object) -> str:
    """A group value as the one key a single node groups by (True, 1 and "1" differ)."""
    return json.dumps(value)


def best_groups(per_shard: list[ppb.QueryResult], groups: int,
                higher_is_better: bool) -> list[object]:
    """The values of the best ``groups`` groups over the shards' grouped answers: groups
    rank by their best hit, and a group's best hit is in its shard's own best groups."""
    seen: dict[str, object] = {}
    for h in _ranked(_hits(per_shard), higher_is_better):
        seen.setdefault(group_key(h[7]), h[7])
    return list(seen.values())[:groups]


def merge_groups(per_shard: list[ppb.QueryResult], chosen: list[object], size: int,
                 higher_is_better: bool, explain: bool) -> ppb.QueryResult:
    """The best ``size`` hits of each chosen group (in that order) over the shards'
    answers restricted to those groups."""
    by_group: dict[str, list[tuple]] = {}
    for h in _ranked(_hits(per_shard), higher_is_better):
        by_group.setdefault(group_key(h[7]), []).append(h)
    hits = [h for v in chosen for h in by_group.get(group_key(v), [])[:size]]
    return _result(hits, per_shard, explain, grouped=True)
