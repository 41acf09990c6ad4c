"""The dashboard's JSON API (``/api/...``): request JSON -> the SDK's request builders ->
one or more in-process RPCs (calls.Caller) -> the SDK's decoders -> plain JSON.

Nothing here checks a key, a role, a scope, a limit or a value range: the RPCs do
(the guard, the servicers, the engine), so the dashboard refuses exactly what the API
refuses, with the same message. What is checked here is only what JSON can get
wrong before a request message exists (a string where an integer belongs), with
errors naming the field. Routes are listed in :data:`ROUTES`; docs/dashboard.md
documents them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import numpy as np
from vecdb_client import _codec, _codec_query
from vecdb_client._proto.vecdb.v1 import cluster_pb2 as clpb
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client.errors import InvalidArgumentError

from . import projection
from .calls import Caller, CallError

DEFAULT_SAMPLE = 2_000
HOVER_CHARS = 160  # text (or payload JSON) shown when hovering a map point
MAP_WAIT_S = 2.0  # a map request waits this long for its projection before answering "running"


@dataclass(frozen=True)
class Req:
    """One HTTP request as the endpoints see it. ``token`` is never stored or logged."""
    token: str | None
    peer: str
    body: dict
    params: dict  # path parameters


# ---------------------------------------------------------------- JSON helpers
def plain(obj: Any) -> Any:
    """SDK values (dataclasses, NamedTuples, numpy) -> JSON-ready values; NaN/inf -> None."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _bad(field: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{field} {problem}", field=field)


def _int(body: dict, name: str, default: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is None or value == "":
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, f"must be an integer, got {value!r}")
    return value


def _str(body: dict, name: str, default: str | None = None, required: bool = False) -> Any:
    value = body.get(name, default)
    if value is None or (required and value == ""):
        if required:
            raise _bad(name, "is required")
        return default
    if not isinstance(value, str):
        raise _bad(name, f"must be a string, got {type(value).__name__}")
    return value


def _filter(body: dict) -> Any:
    """``filter``: a filter object, or its JSON text as typed in a filter box."""
    value = body.get("filter")
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _bad("filter", f"is not valid JSON ({exc.msg} at character {exc.pos})") \
                from None
    return value


def _point(p: Any) -> dict:
    return {"id": p.id, "payload": plain(p.payload), "text": p.text}


def _path(payload: Any, field: str) -> Any:
    """A payload value by dotted path (None where missing); non-scalars as JSON text."""
    value = payload
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)[:HOVER_CHARS]
    return value


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- the endpoints
class Api:
    def __init__(self, caller: Caller, cluster_mode: bool = False):
        self.caller, self.cluster_mode = caller, cluster_mode
        self.maps = projection.MapCache()

    def _call(self, req: Req, rpc: str, request: Any) -> Any:
        return self.caller.call(rpc, request, req.token, req.peer)

    def _describe(self, req: Req, name: str) -> Any:
        return _codec.from_proto_info(self._call(
            req, "CollectionService/DescribeCollection",
            cpb.DescribeCollectionRequest(collection=name)))

    # -- who am I, what can this server do
    def whoami(self, req: Req) -> dict:
        key = self.caller.whoami(req.token)
        return {"auth": key is not None, "key": key.label if key else None,
                "role": key.role if key else "admin",
                "collections": sorted(key.collections) if key and key.collections is not None
                else None,
                "map_methods": projection.methods(), "cluster": self.cluster_mode}

    def status(self, req: Req) -> dict:
        try:
            info = _codec.from_proto_server_info(self._call(
                req, "CollectionService/GetServerInfo", cpb.ServerInfoRequest()))
        except CallError as err:  # the API refuses it to collection-scoped keys
            if err.code != grpc.StatusCode.PERMISSION_DENIED:
                raise
            info = {"version": None, "started_at": None, "uptime_s": None, "ready": None,
                    "info_error": err.message}
        listed = self._call(req, "CollectionService/ListCollections",
                            cpb.ListCollectionsRequest())
        colls, gpu = [], 0
        for cfg in listed.collections:
            try:
                d = self._describe(req, cfg.name)
            except CallError as err:  # dropped meanwhile, or not ready yet
                colls.append({"name": cfg.name, "error": err.message})
                continue
            gpu += d.gpu_memory_bytes
            colls.append({"name": cfg.name, "dim": d.config.dim, "metric": d.config.metric,
                          "index": d.config.index, "encoder": d.config.encoder,
                          "points": d.points, "shards": len(d.shards),
                          "index_state": d.index_state, "bytes_on_disk": d.bytes_on_disk,
                          "memory_bytes": d.memory_bytes})
        out = {**info, "memory": {"rss_bytes": _rss_bytes(), "gpu_bytes": gpu},
               "collections": colls, "points": sum(c.get("points", 0) for c in colls),
               "cluster": None}
        if self.cluster_mode:
            try:
                out["cluster"] = _codec.from_proto_cluster_status(self._call(
                    req, "ClusterService/GetClusterStatus", clpb.ClusterStatusRequest()))
            except CallError as err:  # e.g. a collection-scoped key
                out["cluster"] = {"error": err.message}
        return out

    def collections(self, req: Req) -> dict:
        listed = self._call(req, "CollectionService/ListCollections",
                            cpb.ListCollectionsRequest())
        return {"collections": [plain(_codec.from_proto_config(c)) for c in listed.collections]}

    def collection(self, req: Req) -> dict:
        name = req.params["name"]
        info = self._describe(req, name)
        out = plain(info)
        out.update(memory_bytes=info.memory_bytes, gpu_memory_bytes=info.gpu_memory_bytes)
        try:  # admin only: other roles see why not
            snaps = self._call(req, "CollectionService/ListSnapshots", cpb.ListSnapshotsRequest())
            out["snapshots"] = [plain(_codec.from_proto_snapshot(s)) for s in snaps.snapshots
                                if s.collection == out["config"]["name"]]
        except CallError as err:
            if err.code != grpc.StatusCode.PERMISSION_DENIED:
                raise
            out["snapshots"], out["snapshots_error"] = None, err.message
        return out

    def points(self, req: Req) -> dict:
        name, body = req.params["name"], req.body
        flt = _filter(body)
        page = _codec.from_proto_scroll(self._call(req, "PointService/Scroll", _codec.scroll_request(
            name, _int(body, "limit", 50), _str(body, "cursor"), False, True, flt)))
        count = self._call(req, "PointService/Count", _codec.count_request(name, flt)).count
        return {"points": [_point(p) for p in page.points], "next_cursor": page.next_cursor,
                "count": count}

    def point(self, req: Req) -> dict:
        got = self._call(req, "PointService/Get", _codec.get_request(
            req.params["name"], [req.params["id"]], False, True))
        points = _codec.from_proto_points(got.points)
        if not points:
            raise CallError(grpc.StatusCode.NOT_FOUND, f"no point {req.params['id']!r}", "id")
        return _point(points[0])

    def search(self, req: Req) -> dict:
        """By ``text`` (collections with an encoder) or by a stored point's ``id`` (more
        like this: Recommend, the point itself left out)."""
        name, body = req.params["name"], req.body
        text, pid = _str(body, "text"), _str(body, "id")
        common = dict(nprobe=None, ef_search=_int(body, "ef_search"), exact=False,
                      with_payload=True, with_vectors=False, filter=_filter(body))
        k = _int(body, "k", 10)
        if bool(text) == bool(pid):
            raise _bad("text", "or id: give exactly one (text needs a collection with an "
                       "encoder)")
        if text:
            request, _ = _codec.search_request(name, None, None, k, text=text, **common)
            response = self._call(req, "PointService/Search", request)
        else:
            response = self._call(req, "PointService/Recommend", _codec_query.recommend_request(
                name, [pid], None, "", k, include_examples=False, **common))
        hits = _codec.from_proto_search(response, True)
        return {"hits": [{"id": h.id, "score": plain(h.score), "payload": plain(h.payload),
                          "text": h.text} for h in hits]}

    def map(self, req: Req) -> dict:
        name, body = req.params["name"], req.body
        sample = _int(body, "sample", DEFAULT_SAMPLE)
        method = _str(body, "method", "pca")
        if method not in projection.methods():
            raise _bad("method", f"must be one of {', '.join(projection.methods())} on this "
                       f"server, got {method!r}")
        cap = projection.MAX_SAMPLE[method]
        if not 1 <= sample <= cap:
            raise _bad("sample", f"must be in 1..{cap} for {method}, got {sample}")
        color, flt = _str(body, "color", ""), _filter(body)
        key = self.caller.whoami(req.token)
        if key is not None and key.tenant is not None:  # maps are cached per collection
            raise CallError(grpc.StatusCode.PERMISSION_DENIED, f"{key.label} is limited to one "
                            "tenant and may not map the collection (docs/tenants.md)")
        info = self._describe(req, name)  # checks access on every request, cached or not
        dim = info.config.dim
        if sample * dim * 4 > projection.MAX_SAMPLE_BYTES:
            raise _bad("sample", f"x dim x 4 bytes must be at most "
                       f"{projection.MAX_SAMPLE_BYTES >> 20} MiB: at most "
                       f"{projection.MAX_SAMPLE_BYTES // (dim * 4)} points of dim {dim}, "
                       f"got {sample}")
        version = tuple(s.applied_seq for s in info.shards)
        key = (info.config.name, sample, json.dumps(flt, sort_keys=True), method)
        job = self.maps.start(key, version, body.get("refresh", True) is not False,
                              lambda: self._gather(req, info.config.name, sample, dim, flt),
                              method)
        job.done.wait(MAP_WAIT_S)
        out: dict[str, Any] = {"state": job.state, "job": job.seq, "method": method,
                               "sampled": len(job.ids), "points": info.points,
                               "error": job.error or None}
        if job.state == "done":
            fields = sorted({k for p in job.payloads if isinstance(p, dict) for k in p})
            out.update(ids=job.ids, x=plain(job.coords[:, 0]), y=plain(job.coords[:, 1]),
                       fields=fields, hover=[self._hover(t, p) for t, p in
                                             zip(job.texts, job.payloads)],
                       color=[_path(p, color) for p in job.payloads] if color else None)
        return out

    @staticmethod
    def _hover(text: Any, payload: Any) -> str:
        return (text or json.dumps(payload, sort_keys=True))[:HOVER_CHARS]

    def _gather(self, req: Req, name: str, sample: int, dim: int, flt: Any) -> tuple:
        """The first ``sample`` points (scroll order) with their vectors, page by page
        (the vectors straight into one float32 matrix)."""
        ids, payloads, texts, cursor = [], [], [], None
        matrix = np.empty((sample, dim), np.float32)
        while len(ids) < sample:
            page = _codec.from_proto_scroll(self._call(
                req, "PointService/Scroll",
                _codec.scroll_request(name, min(1000, sample - len(ids)), cursor, True, True,
                                      flt)))
            for p in page.points[:sample - len(ids)]:
                if p.vector is None:  # a point with named vectors only: not projected
                    continue
                matrix[len(ids)] = p.vector
                ids.append(p.id)
                payloads.append(p.payload)
                texts.append(p.text)
            cursor = page.next_cursor
            if cursor is None or not page.points:
                break
        return ids, matrix[:len(ids)], payloads, texts

    # -- admin actions (the RPCs need the admin role)
    def create_collection(self, req: Req) -> dict:
        body = req.body
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise _bad("params", "must be an object of index parameters")
        request = _codec.create_collection_request(
            _str(body, "name", required=True), _int(body, "dim"), _str(body, "metric", "cosine"),
            _str(body, "index", "auto"), _int(body, "shards"), _str(body, "encoder") or None,
            params)
        return plain(_codec.from_proto_info(self._call(
            req, "CollectionService/CreateCollection", request)))

    def drop_collection(self, req: Req) -> dict:
        self._call(req, "CollectionService/DropCollection",
                   cpb.DropCollectionRequest(name=req.params["name"]))
        return {"dropped": req.params["name"]}

    def create_payload_index(self, req: Req) -> dict:
        self._call(req, "CollectionService/CreatePayloadIndex", cpb.CreatePayloadIndexRequest(
            collection=req.params["name"], field=_str(req.body, "field", required=True),
            type=_str(req.body, "type", "keyword")))
        return {"created": _str(req.body, "field")}

    def create_snapshot(self, req: Req) -> dict:
        return plain(_codec.from_proto_snapshot(self._call(
            req, "CollectionService/CreateSnapshot",
            _codec.snapshot_request(req.params["name"], _str(req.body, "name") or None,
                                    False))))

    def restore_snapshot(self, req: Req) -> dict:
        return plain(_codec.from_proto_info(self._call(
            req, "CollectionService/RestoreSnapshot",
            _codec.restore_request(req.params["name"], _str(req.body, "collection") or None))))


# (HTTP method, Falcon URI template, Api method); web.py routes them
ROUTES: list[tuple[str, str, Callable[[Api, Req], dict]]] = [
    ("GET", "/api/whoami", Api.whoami),
    ("GET", "/api/status", Api.status),
    ("GET", "/api/collections", Api.collections),
    ("POST", "/api/collections", Api.create_collection),
    ("GET", "/api/collections/{name}", Api.collection),
    ("DELETE", "/api/collections/{name}", Api.drop_collection),
    ("POST", "/api/collections/{name}/points", Api.points),
    ("GET", "/api/collections/{name}/points/{id}", Api.point),
    ("POST", "/api/collections/{name}/search", Api.search),
    ("POST", "/api/collections/{name}/map", Api.map),
    ("POST", "/api/collections/{name}/payload-indexes", Api.create_payload_index),
    ("POST", "/api/collections/{name}/snapshots", Api.create_snapshot),
    ("POST", "/api/snapshots/{name}/restore", Api.restore_snapshot),
]
