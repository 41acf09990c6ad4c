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
from vecdb import sparse as sparse_vectors
from vecdb.errors import InvalidArgument
from vecdb.validation import MAX_DIM
from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

F32 = np.dtype("<f4")
DEFAULT_K = 10
DEFAULT_SCROLL_LIMIT = 100
DEFAULT_RANGE_LIMIT = 1000


# ---------------------------------------------------------------- vectors
def from_proto_vectors(msg: tpb.Vectors, field: str) -> np.ndarray:
    if msg.count < 0 or msg.dim < 0:
        raise InvalidArgument(f"{field}: count and dim must be >= 0, got count={msg.count} "
                              f"dim={msg.dim}", field)
    if msg.dim > MAX_DIM or (msg.count > 0 and msg.dim == 0):
        # an empty data field would otherwise "match" count=0 x dim=2**40 and numpy
        # would fail to shape it (found by tests/integration/test_fuzz.py)
        raise InvalidArgument(f"{field}: dim must be in 1..{MAX_DIM}, got dim={msg.dim}", field)
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


def _splice_payloads(stored: Sequence[bytes | None]) -> str:
    """The wire's JSON array from the payloads' stored (compact, valid) JSON bytes,
    without decoding them: what to_proto_payloads makes from the decoded dicts."""
    if all(p is None for p in stored):
        return ""
    return (b"[" + b",".join(b"null" if p is None else p for p in stored) + b"]").decode()


def to_proto_texts(texts: Sequence[str | None] | None) -> list[str]:
    if texts is None or all(t is None for t in texts):
        return []
    return ["" if t is None else t for t in texts]


# ---------------------------------------------------------------- point batches
def from_proto_point_batch(msg: tpb.PointBatch, field: str = "points") -> dict[str, Any]:
    """-> keyword arguments of Database.upsert (ids, vectors, payloads, texts, ttl)."""
    no_vectors = not msg.HasField("vectors") or (msg.vectors.count == 0 and msg.vectors.dim == 0
                                                 and not msg.vectors.data)
    return {"ids": list(msg.ids),
            # unset with texts = the collection's encoder embeds the texts; unset with named
            # vectors = the primary is among them (by its vector_name)
            "vectors": None if no_vectors and (msg.texts or msg.named_vectors) else from_proto_vectors(
                msg.vectors, f"{field}.vectors"),
            "payloads": from_proto_payloads(msg.payloads, f"{field}.payloads"),
            "texts": from_proto_texts(msg.texts),
            # 0 = never expires (the engine's None); the engine checks count and range
            "ttl": [t or None for t in msg.ttl_seconds] if msg.ttl_seconds else None,
            "sparse": [sparse_vectors.from_packed(raw, f"sparse[{i}]")
                       for i, raw in enumerate(msg.sparse)] if msg.sparse else None,
            **_named(msg, field)}


def _named(msg: Any, field: str) -> dict[str, Any]:
    """{"named": ...} when the message carries named vectors (convert_named.py), else {}."""
    if not msg.named_vectors:
        return {}
    from . import convert_named
    n = len(msg.ids)
    return {"named": convert_named.from_proto_named(msg.named_vectors, n, field)}


def to_proto_point_batch(points: Sequence[Point], with_vector: bool) -> tpb.PointBatch:
    batch = tpb.PointBatch(ids=[p.id for p in points],
                           payloads=to_proto_payloads([p.payload for p in points]),
                           texts=to_proto_texts([p.text for p in points]))
    if with_vector and points:
        if all(p.vector is not None for p in points):  # else sent as named_vectors ""
            batch.vectors.CopyFrom(to_proto_vectors(np.stack([p.vector for p in points])))
        if any(p.vectors or p.vector is None for p in points):
            from . import convert_named
            batch.named_vectors.extend(convert_named.to_proto_named(points))
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
    for name in ("metric", "shards", "encoder", "device", "quantization", "rescore", "full_text",
                 "sparse_dim", "tenant_field", "on_disk"):
        if msg.HasField(name):
            kwargs[name] = getattr(msg, name)
    if msg.payload_indexes:
        kwargs["payload_indexes"] = dict(msg.payload_indexes)
    if msg.vectors or msg.HasField("vector_name"):
        from . import convert_named
        kwargs.update(vector_name=msg.vector_name,
                      vectors=convert_named.from_proto_fields(msg.vectors))
    return kwargs


def to_proto_collection_config(cfg: CollectionConfig) -> cpb.CollectionConfig:
    return cpb.CollectionConfig(name=cfg.name, dim=cfg.dim, metric=cfg.metric,
                                index=to_proto_index_spec(cfg.index), shards=cfg.shards,
                                encoder=cfg.encoder, device=cfg.device,
                                quantization=cfg.quantization, rescore=cfg.rescore,
                                full_text=cfg.full_text, sparse_dim=cfg.sparse_dim,
                                tenant_field=cfg.tenant_field, vector_name=cfg.vector_name,
                                vectors=_fields(cfg.vectors), on_disk=cfg.on_disk)


def _fields(fields) -> list:
    if not fields:
        return []
    from . import convert_named
    return convert_named.to_proto_fields(fields)


def from_proto_collection_config(msg: cpb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(msg.name, msg.dim, msg.metric, from_proto_index_spec(msg.index),
                            msg.shards, _opt(msg, "encoder"), device=msg.device or "auto",
                            quantization=msg.quantization, rescore=msg.rescore,
                            full_text=msg.full_text, sparse_dim=msg.sparse_dim,
                            tenant_field=msg.tenant_field, vector_name=msg.vector_name,
                            vectors=_config_fields(msg.vectors), on_disk=msg.on_disk)


def _config_fields(msgs) -> tuple:
    if not msgs:
        return ()
    from . import convert_named
    return convert_named.from_proto_config_fields(msgs)


def to_proto_shard_stats(s: ShardStats) -> cpb.ShardStats:
    return cpb.ShardStats(points=s.points, index_state=s.index_state, index_type=s.index_type,
                          applied_seq=s.applied_seq, checkpoint_seq=s.checkpoint_seq,
                          deleted_pending=s.deleted_pending, device=s.device,
                          gpu_memory_bytes=s.gpu_memory_bytes, built_params=s.built_params,
                          gpu_served=s.gpu_served, gpu_fallbacks=s.gpu_fallbacks, gpu_ann=s.gpu_ann,
                          gpu_placement_failures=s.gpu_placement_failures, gpu_error=s.gpu_error,
                          memory_bytes=s.memory_bytes,
                          vector_points={f: v["points"] for f, v in s.vectors.items()})


def to_proto_collection_info(d: CollectionDescription) -> cpb.CollectionInfo:
    return cpb.CollectionInfo(config=to_proto_collection_config(d.config), points=d.points,
                              shards=[to_proto_shard_stats(s) for s in d.shards],
                              index_state=d.index_state, bytes_on_disk=d.bytes_on_disk,
                              aliases=d.aliases,
                              payload_indexes={f: cpb.PayloadIndexInfo(**info)
                                               for f, info in d.payload_indexes.items()},
                              reembed=None if d.reembed is None else cpb.ReembedProgress(**d.reembed),
                              clustering=None if d.clustering is None else
                              apb.ClusterProgress(**d.clustering),
                              gpu_memory_bytes=d.gpu_memory_bytes, memory_bytes=d.memory_bytes,
                              effective_index_params=d.config.index.effective_params(),
                              default_index_params=d.config.index.default_params())


def from_proto_reembed(msg: cpb.ReembedCollectionRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.reembed."""
    return {"collection": msg.collection, "encoder": msg.encoder or None,
            "alias": _opt(msg, "alias"), "target": _opt(msg, "target"),
            "batch_size": _opt(msg, "batch_size", 256)}


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


def from_proto_count(msg: ppb.CountRequest) -> dict[str, Any]:
    return {"collection": msg.collection, "filter": from_proto_filter_field(msg)}


def from_proto_get(msg: ppb.GetRequest) -> dict[str, Any]:
    return {"collection": msg.collection, "ids": list(msg.ids),
            "with_vector": msg.with_vector, "with_payload": _with_payload(msg)}


def to_proto_get(points: Sequence[Point], with_vector: bool) -> ppb.GetResponse:
    return ppb.GetResponse(points=to_proto_point_batch(points, with_vector))


def from_proto_scroll(msg: ppb.ScrollRequest) -> dict[str, Any]:
    return {"collection": msg.collection, "limit": _opt(msg, "limit", DEFAULT_SCROLL_LIMIT),
            "cursor": _opt(msg, "cursor"), "with_vector": msg.with_vector,
            "with_payload": _with_payload(msg), "filter": from_proto_filter_field(msg)}


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
    """-> keyword arguments of Database.search (queries, or texts for the encoder; with
    keywords, the keyword/hybrid arguments too)."""
    which = msg.WhichOneof("query")
    keywords, sparse = msg.HasField("keywords"), msg.HasField("sparse")
    if which is None and not keywords and not sparse:
        raise InvalidArgument("query: set vectors (query vectors) or texts (query texts)",
                              "vectors")
    texts = list(msg.texts.texts) if which == "texts" else None
    args = {"collection": msg.collection,
            "queries": from_proto_vectors(msg.vectors, "vectors") if which == "vectors" else None,
            "texts": texts,
            "k": _opt(msg, "k", DEFAULT_K), "params": from_proto_search_params(msg.params),
            "with_payload": _with_payload(msg), "with_vector": msg.with_vector,
            "filter": from_proto_filter_field(msg)}
    if msg.using:
        args["using"] = msg.using
    if keywords or sparse:
        if sparse:
            args["sparse"] = [sparse_vectors.from_packed(raw, f"sparse[{i}]") or ((), ())
                              for i, raw in enumerate(msg.sparse.vectors)]
        args.update(keywords=list(msg.keywords.texts) if keywords else None, fusion=msg.fusion or None,
                    weights=list(msg.fusion_weights) or None, rrf_k=_opt(msg, "rrf_k"),
                    explain=msg.explain)
    if msg.HasField("keywords_field"):  # without keywords: INVALID_ARGUMENT naming it
        args["keywords_field"] = msg.keywords_field
    return args


def from_proto_range_search(msg: ppb.RangeSearchRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.range_search."""
    return {"collection": msg.collection,
            "queries": from_proto_vectors(msg.vectors, "vectors"),
            "threshold": msg.threshold, "limit": _opt(msg, "limit", DEFAULT_RANGE_LIMIT),
            "params": from_proto_search_params(msg.params),
            "with_payload": _with_payload(msg), "with_vector": msg.with_vector,
            "filter": from_proto_filter_field(msg), **({"using": msg.using} if msg.using else {})}


def _fill_query_result(res: ppb.QueryResult, r: SearchResult) -> None:
    """Sets the fields of ``res`` (filled in place: building a QueryResult and copying it
    into the response costs several times more at a thousand results a call)."""
    res.ids.extend(r.ids)
    res.scores = np.asarray(r.scores, dtype=F32).tobytes()
    if r.payloads_json is not None:
        res.payloads = _splice_payloads(r.payloads_json)
    elif r.payloads is not None:
        res.payloads = to_proto_payloads(r.payloads)
    if r.texts is not None:
        res.texts.extend(to_proto_texts(r.texts))
    if r.plan:
        res.plan = r.plan
    if r.group_keys is not None:  # grouped search: the group of each hit
        res.group_keys = _ENCODER.encode(r.group_keys)
    if r.vectors is not None:  # (hits, dim), also with no hits: (0, dim)
        vecs = np.ascontiguousarray(r.vectors, dtype=F32)
        if vecs.ndim != 2:
            vecs = vecs.reshape(len(r.ids), -1)
        res.vectors.count, res.vectors.dim = vecs.shape
        res.vectors.data = vecs.tobytes()


def to_proto_search(results: Sequence[SearchResult]) -> ppb.SearchResponse:
    resp = ppb.SearchResponse()
    add = resp.results.add
    for r in results:
        _fill_query_result(add(), r)
    return resp


# ---------------------------------------------------------------- filters
def from_proto_filter(msg: tpb.Filter, path: str = "filter", top: bool = True) -> dict[str, Any]:
    """The typed Filter tree -> the engine's plain-dict form (the engine validates it).

    The dict keeps the tree's shape (list positions included), so the engine's
    error paths ("filter.must[1].range.gte") name the same place on the wire.
    An empty top-level Filter is ``{}`` = no filter; a nested one stays a clause.
    """
    out: dict[str, Any] = {}
    for name in ("must", "should", "must_not"):
        items = getattr(msg, name)
        if items or not top:
            out[name] = [_from_proto_item(it, f"{path}.{name}[{i}]") for i, it in enumerate(items)]
    if msg.HasField("min_should"):
        out["min_should"] = msg.min_should
    return out


def from_proto_filter_field(msg: Any) -> dict[str, Any] | None:
    """The request's ``filter`` field as the engine's dict; None when unset."""
    return from_proto_filter(msg.filter) if msg.HasField("filter") else None


def _from_proto_item(item: tpb.FilterItem, path: str) -> dict[str, Any]:
    kind = item.WhichOneof("item")
    if kind == "filter":
        return from_proto_filter(item.filter, path, top=False)
    if kind is None:
        raise InvalidArgument(f"{path} is empty: set a condition or a nested filter", path)
    cond = item.condition
    op = cond.WhichOneof("op")
    out: dict[str, Any] = {"key": cond.key} if cond.key else {}
    if op is None:
        return out  # the engine: "must have exactly one operator"
    value = getattr(cond, op)
    if op == "match":
        value = _oneof_value(value, "kind")
    elif op in ("any", "except"):
        value = [_oneof_value(v, "kind") for v in value.values]
    elif op == "range":
        value = {b: _oneof_value(getattr(value, b), "v") for b in _RANGE_BOUNDS
                 if value.HasField(b)}
    elif op == "has_id":
        return {"has_id": list(value.ids)}
    out[op] = value
    return out


_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")


def _oneof_value(msg: Any, oneof: str) -> Any:
    """A Value's / RangeBound's content; None when unset (the engine then names the field)."""
    kind = msg.WhichOneof(oneof)
    return None if kind is None else getattr(msg, kind)


# ---------------------------------------------------------------- partial updates
def _json_object_or_none(msg: Any, name: str) -> Any:
    if not msg.HasField(name):
        return None
    try:
        return _DECODER.decode(getattr(msg, name))
    except ValueError as exc:
        raise InvalidArgument(f"{name} is not valid JSON: {exc}", name) from None


def _ids_or_filter(msg: Any) -> dict[str, Any]:
    """ids and filter of a selection: empty ids with a filter set means "by filter"."""
    flt = from_proto_filter_field(msg)
    return {"ids": list(msg.ids) if msg.ids or flt is None else None, "filter": flt}


def from_proto_delete(msg: ppb.DeleteRequest) -> dict[str, Any]:
    return {"collection": msg.collection, **_ids_or_filter(msg)}


def from_proto_update_payload(msg: ppb.UpdatePayloadRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.update_payload."""
    return {"collection": msg.collection, **_ids_or_filter(msg),
            "set": _json_object_or_none(msg, "set_json"),
            "overwrite": _json_object_or_none(msg, "overwrite_json"),
            "delete_keys": list(msg.delete_keys) or None}


def from_proto_update_vectors(msg: ppb.UpdateVectorsRequest) -> dict[str, Any]:
    named = msg.named_vectors and not msg.HasField("vectors")
    return {"collection": msg.collection, "ids": list(msg.ids),
            "vectors": None if named else from_proto_vectors(msg.vectors, "vectors"),
            **_named(msg, "")}


def to_proto_snapshot(info) -> cpb.SnapshotInfo:
    return cpb.SnapshotInfo(name=info.name, collection=info.collection, created_at=info.created_at,
                            points=info.points, bytes=info.bytes, path=info.path)
