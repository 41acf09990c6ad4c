"""The one module that touches both protobuf messages and vecdb types.

from_proto_x: wire -> engine arguments (checks only what the wire format
itself can get wrong: byte lengths, JSON syntax; the engine validates meaning).
to_proto_x: engine results -> wire. Field names in errors use the wire names.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from vecdb import (CollectionConfig, CollectionDescription, IndexSpec, Point, ScrollPage,
                   SearchParams, SearchResult, ShardStats, WriteResult)
from vecdb.errors import InvalidArgument
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

F32 = np.dtype("<f4")
DEFAULT_K = 10
DEFAULT_SCROLL_LIMIT = 100


# ---------------------------------------------------------------- vectors
def from_proto_vectors(msg: tpb.Vectors, field: str) -> np.ndarray:
    if msg.count < 0 or msg.dim < 0:
        raise InvalidArgument(f"{field}: count and dim must be >= 0, got count={msg.count} "
                              f"dim={msg.dim}", field)
    want = msg.count * msg.dim * 4
    if len(msg.data) != want:
        raise InvalidArgument(f"{field}.data has {len(msg.data)} bytes; count={msg.count} x "
                              f"dim={msg.dim} float32 needs {want}", field)
    return np.frombuffer(msg.data, dtype=F32).reshape(msg.count, msg.dim)


def to_proto_vectors(arr: np.ndarray) -> tpb.Vectors:
    arr = np.ascontiguousarray(arr, dtype=F32)
    return tpb.Vectors(count=arr.shape[0], dim=arr.shape[1], data=arr.tobytes())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- payloads / texts
def from_proto_payloads(text: str, field: str) -> list[Any] | None:
    """The batch's JSON array -> one entry per point (the engine checks count and types)."""
    if not text:
        return None
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}", field) from None
    if not isinstance(value, list):
        raise InvalidArgument(f"{field} must be a JSON array with one object (or null) per "
                              f"point, got {type(value).__name__}", field)
    return value


def to_proto_payloads(payloads: Sequence[dict | None] | None) -> str:
    if payloads is None or all(p is None for p in payloads):
        return ""
    return _ENCODER.encode(payloads)


def from_proto_texts(items: Sequence[str]) -> list[str | None] | None:
    return [t or None for t in items] if items else None


def to_proto_texts(texts: Sequence[str | None] | None) -> list[str]:
    if texts is None or all(t is None for t in texts):
        return []
    return ["" if t is None else t for t in texts]


# ---------------------------------------------------------------- point batches
def from_proto_point_batch(msg: tpb.PointBatch, field: str = "points") -> dict[str, Any]:
    """-> keyword arguments of Database.upsert (ids, vectors, payloads, texts)."""
    return {"ids": list(msg.ids),
            "vectors": from_proto_vectors(msg.vectors, f"{field}.vectors"),
            "payloads": from_proto_payloads(msg.payloads, f"{field}.payloads"),
            "texts": from_proto_texts(msg.texts)}


def to_proto_point_batch(points: Sequence[Point], with_vector: bool) -> tpb.PointBatch:
    batch = tpb.PointBatch(ids=[p.id for p in points],
                           payloads=to_proto_payloads([p.payload for p in points]),
                           texts=to_proto_texts([p.text for p in points]))
    if with_vector and points:
        batch.vectors.CopyFrom(to_proto_vectors(np.stack([p.vector for p in points])))
    return batch


def to_proto_write_result(res: WriteResult) -> tpb.WriteResult:
    return tpb.WriteResult(count=res.count, shard_seqs=res.seqs)


def from_proto_write_result(msg: tpb.WriteResult) -> WriteResult:
    return WriteResult(msg.count, dict(msg.shard_seqs))


# ---------------------------------------------------------------- collections
def from_proto_index_spec(msg: tpb.IndexSpec) -> IndexSpec:
    return IndexSpec(msg.type or "auto", dict(msg.params))


def to_proto_index_spec(spec: IndexSpec) -> tpb.IndexSpec:
    return tpb.IndexSpec(type=spec.type, params=spec.params)


def from_proto_create_collection(msg: cpb.CreateCollectionRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.create_collection."""
    kwargs: dict[str, Any] = {"name": msg.name, "dim": msg.dim,
                              "index": msg.index.type or "auto",
                              "index_params": dict(msg.index.params) or None}
    for name in ("metric", "shards", "encoder"):
        if msg.HasField(name):
            kwargs[name] = getattr(msg, name)
    return kwargs


def to_proto_collection_config(cfg: CollectionConfig) -> cpb.CollectionConfig:
    return cpb.CollectionConfig(name=cfg.name, dim=cfg.dim, metric=cfg.metric,
                                index=to_proto_index_spec(cfg.index), shards=cfg.shards,
                                encoder=cfg.encoder)


def from_proto_collection_config(msg: cpb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(msg.name, msg.dim, msg.metric, from_proto_index_spec(msg.index),
                            msg.shards, _opt(msg, "encoder"))


def to_proto_shard_stats(s: ShardStats) -> cpb.ShardStats:
    return cpb.ShardStats(points=s.points, index_state=s.index_state, index_type=s.index_type,
                          applied_seq=s.applied_seq, checkpoint_seq=s.checkpoint_seq,
                          deleted_pending=s.deleted_pending)


def to_proto_collection_info(d: CollectionDescription) -> cpb.CollectionInfo:
    return cpb.CollectionInfo(config=to_proto_collection_config(d.config), points=d.points,
                              shards=[to_proto_shard_stats(s) for s in d.shards],
                              index_state=d.index_state, bytes_on_disk=d.bytes_on_disk,
                              aliases=d.aliases)


def to_proto_aliases(aliases: dict[str, str]) -> cpb.ListAliasesResponse:
    return cpb.ListAliasesResponse(aliases=aliases)


def to_proto_count(count: int) -> ppb.CountResponse:
    return ppb.CountResponse(count=count)


def to_proto_collection_list(configs: Sequence[CollectionConfig]) -> cpb.ListCollectionsResponse:
    return cpb.ListCollectionsResponse(collections=[to_proto_collection_config(c)
                                                    for c in configs])


# ---------------------------------------------------------------- reads
def _opt(msg: Any, name: str, default: Any = None) -> Any:
    """An optional (proto3 ``optional``) field's value, or ``default`` when unset."""
    return getattr(msg, name) if msg.HasField(name) else default


def _with_payload(msg: Any) -> bool:
    return _opt(msg, "with_payload", True)


def from_proto_get(msg: ppb.GetRequest) -> dict[str, Any]:
    return {"collection": msg.collection, "ids": list(msg.ids),
            "with_vector": msg.with_vector, "with_payload": _with_payload(msg)}


def to_proto_get(points: Sequence[Point], with_vector: bool) -> ppb.GetResponse:
    return ppb.GetResponse(points=to_proto_point_batch(points, with_vector))


def from_proto_scroll(msg: ppb.ScrollRequest) -> dict[str, Any]:
    return {"collection": msg.collection, "limit": _opt(msg, "limit", DEFAULT_SCROLL_LIMIT),
            "cursor": _opt(msg, "cursor"),
            "with_vector": msg.with_vector, "with_payload": _with_payload(msg)}


def to_proto_scroll(page: ScrollPage, with_vector: bool) -> ppb.ScrollResponse:
    return ppb.ScrollResponse(points=to_proto_point_batch(page.points, with_vector),
                              next_cursor=page.next_cursor)


# ---------------------------------------------------------------- search
def from_proto_search_params(msg: tpb.SearchParams) -> SearchParams:
    return SearchParams(nprobe=_opt(msg, "nprobe"), ef_search=_opt(msg, "ef_search"),
                        exact=msg.exact)


def to_proto_search_params(p: SearchParams) -> tpb.SearchParams:
    return tpb.SearchParams(nprobe=p.nprobe, ef_search=p.ef_search, exact=p.exact)


def from_proto_search(msg: ppb.SearchRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.search."""
    if msg.WhichOneof("query") != "vectors":
        raise InvalidArgument("query: set vectors (a batch of query vectors)", "vectors")
    return {"collection": msg.collection,
            "queries": from_proto_vectors(msg.vectors, "vectors"),
            "k": _opt(msg, "k", DEFAULT_K), "params": from_proto_search_params(msg.params),
            "with_payload": _with_payload(msg), "with_vector": msg.with_vector}


def to_proto_query_result(r: SearchResult) -> ppb.QueryResult:
    res = ppb.QueryResult(ids=r.ids, scores=np.asarray(r.scores, dtype=F32).tobytes(),
                          payloads=to_proto_payloads(r.payloads), texts=to_proto_texts(r.texts))
    if r.vectors is not None:
        res.vectors.CopyFrom(to_proto_vectors(r.vectors.reshape(len(r.ids), -1)))
    return res


def to_proto_search(results: Sequence[SearchResult]) -> ppb.SearchResponse:
    return ppb.SearchResponse(results=[to_proto_query_result(r) for r in results])
