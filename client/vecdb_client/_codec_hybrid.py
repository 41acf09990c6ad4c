"""Search requests with keywords: keyword (BM25) search alone, or hybrid with a dense
query (no grpc here; the plain search codec is in _codec.py)."""
from __future__ import annotations

import math
from typing import Any

from . import _codec
from ._filters import to_proto_filter
from ._proto.vecdb.v1 import points_pb2 as ppb
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError


def search_request(collection: str, vector: Any, vectors: Any, k: int, *, text: Any, texts: Any,
                   keywords: Any, fusion: str | None, weights: Any, rrf_k: float | None,
                   beyond: bool, explain: bool, **common: Any) -> tuple[ppb.SearchRequest, bool]:
    """_codec.search_request plus the keyword fields when ``keywords`` is given (a string:
    one query; a list: one per query). ``beyond``: expression or group_by was asked for."""
    if keywords is None:
        return _codec.search_request(collection, vector, vectors, k, text=text, texts=texts,
                                     **common)
    if beyond:
        raise InvalidArgumentError("keywords cannot be combined with expression or group_by",
                                   field="keywords")
    if isinstance(keywords, str):
        words, single = [keywords], True
    else:
        words, single = list(keywords), False
        if not all(isinstance(w, str) for w in words):
            raise InvalidArgumentError("keywords must be a string or a list of strings",
                                       field="keywords")
    if all(v is None for v in (vector, vectors, text, texts)):
        req = ppb.SearchRequest(
            collection=collection, k=k, with_payload=common["with_payload"],
            with_vector=common["with_vectors"], filter=to_proto_filter(common["filter"]),
            params=tpb.SearchParams(nprobe=common["nprobe"], ef_search=common["ef_search"],
                                    exact=common["exact"]))
    else:
        req, single = _codec.search_request(collection, vector, vectors, k, text=text,
                                            texts=texts, **common)
    req.keywords.CopyFrom(ppb.TextQueries(texts=words))
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
