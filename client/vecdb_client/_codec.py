"""Python values <-> protobuf messages, client side (no grpc here).

Request builders validate only what cannot be encoded at all (a ragged vector
list, a payload that is not JSON-serializable); everything else (dimension,
id format, lengths, k range...) is checked by the server, whose errors name
the field.
"""
from __future__ import annotations

import dataclasses
import json
import time
from itertools import repeat
from typing import Any, Sequence

import numpy as np

from ._proto.vecdb.v1 import collections_pb2 as cpb
from ._proto.vecdb.v1 import points_pb2 as ppb
from ._proto.vecdb.v1 import types_pb2 as tpb
from . import _codec_named
from ._filters import to_proto_filter
from .analytics import progress_of
from .errors import (DeadlineExceededError, FailedPreconditionError, InvalidArgumentError,
                     NotFoundError)
from .models import (CollectionConfig, CollectionInfo, Hit, PayloadIndexInfo, Point,
                     ReembedProgress, ScrollPage, ShardStats, SnapshotInfo, WriteResult)

_F32 = np.dtype("<f4")
# tuple.__new__(Hit, row) builds a NamedTuple without running its Python-level
# __new__: about 2x cheaper per hit, which matters at thousands of hits per call.
_new = tuple.__new__
_NONES = repeat(None)  # an endless column of None for zip


def check_ids(ids: Sequence[Any], field: str = "ids") -> list[str]:
    ids = list(ids)
    for i, pid in enumerate(ids):
        if not isinstance(pid, str):
            raise InvalidArgumentError(
                f"{field}[{i}] must be a string, got {type(pid).__name__}", field=f"{field}[{i}]")
    return ids


# ---------------------------------------------------------------- vectors
def as_matrix(vectors: Any, field: str) -> np.ndarray:
    """Any array-like of shape (n, dim) -> C-contiguous little-endian float32."""
    try:
        arr = np.asarray(vectors, dtype=_F32)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(
            f"{field} must be a 2-D array of numbers (n, dim): {exc}", field=field) from None
    if arr.ndim != 2:
        if arr.ndim == 1 and arr.size == 0:
            return arr.reshape(0, 0)
        raise InvalidArgumentError(
            f"{field} must be 2-D (n, dim), got shape {arr.shape}", field=field)
    return np.ascontiguousarray(arr)


def to_proto_vectors(arr: np.ndarray) -> tpb.Vectors:
    return tpb.Vectors(count=arr.shape[0], dim=arr.shape[1], data=arr.tobytes())


def from_proto_vectors(msg: tpb.Vectors) -> np.ndarray | None:
    if msg.count == 0 and not msg.data:
        return None if msg.dim == 0 else np.zeros((0, msg.dim), np.float32)
    return np.frombuffer(msg.data, dtype=_F32).reshape(msg.count, msg.dim)


# ---------------------------------------------------------------- payloads / texts
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_payloads(payloads: Sequence[Any] | None) -> list[str]:
    """Each payload as JSON text ("null" for None); joined per batch by payloads_json()."""
    if payloads is None:
        return []
    out = []
    for i, p in enumerate(payloads):
        try:
            out.append(_ENCODER.encode(p))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"payloads[{i}] is not JSON-serializable: {exc}",
                                       field=f"payloads[{i}]") from None
    return out


def payloads_json(encoded: Sequence[str]) -> str:
    """The wire form: one JSON array for the whole batch ("" = no payloads)."""
    return "[" + ",".join(encoded) + "]" if encoded else ""


def decode_payloads(text: str, n: int) -> list[dict | None]:
    return json.loads(text) if text else [None] * n


def encode_texts(texts: Sequence[str | None] | None) -> list[str]:
    if texts is None:
        return []
    return ["" if t is None else t for t in texts]


def decode_texts(texts: Sequence[str], n: int) -> list[str | None]:
    if not texts:
        return [None] * n
    return [t or None for t in texts]


def encode_ttl(ttl: Any, n: int) -> list[float]:
    """Seconds to live -> one wire entry per point (0 = never expires; [] = no TTL at all).

    ``ttl`` is one number for every point or a sequence with one entry per point
    (None = never expires). Only 0 and non-numbers are refused here (0 would read
    as "never" on the wire); the server checks the count and the upper bound.
    """
    if ttl is None:
        return []
    single = not isinstance(ttl, (list, tuple, np.ndarray))
    values = [ttl] * n if single else list(ttl)
    out = []
    for i, v in enumerate(values):
        if v is None and not single:
            out.append(0.0)
            continue
        field = "ttl" if single else f"ttl[{i}]"
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not v > 0:
            raise InvalidArgumentError(f"{field} must be a number of seconds > 0 "
                                       f"(None = never expires), got {v!r}", field=field)
        out.append(float(v))
    return out


def point_batch(ids: Sequence[str], vectors: np.ndarray, payloads: list[str],
                texts: list[str], ttl: Sequence[float] = ()) -> tpb.PointBatch:
    # a (n, 0) matrix = no vectors: the collection's encoder embeds the texts
    return tpb.PointBatch(ids=ids, vectors=to_proto_vectors(vectors) if vectors.shape[1] else None,
                          payloads=payloads_json(payloads), texts=texts, ttl_seconds=ttl)


def upsert_vectors(ids: list[str], vectors: Any) -> Any:
    """``vectors=None`` (texts only) -> an (n, 0) matrix, sent as no vectors at all."""
    return np.zeros((len(ids), 0), _F32) if vectors is None else vectors


def from_proto_points(batch: tpb.PointBatch) -> list[Point]:
    n = len(batch.ids)
    vecs = from_proto_vectors(batch.vectors) if batch.HasField("vectors") else None
    payloads = decode_payloads(batch.payloads, n)
    texts = decode_texts(batch.texts, n)
    named = _codec_named.from_proto(batch)
    if vecs is None and named is not None and any("" in v for v in named):
        vecs = [v.pop("", None) for v in named]  # the primary, when some point lacks it
    rows = zip(batch.ids, repeat(None, n) if vecs is None else vecs, payloads, texts,
               repeat(None, n) if named is None else named)
    return list(map(_new, repeat(Point), rows))


# ---------------------------------------------------------------- collections
def create_collection_request(name: str, dim: int | None, metric: str, index: str,
                              shards: int | None, encoder: str | None,
                              params: dict[str, Any],
                              payload_indexes: dict[str, str] | None = None,
                              device: str | None = None, replication_factor: int | None = None,
                              write_concern: str | None = None, quantization: str | None = None,
                              rescore: int | None = None) -> cpb.CreateCollectionRequest:
    spec = tpb.IndexSpec(type=index)
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidArgumentError(
                f"index parameter {key} must be an integer, got {value!r}", field=key)
        spec.params[key] = int(value)
    req = cpb.CreateCollectionRequest(name=name, dim=0 if dim is None else dim, metric=metric,
                                      index=spec,
                                      encoder=encoder, payload_indexes=payload_indexes)
    if shards is not None:
        req.shards = shards
    if device is not None:
        req.device = device
    if replication_factor is not None:
        req.replication_factor = replication_factor
    if write_concern is not None:
        req.write_concern = write_concern
    if quantization is not None:
        req.quantization = quantization
    if rescore is not None:
        if isinstance(rescore, bool) or not isinstance(rescore, (int, np.integer)):
            raise InvalidArgumentError(f"rescore must be an integer, got {rescore!r}", field="rescore")
        req.rescore = int(rescore)
    return req


def from_proto_config(msg: cpb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(msg.name, msg.dim, msg.metric, msg.index.type,
                            dict(msg.index.params), msg.shards,
                            msg.encoder if msg.HasField("encoder") else None,
                            msg.device or "auto", msg.replication_factor or 1,
                            msg.write_concern, msg.quantization, msg.rescore, msg.full_text,
                            msg.sparse_dim, tenant_field=msg.tenant_field,
                            vector_name=msg.vector_name,
                            vectors=_codec_named.from_proto_fields(msg.vectors),
                            on_disk=msg.on_disk)


def from_proto_info(msg: cpb.CollectionInfo) -> CollectionInfo:
    info = _from_proto_info_fields(msg)
    if msg.HasField("clustering"):
        info = dataclasses.replace(info, clustering=progress_of(msg.clustering))
    return info


def _from_proto_info_fields(msg: cpb.CollectionInfo) -> CollectionInfo:
    shards = tuple(ShardStats(s.points, s.index_state, s.index_type, s.applied_seq,
                              s.checkpoint_seq, s.deleted_pending, s.device or "cpu",
                              s.gpu_memory_bytes, dict(sorted(s.built_params.items())),
                              dict(sorted(s.gpu_served.items())), dict(sorted(s.gpu_fallbacks.items())),
                              s.gpu_ann, s.gpu_placement_failures, s.gpu_error, s.memory_bytes)
                   for s in msg.shards)
    indexes = {f: PayloadIndexInfo(i.type, i.state) for f, i in sorted(msg.payload_indexes.items())}
    r = msg.reembed
    reembed = (ReembedProgress(r.source, r.target, r.encoder, r.alias, r.state, r.done, r.total,
                               r.caught_up, r.error) if msg.HasField("reembed") else None)
    return CollectionInfo(from_proto_config(msg.config), msg.points, shards,
                          msg.index_state, msg.bytes_on_disk, tuple(msg.aliases), indexes,
                          reembed,
                          effective_index_params=dict(sorted(msg.effective_index_params.items())),
                          default_index_params=tuple(msg.default_index_params))


def payload_index_ready(info: CollectionInfo, field: str, deadline: float | None) -> bool:
    """One poll of create_payload_index(wait=True): True once ``field`` is ready;
    raises when the index vanished (dropped meanwhile) or the deadline passed."""
    index = info.payload_indexes.get(field)
    if index is None:
        raise NotFoundError(f"field {field!r} has no payload index (dropped while building?)",
                            field="field")
    if index.state == "ready":
        return True
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceededError(f"payload index on {field!r} still {index.state} after the "
                                    "timeout; it keeps building on the server", field="field")
    return False


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def from_proto_write_result(msg: tpb.WriteResult) -> WriteResult:
    return WriteResult(msg.count, dict(msg.shard_seqs))


# ---------------------------------------------------------------- reads
def get_request(collection: str, ids: Sequence[str], with_vectors: bool,
                with_payload: bool) -> ppb.GetRequest:
    return ppb.GetRequest(collection=collection, ids=list(ids), with_vector=with_vectors,
                          with_payload=with_payload)


def scroll_request(collection: str, limit: int, cursor: str | None, with_vectors: bool,
                   with_payload: bool, filter: Any = None) -> ppb.ScrollRequest:
    return ppb.ScrollRequest(collection=collection, limit=limit, cursor=cursor,
                             with_vector=with_vectors, with_payload=with_payload,
                             filter=to_proto_filter(filter))


def count_request(collection: str, filter: Any) -> ppb.CountRequest:
    return ppb.CountRequest(collection=collection, filter=to_proto_filter(filter))


# ---------------------------------------------------------------- writes by selection
def _selection(ids: Sequence[str] | None, filter: Any) -> dict[str, Any]:
    """Exactly one of ids / filter (on the wire, empty ids + a filter = by filter)."""
    flt = to_proto_filter(filter)
    if (ids is None) == (flt is None):
        raise InvalidArgumentError("give either ids or a non-empty filter, not both or neither",
                                   field="ids" if flt is None else "filter")
    return {"ids": [] if ids is None else check_ids(ids), "filter": flt}


def delete_request(collection: str, ids: Sequence[str] | None,
                   filter: Any) -> ppb.DeleteRequest:
    return ppb.DeleteRequest(collection=collection, **_selection(ids, filter))


def _json_object(value: Any, field: str) -> str | None:
    if value is None:
        return None
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{field} is not JSON-serializable: {exc}",
                                   field=field) from None


def update_payload_request(collection: str, ids: Sequence[str] | None, filter: Any,
                           set: dict | None, overwrite: dict | None,
                           delete_keys: Sequence[str] | None) -> ppb.UpdatePayloadRequest:
    if isinstance(delete_keys, str):
        raise InvalidArgumentError("delete_keys must be a list of key names, not a string",
                                   field="delete_keys")
    return ppb.UpdatePayloadRequest(
        collection=collection, **_selection(ids, filter),
        set_json=_json_object(set, "set"), overwrite_json=_json_object(overwrite, "overwrite"),
        delete_keys=list(delete_keys or ()))


def update_vectors_request(collection: str, ids: Sequence[str], vectors: Any,
                           named: Any = None) -> ppb.UpdateVectorsRequest:
    """``vectors`` None with ``named``: only those named fields change."""
    ids = check_ids(ids)
    req = ppb.UpdateVectorsRequest(collection=collection, ids=ids)
    if vectors is not None or not named:
        req.vectors.CopyFrom(to_proto_vectors(as_matrix(vectors, "vectors")))
    if named:
        req.named_vectors.extend(_codec_named.to_proto(_codec_named.encode(named, len(ids)), 0,
                                                       len(ids)))
    return req


def from_proto_scroll(msg: ppb.ScrollResponse) -> ScrollPage:
    cursor = msg.next_cursor if msg.HasField("next_cursor") else None
    return ScrollPage(from_proto_points(msg.points), cursor)


# ---------------------------------------------------------------- search
def query_vectors(vector: Any, vectors: Any) -> tuple[tpb.Vectors, bool]:
    """vector= (1-D) or vectors= (2-D) -> the wire matrix and whether it was a single query."""
    if (vector is None) == (vectors is None):
        raise InvalidArgumentError("pass exactly one of vector= or vectors=", field="vector")
    single = vector is not None
    if single:
        arr = np.asarray(vector, dtype=_F32) if not isinstance(vector, np.ndarray) else vector
        if arr.ndim != 1:
            raise InvalidArgumentError(
                f"vector must be 1-D, got shape {np.shape(vector)}; use vectors= for a batch",
                field="vector")
        queries = as_matrix(arr.reshape(1, -1), "vector")
    else:
        queries = as_matrix(vectors, "vectors")
    return to_proto_vectors(queries), single


def query_texts(text: Any, texts: Any) -> tuple[ppb.TextQueries, bool]:
    """text= (one string) or texts= (a list) -> the wire message and whether it was single."""
    if (text is None) == (texts is None):
        raise InvalidArgumentError("pass exactly one of text= or texts=", field="text")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}; use "
                                       "texts= for a batch", field="text")
        return ppb.TextQueries(texts=[text]), True
    if isinstance(texts, str):
        raise InvalidArgumentError("texts must be a list of strings; use text= for one query",
                                   field="texts")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidArgumentError(f"texts[{i}] must be a string, got {type(t).__name__}",
                                       field=f"texts[{i}]")
    return ppb.TextQueries(texts=texts), False


def search_request(collection: str, vector: Any, vectors: Any, k: int, *,
                   nprobe: int | None, ef_search: int | None, exact: bool,
                   with_payload: bool, with_vectors: bool,
                   filter: Any = None, text: Any = None,
                   texts: Any = None) -> tuple[ppb.SearchRequest, bool]:
    """Returns the request and whether the caller asked for a single query.
    Exactly one of vector / vectors / text / texts."""
    given = [n for n, v in (("vector", vector), ("vectors", vectors), ("text", text),
                            ("texts", texts)) if v is not None]
    if len(given) != 1:
        raise InvalidArgumentError("pass exactly one of vector=, vectors=, text= or texts=",
                                   field=given[-1] if given else "vector")
    params = tpb.SearchParams(nprobe=nprobe, ef_search=ef_search, exact=exact)
    req = ppb.SearchRequest(collection=collection, k=k, params=params,
                            with_payload=with_payload, with_vector=with_vectors,
                            filter=to_proto_filter(filter))
    if given[0] in ("text", "texts"):
        queries, single = query_texts(text, texts)
        req.texts.CopyFrom(queries)
    else:
        vecs, single = query_vectors(vector, vectors)
        req.vectors.CopyFrom(vecs)
    return req, single


def reembed_request(collection: str, encoder: str, alias: str | None, target: str | None,
                    batch_size: int | None) -> cpb.ReembedCollectionRequest:
    return cpb.ReembedCollectionRequest(collection=collection, encoder=encoder, alias=alias,
                                        target=target, batch_size=batch_size)


def reembed_done(info: CollectionInfo, deadline: float | None) -> bool:
    """One poll of reembed(wait=True): True once done; raises when it failed or timed out."""
    job = info.reembed
    if job is None or job.state == "done":
        return True
    if job.state == "failed":
        raise FailedPreconditionError(f"re-embedding {job.source!r} into {job.target!r} failed: "
                                      f"{job.error}", field="collection")
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceededError(f"re-embedding still running after the timeout "
                                    f"({job.done}/{job.total}); it goes on on the server",
                                    field="collection")
    return False


def range_search_request(collection: str, vector: Any, vectors: Any, threshold: float,
                         limit: int, *, nprobe: int | None, exact: bool, with_payload: bool,
                         with_vectors: bool, filter: Any) -> tuple[ppb.RangeSearchRequest, bool]:
    queries, single = query_vectors(vector, vectors)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise InvalidArgumentError(f"threshold must be a number, got {threshold!r}",
                                   field="threshold")
    req = ppb.RangeSearchRequest(
        collection=collection, vectors=queries, threshold=float(threshold), limit=limit,
        params=tpb.SearchParams(nprobe=nprobe, exact=exact), with_payload=with_payload,
        with_vector=with_vectors, filter=to_proto_filter(filter))
    return req, single


def from_proto_query_result(res: ppb.QueryResult) -> list[Hit]:
    scores = np.frombuffer(res.scores, dtype=_F32).tolist()
    if not (res.payloads or res.texts or res.HasField("vectors")):  # ids and scores only
        return list(map(_new, repeat(Hit), zip(res.ids, scores, _NONES, _NONES, _NONES)))
    n = len(res.ids)
    payloads = decode_payloads(res.payloads, n)
    texts = decode_texts(res.texts, n)
    vecs = from_proto_vectors(res.vectors) if res.HasField("vectors") else None
    rows = zip(res.ids, scores, payloads, repeat(None, n) if vecs is None else vecs, texts)
    return list(map(_new, repeat(Hit), rows))


def from_proto_search(msg: ppb.SearchResponse, single: bool, explain: bool = False) -> Any:
    """Hits (single query) or a list per query; with ``explain``, (that, plan).
    The plan describes the whole call: the engine plans a batch once."""
    results = [from_proto_query_result(r) for r in msg.results]
    hits = results[0] if single else results
    if explain:
        return hits, msg.results[0].plan if msg.results else ""
    return hits


def from_proto_snapshot(msg: cpb.SnapshotInfo) -> SnapshotInfo:
    return SnapshotInfo(msg.name, msg.collection, msg.created_at, msg.points, msg.bytes, msg.path)


def snapshot_request(collection: str, name: str | None, tarball: bool) -> cpb.CreateSnapshotRequest:
    req = cpb.CreateSnapshotRequest(collection=collection, tarball=tarball)
    if name is not None:
        req.name = name
    return req


def restore_request(name: str, collection: str | None) -> cpb.RestoreSnapshotRequest:
    req = cpb.RestoreSnapshotRequest(name=name)
    if collection is not None:
        req.collection = collection
    return req


def from_proto_server_info(msg: cpb.ServerInfo) -> dict:
    return {"version": msg.version, "started_at": msg.started_at, "uptime_s": msg.uptime_s,
            "ready": msg.ready}


def from_proto_reshard(msg) -> dict:
    """ReshardCollectionResponse -> {"done", "shards", "state", "copied"}."""
    return {"done": msg.done, "shards": msg.shards, "state": msg.state, "copied": msg.copied}


def from_proto_cluster_status(msg) -> dict:
    """ClusterStatus -> {"node", "nodes": [...], "shards": [...]} (plain data)."""
    from google.protobuf.json_format import MessageToDict
    d = MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for n in d.get("nodes", []):
        n["replicas"], n["primaries"] = int(n["replicas"]), int(n["primaries"])
    for e in d.get("shards", []):
        e["shard"], e["term"] = int(e["shard"]), int(e["term"])
        for r in e.get("replicas", []):
            r["points"], r["applied_seq"] = int(r["points"]), int(r["applied_seq"])
    for m in d.get("moves", []):
        _move_ints(m)
    return d


def _move_ints(m: dict) -> None:
    for k in ("shard", "copied_bytes", "copied_records", "total_records"):
        m[k] = int(m[k])


def from_proto_rebalance_plan(msg) -> dict:
    """RebalancePlan -> {"rebalancer", "in_progress": [...], "planned": [...]}."""
    from google.protobuf.json_format import MessageToDict
    d = MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for m in d["in_progress"] + d["planned"]:
        _move_ints(m)
    return d
