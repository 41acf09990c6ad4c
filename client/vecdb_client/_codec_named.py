"""Named vectors on the wire for the SDK (docs/named_vectors.md): PointBatch.named_vectors
and the collection's vector fields."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._proto.vecdb.v1 import collections_pb2 as cpb
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError

_F32 = np.dtype("<f4")


def encode(named: Any, n: int) -> dict[str, list]:
    """{field: (n, dim) array | n entries each a vector or None} -> {field: [array|None]*n}.
    Dimensions are the server's to check (it names points[i].vectors.<field>)."""
    if not named:
        return {}
    if not isinstance(named, dict):
        raise InvalidArgumentError("named must be a dict {field: vectors}", field="named")
    out = {}
    for name, values in named.items():
        if isinstance(values, (str, bytes, dict)) or len(values) != n:
            raise InvalidArgumentError(f"named[{name!r}] must have one entry (a vector or None) "
                                       f"per id: {n} ids", field=f"vectors.{name}")
        out[name] = [None if v is None else np.ascontiguousarray(v, dtype=_F32).ravel()
                     for v in values]
    return out


def point_sizes(enc: dict[str, list], n: int) -> np.ndarray:
    """Bytes each point adds to a PointBatch (for batching)."""
    sizes = np.zeros(n, np.int64)
    for values in enc.values():
        sizes += np.fromiter((0 if v is None else 4 * v.size + 4 for v in values), np.int64, n)
    return sizes


def to_proto(enc: dict[str, list], a: int, b: int) -> list[tpb.NamedVectors]:
    """The NamedVectors messages of points a..b-1 (rows relative to a)."""
    out = []
    for name, values in enc.items():
        rows = [i - a for i in range(a, b) if values[i] is not None]
        if not rows:
            continue
        vecs = [values[a + r] for r in rows]
        dims = {v.size for v in vecs}
        dim = dims.pop() if len(dims) == 1 else 0
        if dim == 0:  # ragged: sent as one row per vector of the first's width; server refuses
            raise InvalidArgumentError(f"named[{name!r}]: every vector of a field needs the same "
                                       "dimension", field=f"vectors.{name}")
        out.append(tpb.NamedVectors(name=name, rows=rows, vectors=tpb.Vectors(
            count=len(vecs), dim=dim, data=np.stack(vecs).astype(_F32).tobytes())))
    return out


def from_proto(batch: tpb.PointBatch) -> list[dict[str, np.ndarray]] | None:
    """{field: vector} per point of a read, or None when the batch carries no named vectors."""
    if not batch.named_vectors:
        return None
    out: list[dict] = [{} for _ in batch.ids]
    for msg in batch.named_vectors:
        vecs = np.frombuffer(msg.vectors.data, dtype=_F32).reshape(msg.vectors.count, msg.vectors.dim)
        rows = list(msg.rows) or range(len(batch.ids))
        for j, r in enumerate(rows):
            out[r][msg.name] = vecs[j]
    return out


def fields(vectors: Sequence[dict] | None) -> list[cpb.VectorField]:
    """create_collection(vectors=[{"name", "dim", "metric", "index", "encoder", <index
    params>}]); with an encoder, dim may be left out (the encoder's)."""
    out = []
    for i, f in enumerate(vectors or ()):
        if not isinstance(f, dict) or "name" not in f or ("dim" not in f and "encoder" not in f):
            raise InvalidArgumentError(f"vectors[{i}] must be a dict with name and dim (or an "
                                       "encoder)", field=f"vectors[{i}]")
        params = {k: int(v) for k, v in f.items()
                  if k not in ("name", "dim", "metric", "index", "encoder")}
        out.append(cpb.VectorField(name=f["name"], dim=int(f.get("dim") or 0),
                                   metric=f.get("metric", ""), encoder=f.get("encoder"),
                                   index=tpb.IndexSpec(type=f.get("index", ""), params=params)))
    return out


def from_proto_fields(msgs: Sequence[cpb.VectorField]) -> list[dict]:
    return [{"name": m.name, "dim": m.dim, "metric": m.metric, "index": m.index.type,
             **({"encoder": m.encoder} if m.HasField("encoder") else {}),
             **dict(m.index.params)} for m in msgs]


def create_fields(req: cpb.CreateCollectionRequest, vector_name: str | None,
                  vectors: Sequence[dict] | None) -> None:
    """Set create_collection's named-vector options on the request."""
    if vector_name is not None:
        req.vector_name = vector_name
    req.vectors.extend(fields(vectors))


def using(req: Any, name: str | None, beyond: bool = False) -> Any:
    """Set ``using`` on a search-like request; expression and grouped searches run on the
    primary only."""
    if name:
        if beyond:
            raise InvalidArgumentError("using: expression and grouped search run on the primary "
                                       "vector only", field="using")
        req.using = name
    return req
