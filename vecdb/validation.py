"""Input validation. Everything here runs before anything is written."""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

import numpy as np

from .errors import InvalidArgument, ResourceExhausted
from .types import INDEX_PARAM_DEFAULTS, INDEX_TYPES, METRICS, IndexSpec

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DIM = 16_384
MAX_SHARDS = 64
MAX_K = 10_000
MAX_ID_BYTES = 512


def name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidArgument(
            f"{field} must be 1-64 characters of letters, digits, '_' or '-', got {value!r}", field)
    return value


def int_in(value: Any, lo: int, hi: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{field} must be an integer, got {value!r}", field)
    if not lo <= int(value) <= hi:
        raise InvalidArgument(f"{field} must be in {lo}..{hi}, got {value}", field)
    return int(value)


def metric(value: Any) -> str:
    if value not in METRICS:
        raise InvalidArgument(f"metric must be one of {', '.join(METRICS)}, got {value!r}", "metric")
    return value


def index_spec(kind: Any, params: dict | None) -> IndexSpec:
    if kind not in INDEX_TYPES:
        raise InvalidArgument(f"index must be one of {', '.join(INDEX_TYPES)}, got {kind!r}", "index")
    params = dict(params or {})
    allowed = INDEX_PARAM_DEFAULTS[kind]
    for key, val in params.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidArgument(
                f"unknown index parameter {key!r} for index {kind} (known: {known})", f"index_params.{key}")
        lo = 0 if key in ("nlist", "m", "build_threshold") else 1
        params[key] = int_in(val, lo, 1 << 20, f"index_params.{key}")
    if kind == "ivf_pq" and params.get("nbits", 8) > 16:
        raise InvalidArgument("index_params.nbits must be <= 16", "index_params.nbits")
    return IndexSpec(kind, params)


def ids(values: Any, field: str = "ids", unique: bool = True) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidArgument(f"{field} must be a list of strings", field)
    out = list(values)
    for i, pid in enumerate(out):
        if not isinstance(pid, str):
            raise InvalidArgument(f"{field}[{i}] must be a string, got {type(pid).__name__}", field)
        n = len(pid.encode("utf-8", "surrogatepass"))
        if n == 0:
            raise InvalidArgument(f"{field}[{i}] is empty; ids must be 1-{MAX_ID_BYTES} bytes", field)
        if n > MAX_ID_BYTES:
            raise InvalidArgument(f"{field}[{i}] is {n} bytes; ids must be at most {MAX_ID_BYTES} bytes", field)
        try:
            pid.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"{field}[{i}] is not valid UTF-8", field) from None
    if unique and len(set(out)) != len(out):
        seen: set[str] = set()
        dup = next(p for p in out if p in seen or seen.add(p))  # type: ignore[func-returns-value]
        raise InvalidArgument(f"{field} contains duplicate id {dup!r} within one batch", field)
    return out


def vectors(values: Any, dim: int, n: int | None, field: str = "vectors") -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field} must be numeric arrays of dimension {dim}", field) from None
    if arr.ndim == 1 and arr.size == dim and n in (None, 1):
        arr = arr.reshape(1, dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        got = arr.shape[-1] if arr.ndim >= 1 and arr.size else "empty"
        raise InvalidArgument(f"{field} must have dimension {dim}, got {got} (shape {arr.shape})", field)
    if n is not None and arr.shape[0] != n:
        raise InvalidArgument(f"{field} has {arr.shape[0]} rows but {n} ids were given", field)
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise InvalidArgument(f"{field}[{row}] contains NaN or Inf", field)
    return np.ascontiguousarray(arr)


def payloads(values: Any, n: int, max_bytes: int) -> list[bytes | None]:
    """Validate and serialize payloads; returns compact JSON bytes (or None) per point."""
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise InvalidArgument(f"payloads has {len(values)} entries but {n} ids were given", "payloads")
    out: list[bytes | None] = []
    for i, p in enumerate(values):
        if p is None:
            out.append(None)
            continue
        if not isinstance(p, dict):
            raise InvalidArgument(f"payloads[{i}] must be a JSON object, got {type(p).__name__}", "payloads")
        try:
            raw = json.dumps(p, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"payloads[{i}] is not JSON-serializable: {e}", "payloads") from None
        if len(raw) > max_bytes:
            raise ResourceExhausted(
                f"payloads[{i}] is {len(raw)} bytes; the limit is {max_bytes} bytes", "payloads")
        out.append(raw)
    return out


def texts(values: Any, n: int, max_bytes: int) -> list[bytes | None]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise InvalidArgument(f"texts has {len(values)} entries but {n} ids were given", "texts")
    out: list[bytes | None] = []
    for i, t in enumerate(values):
        if t is None:
            out.append(None)
            continue
        if not isinstance(t, str):
            raise InvalidArgument(f"texts[{i}] must be a string, got {type(t).__name__}", "texts")
        raw = t.encode("utf-8", "surrogatepass")
        if len(raw) > max_bytes:
            raise ResourceExhausted(f"texts[{i}] is {len(raw)} bytes; the limit is {max_bytes}", "texts")
        out.append(raw)
    return out


def k(value: Any) -> int:
    return int_in(value, 1, MAX_K, "k")


def encoder(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 1024:
        raise InvalidArgument(f"encoder must be a non-empty string of at most 1024 characters, got {value!r}",
                              "encoder")
    from .encoders import parse_spec  # InvalidArgument for an unknown encoder kind
    parse_spec(value)
    return value


MAX_TEXT_QUERIES = 10_000


def _needs_encoder(encoder_spec: str | None, collection: str, what: str) -> None:
    if encoder_spec is None:
        raise InvalidArgument(f"collection {collection!r} has no encoder, so {what}; create the "
                              "collection with encoder=... to send texts alone",
                              "vectors" if what.startswith("every") else "texts")


def encode_texts(values: Any, n: int, encoder_spec: str | None, collection: str) -> list[str]:
    """Upsert without vectors: the texts the encoder embeds, one non-empty string per id."""
    _needs_encoder(encoder_spec, collection, "every point needs a vector")
    if values is None:
        raise InvalidArgument("give vectors, or texts for every point (the collection's encoder "
                              "embeds them)", "texts")
    values = list(values)
    if len(values) != n:
        raise InvalidArgument(f"texts has {len(values)} entries but {n} ids were given", "texts")
    for i, t in enumerate(values):
        if not isinstance(t, str) or not t.strip():
            raise InvalidArgument(f"texts[{i}] is missing or blank; without vectors every point "
                                  "needs a text to embed (vectors and texts-only points cannot "
                                  "be mixed in one call)", "texts")
    return values


def query_texts(values: Any, encoder_spec: str | None, collection: str) -> list[str]:
    """Search by text: a string (one query) or a list of non-empty strings."""
    _needs_encoder(encoder_spec, collection, "search by text is not possible (give vectors)")
    if values is None:
        raise InvalidArgument("give query vectors or query texts", "texts")
    values = [values] if isinstance(values, str) else list(values)
    if len(values) > MAX_TEXT_QUERIES:
        raise ResourceExhausted(f"{len(values)} query texts in one call; the limit is "
                                f"{MAX_TEXT_QUERIES}", "texts")
    for i, t in enumerate(values):
        if not isinstance(t, str) or not t.strip():
            raise InvalidArgument(f"texts[{i}] must be a non-empty string", "texts")
    return values


MAX_TTL_S = 10 * 365 * 24 * 3600


def ttl(value: Any, n: int, now_ms: int) -> list[int | None] | None:
    """Seconds to live (one number for all points, or one per point, None = forever)
    -> expiry times in ms since the epoch."""
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise InvalidArgument(f"ttl has {len(values)} entries for {n} points", "ttl")
    out: list[int | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= MAX_TTL_S:
            raise InvalidArgument(f"ttl[{i}] must be a number of seconds in (0, {MAX_TTL_S}], got {v!r}",
                                  f"ttl[{i}]" if isinstance(value, (list, tuple)) else "ttl")
        out.append(now_ms + int(v * 1000))
    return out


def payload_field(value: Any) -> str:
    from .filters import TEXT_KEY
    if value == TEXT_KEY:
        return value
    if not isinstance(value, str) or not value or len(value) > 256 or \
            any(not part for part in value.split(".")):
        raise InvalidArgument(f"field must be a dotted payload path (or {TEXT_KEY!r} for the point "
                              f"text), got {value!r}", "field")
    return value


def mapping(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be an object, got {type(value).__name__}", field)
    return value
