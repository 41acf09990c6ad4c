"""Search requests with keywords: keyword (BM25) search alone, or hybrid with a dense
query (no grpc here; the plain search codec is in _codec.py)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _codec
from ._filters import to_proto_filter
from ._proto.vecdb.v1 import points_pb2 as ppb
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError


def pack_sparse(value: Any, field: str) -> bytes:
    """(indices, values) or {"indices", "values"} -> the wire's packed bytes (None -> b"");
    the server checks order, range and values."""
    if value is None:
        return b""
    if isinstance(value, dict):
        value = (value.get("indices"), value.get("values"))
    try:
        idx, vals = value
        idx = np.asarray(idx, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{field} must be (indices, values): integers and numbers",
                                   field=field) from None
    if idx.ndim != 1 or idx.shape != vals.shape:
        raise InvalidArgumentError(f"{field}: indices and values must be two lists of one length",
                                   field=field)
    if len(idx) and (idx.min() < 0 or idx.max() >= 1 << 32):
        raise InvalidArgumentError(f"{field}.indices must be non-negative 32-bit integers",
                                   field=f"{field}.indices")
    return idx.astype("<u4").tobytes() + vals.astype("<f4").tobytes()


def pack_sparse_batch(values: Any) -> list[bytes]:
    """Upsert ``sparse=``: one (indices, values) or None per point -> packed bytes."""
    if values is None:
        return []
    values = list(values)
    return [pack_sparse(v, f"sparse[{i}]") for i, v in enumerate(values)]


def search_request(collection: str, vector: Any, vectors: Any, k: int, *, text: Any, texts: Any,
                   keywords: Any, fusion: str | None, weights: Any, rrf_k: float | None,
                   beyond: bool, explain: bool, sparse: Any = None,
                   keywords_field: str | None = None,
                   **common: Any) -> tuple[ppb.SearchRequest, bool]:
    """_codec.search_request plus the keyword and sparse fields when ``keywords`` (a string:
    one query; a list: one per query) or ``sparse`` ((indices, values): one query; a list:
    one per query) is given. ``beyond``: expression or group_by was asked for.
    ``keywords_field``: the payload field (with a text index) the keywords score."""
    if keywords is None and sparse is None:
        if keywords_field is not None:
            raise InvalidArgumentError("keywords_field goes with keywords", field="keywords_field")
        return _codec.search_request(collection, vector, vectors, k, text=text, texts=texts,
                                     **common)
    if beyond:
        raise InvalidArgumentError("keywords and sparse cannot be combined with expression or "
                                   "group_by", field="keywords" if keywords is not None else "sparse")
    words, single = [], True
    if isinstance(keywords, str):
        words = [keywords]
    elif keywords is not None:
        words, single = list(keywords), False
        if not all(isinstance(w, str) for w in words):
            raise InvalidArgumentError("keywords must be a string or a list of strings",
                                       field="keywords")
    if sparse is not None:
        one = isinstance(sparse, (tuple, dict))
        single = one if keywords is None else single
        packed = [pack_sparse(v, f"sparse[{i}]") for i, v in enumerate([sparse] if one else sparse)]
    if all(v is None for v in (vector, vectors, text, texts)):
        req = ppb.SearchRequest(
            collection=collection, k=k, with_payload=common["with_payload"],
            with_vector=common["with_vectors"], filter=to_proto_filter(common["filter"]),
            params=tpb.SearchParams(nprobe=common["nprobe"], ef_search=common["ef_search"],
                                    exact=common["exact"]))
    else:
        req, single = _codec.search_request(collection, vector, vectors, k, text=text,
                                            texts=texts, **common)
    if keywords is not None:
        req.keywords.CopyFrom(ppb.TextQueries(texts=words))
    if keywords_field is not None:
        if not isinstance(keywords_field, str):
            raise InvalidArgumentError("keywords_field must be a payload field name",
                                       field="keywords_field")
        req.keywords_field = keywords_field
    if sparse is not None:
        req.sparse.CopyFrom(ppb.SparseQueries(vectors=packed))
    req.fusion, req.explain = fusion or "", bool(explain)
    if weights is not None:
        try:
            req.fusion_weights.extend(float(w) for w in weights)
        except (TypeError, ValueError):
            raise InvalidArgumentError("weights must be numbers (dense, keywords)",
                                       field="weights") from None
    if rrf_k is not None:
        if not isinstance(rrf_k, (int, float)) or not math.isfinite(rrf_k):
            raise InvalidArgumentError("rrf_k must be a finite number", field="rrf_k")
        req.rrf_k = float(rrf_k)
    return req, single
