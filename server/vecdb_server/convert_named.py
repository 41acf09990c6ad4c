"""Named vectors on the wire (docs/named_vectors.md): PointBatch.named_vectors,
CreateCollectionRequest/CollectionConfig.vectors, ShardStats.vector_points."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb.errors import InvalidArgument
from vecdb.types import IndexSpec, Point, VectorField

from . import convert


def from_proto_named(msgs: Sequence[tpb.NamedVectors], n: int, field: str) -> dict[str, Any]:
    """-> {name: (n, dim) array | n entries each a vector or None} (Collection.upsert's
    ``named``). Rows out of range or repeated: INVALID_ARGUMENT naming them."""
    out: dict[str, Any] = {}
    for i, msg in enumerate(msgs):
        where = f"{field + '.' if field else ''}named_vectors[{i}]"
        if msg.name in out:
            raise InvalidArgument(f"{where}.name: field {msg.name!r} is given twice", f"{where}.name")
        vecs = convert.from_proto_vectors(msg.vectors, f"{where}.vectors")
        rows = list(msg.rows)
        if not rows:
            if len(vecs) != n:
                raise InvalidArgument(f"{where}.vectors has {len(vecs)} rows for {n} ids (set rows "
                                      "to give some points only)", f"{where}.vectors")
            out[msg.name] = vecs
            continue
        if len(rows) != len(vecs):
            raise InvalidArgument(f"{where}: {len(rows)} rows but {len(vecs)} vectors",
                                  f"{where}.rows")
        per: list = [None] * n
        for j, r in enumerate(rows):
            if r >= n or per[r] is not None:
                raise InvalidArgument(f"{where}.rows[{j}] = {r} is out of range or repeated "
                                      f"({n} ids)", f"{where}.rows")
            per[r] = vecs[j]
        out[msg.name] = per
    return out


def to_proto_named(points: Sequence[Point]) -> list[tpb.NamedVectors]:
    """The named vectors the points carry, one message per field (rows index the points);
    when some point has no primary vector, the primary too, under the name "" (those that
    have it; PointBatch.vectors is then unset)."""
    fields: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    bare = any(p.vector is None for p in points)
    for i, p in enumerate(points):
        vecs = {**(p.vectors or {}), "": p.vector} if bare and p.vector is not None else p.vectors
        for name, vec in (vecs or {}).items():
            rows, vecs = fields.setdefault(name, ([], []))
            rows.append(i)
            vecs.append(vec)
    return [tpb.NamedVectors(name=name, rows=rows, vectors=convert.to_proto_vectors(np.stack(vecs)))
            for name, (rows, vecs) in sorted(fields.items())]


def from_proto_fields(msgs: Sequence[cpb.VectorField]) -> list[dict[str, Any]]:
    """-> Database.create_collection's ``vectors``."""
    return [{"name": m.name, "dim": m.dim, "metric": m.metric or "cosine",
             "index": m.index.type or "auto", "index_params": dict(m.index.params) or None,
             "encoder": m.encoder if m.HasField("encoder") else None}
            for m in msgs]


def to_proto_fields(fields: Sequence[VectorField]) -> list[cpb.VectorField]:
    return [cpb.VectorField(name=f.name, dim=f.dim, metric=f.metric,
                            index=convert.to_proto_index_spec(f.index), encoder=f.encoder)
            for f in fields]


def from_proto_config_fields(msgs: Sequence[cpb.VectorField]) -> tuple[VectorField, ...]:
    return tuple(VectorField(m.name, m.dim, m.metric, IndexSpec(m.index.type or "auto",
                                                                dict(m.index.params)),
                             m.encoder if m.HasField("encoder") else None)
                 for m in msgs)
