"""Queries built from examples: recommend (positive/negative examples) and vector
arithmetic (weighted terms). Both read example points by id, embed texts with the
collection's encoder, and take raw vectors as they are.

Every term is first taken into the metric's space (unit length for cosine; as
stored for ip and l2), so "king - man + woman" means the same thing whatever
the stored norms.

Recommend strategies:
  average      search with mean(positive) - mean(negative) (mean(positive)
               without negatives), normalised for cosine. As fast as a search.
  best_score   every candidate scores by its most similar positive and its most
               similar negative example (similarity: cosine/ip score, -squared
               distance for l2): sig(best_pos) if best_pos > best_neg, else
               -sig(best_neg), sig(x) = (x / (1 + |x|) + 1) / 2. So points closer
               to a positive than to every negative come first (scores in
               (0, 1)), the others after them (scores in (-1, 0)), each ordered
               by its deciding similarity. This is Qdrant's ``best_score``
               ordering (its implementation uses the same sigmoid scaling).
               Candidates are the nearest neighbours of each positive example,
               scored exactly; their number grows until no unseen point could
               enter the top k (a bound from each list's last similarity), and
               the whole matching set is scored when that does not settle it.
               Exact on exact indexes; on ANN indexes as good as the candidates.

Everything is validated before the index is read; nothing is ever written.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import filters, planner, validation
from .errors import FailedPrecondition, InvalidArgument, NotFound
from .index import higher_is_better, prepare
from .topk import merge
from .types import SearchParams, SearchResult, take

STRATEGIES = ("average", "best_score")
MAX_TERMS = 1000
_GROW = 4
_SCAN_CHUNK = 16_384  # points reconstructed at a time by the best_score full scan
SIM_BLOCK = 1 << 20  # similarity matrix elements computed at a time (4 MiB of float32)


@dataclass(frozen=True)
class Term:
    kind: str  # "id" | "text" | "vector"
    value: object
    weight: float
    field: str  # where it came from, for errors: "positive[1]", "expression[2]"


# ---- parsing ---------------------------------------------------------------------------
def _typed(item: dict, field: str, scale: float | None) -> Term:
    """A typed term {"id"|"text"|"vector": ..., "weight": w}: weight ``scale`` x w (w defaults
    to 1), so ("-", {"id": x, "weight": 2}) weighs -2. ``scale`` None: a recommend example,
    which takes no weight (the strategies average the examples unweighted)."""
    kinds = [k for k in ("id", "text", "vector") if k in item]
    extra = set(item) - {"id", "text", "vector", "weight"}
    if len(kinds) != 1 or extra:
        raise InvalidArgument(f"{field} must have exactly one of id, text, vector"
                              f"{'' if scale is None else ' (and an optional weight)'}, got keys "
                              f"{sorted(item)}", field)
    kind = kinds[0]
    if scale is None:
        if "weight" in item:
            raise InvalidArgument(f"{field}.weight: recommend examples take no weight (use an "
                                  "expression search for weighted terms)", f"{field}.weight")
        return _term(kind, item[kind], 1.0, field)
    w = item.get("weight", 1.0)
    if not _finite_number(w):
        raise InvalidArgument(f"{field}.weight must be a finite number, got {w!r}", f"{field}.weight")
    return _term(kind, item[kind], scale * float(w), field)


def _finite_number(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and bool(np.isfinite(x))


def _term(kind: str, value: object, weight: float, field: str) -> Term:
    if kind in ("id", "text") and (not isinstance(value, str) or not value.strip()):
        raise InvalidArgument(f"{field}: the {kind} must be a non-empty string, got {value!r}", field)
    if kind == "id":
        validation.ids([value], field)
    return Term(kind, value, weight, field)


def _is_vector(item: object) -> bool:
    return isinstance(item, np.ndarray) or (isinstance(item, (list, tuple)) and len(item) > 0
                                            and all(isinstance(x, (int, float, np.number))
                                                    and not isinstance(x, bool) for x in item))


def _items(items: object, field: str, required: bool, what: str) -> list | tuple:
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, (list, tuple)):
        raise InvalidArgument(f"{field} must be a list of {what}", field)
    if required and not items:
        raise InvalidArgument(f"{field} needs at least one of its {what}", field)
    if len(items) > MAX_TERMS:
        raise InvalidArgument(f"{field} has {len(items)} {what}; the limit is {MAX_TERMS}", field)
    return items


def parse_examples(items: object, field: str, required: bool) -> list[Term]:
    """Recommend examples: a string is a stored id; {"id"|"text"|"vector": ...}; a list of
    numbers (or a 1-D array) is a raw vector."""
    out = []
    for i, item in enumerate(_items([] if items is None else items, field, required, "examples")):
        f = f"{field}[{i}]"
        if isinstance(item, str):
            out.append(_term("id", item, 1.0, f))
        elif isinstance(item, dict):
            out.append(_typed(item, f, None))
        elif _is_vector(item):
            out.append(Term("vector", item, 1.0, f))
        else:
            raise InvalidArgument(f"{f} must be an id, {{'id'|'text'|'vector': ...}} or a "
                                  f"vector, got {type(item).__name__}", f)
    return out


def parse_expression(items: object, field: str = "expression") -> list[Term]:
    """Expression terms: (sign or weight, term) with term "id:X", "text:Y", a vector or a
    typed dict; or a typed dict {"id"|"text"|"vector": ..., "weight": w}. A term's weight
    is its sign ("+" 1, "-" -1) or number times its dict's weight (default 1)."""
    out = []
    for i, item in enumerate(_items(items, field, True, "terms")):
        f = f"{field}[{i}]"
        if isinstance(item, dict):
            out.append(_typed(item, f, 1.0))
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidArgument(f"{f} must be (sign, term), (weight, term) or {{'id'|'text'|"
                                  f"'vector': ..., 'weight': w}}, got {item!r:.80}", f)
        sign, term = item
        if isinstance(sign, str) and sign in ("+", "-"):
            weight = 1.0 if sign == "+" else -1.0
        elif _finite_number(sign):
            weight = float(sign)
        else:
            raise InvalidArgument(f"{f}: the sign must be '+', '-' or a finite number, got {sign!r}", f)
        if isinstance(term, str):
            kind, sep, value = term.partition(":")
            if not sep or kind not in ("id", "text"):
                raise InvalidArgument(f"{f}: a string term must start with 'id:' or 'text:', got "
                                      f"{term!r:.80}", f)
            out.append(_term(kind, value, weight, f))
        elif isinstance(term, dict):
            out.append(_typed(term, f, weight))
        elif _is_vector(term):
            out.append(Term("vector", term, weight, f))
        else:
            raise InvalidArgument(f"{f}: the term must be 'id:...', 'text:...' or a vector", f)
    return out


# ---- resolving terms to vectors --------------------------------------------------------
def _check_texts(coll, terms: list[Term]) -> None:
    for t in terms:
        if t.kind == "text" and coll.config.encoder is None:
            raise FailedPrecondition(f"{t.field} is a text, but collection {coll.config.name!r} "
                                     "has no encoder to embed it (give an id or a vector)", t.field)


def resolve(coll, terms: list[Term], tenant: tuple | None = None) -> np.ndarray:
    """One row per term, in the metric's space (unit length for cosine). ``tenant`` (a
    tenant key): stored ids of other tenants are not found, exactly like absent ones."""
    dim, out = coll.config.dim, np.zeros((len(terms), coll.config.dim), np.float32)
    _check_texts(coll, terms)
    for j, t in enumerate(terms):  # raw vectors first: cheap checks before any read
        if t.kind == "vector":
            out[j] = validation.vectors(t.value, dim, 1, t.field)[0]
    ids = [t for t in terms if t.kind == "id"]
    if ids:
        scoped = {} if tenant is None else {"tenant": tenant}
        found = {p.id: p.vector for p in coll.get([t.value for t in ids], with_vector=True,
                                                  with_payload=False, **scoped)
                 if p.vector is not None}  # a point without the primary: not an example of it
        for t in ids:
            if t.value not in found:
                raise NotFound(f"{t.field}: point {t.value!r} not found in collection "
                               f"{coll.config.name!r}", t.field)
        for j, t in enumerate(terms):
            if t.kind == "id":
                out[j] = found[t.value]
    texts = [(j, t) for j, t in enumerate(terms) if t.kind == "text"]
    if texts:
        out[[j for j, _ in texts]] = coll.embed_queries([t.value for _, t in texts])
    if coll.config.metric == "cosine":
        zero = [t.field for j, t in enumerate(terms) if not out[j].any()]
        if zero:
            raise InvalidArgument(f"{zero[0]} is an all-zero vector; cosine needs a direction", zero[0])
    return prepare(out, coll.config.metric)


def _query(coll, vec: np.ndarray, field: str) -> np.ndarray:
    if not np.isfinite(vec).all() or not vec.any():
        raise InvalidArgument(f"the {field} adds up to a zero (or non-finite) query vector", field)
    return prepare(vec.reshape(1, -1).astype(np.float32), coll.config.metric)


def _excluded(terms: list[Term]) -> set[str]:
    return {t.value for t in terms if t.kind == "id"}


# ---- result plumbing -------------------------------------------------------------------
def search_excluding(coll, q: np.ndarray, k: int, params: SearchParams, node, exclude: set[str],
                     with_payload: bool, with_vector: bool, raw_payloads: bool) -> SearchResult:
    """Top k of one prepared query, never returning the ids in ``exclude``."""
    res = coll.search_prepared(q, k + len(exclude), params, with_payload, with_vector, node,
                               raw_payloads)
    if not res:
        return SearchResult([], np.zeros(0, np.float32))
    res = res[0]
    return take(res, [i for i, pid in enumerate(res.ids) if pid not in exclude][:k])


# ---- vector arithmetic -----------------------------------------------------------------
def expression_query(coll, expression, tenant: tuple | None = None) -> tuple[np.ndarray, set[str]]:
    """(the prepared (1, dim) query, the stored ids used as terms; of ``tenant`` only)."""
    terms = parse_expression(expression)
    vecs = resolve(coll, terms, tenant)
    weights = np.array([t.weight for t in terms], np.float32)
    return _query(coll, weights @ vecs, "expression"), _excluded(terms)


def search_expression(coll, expression, k: int, params: SearchParams, with_payload: bool,
                      with_vector: bool, filter=None, include_terms: bool = False,
                      raw_payloads: bool = False, tenant: tuple | None = None) -> SearchResult:
    k, node = validation.k(k), filters.parse(filter)
    q, used = expression_query(coll, expression, tenant)
    return search_excluding(coll, q, k, params, node, set() if include_terms else used,
                            with_payload, with_vector, raw_payloads)


# ---- recommend -------------------------------------------------------------------------
def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x / (1.0 + np.abs(x)) + 1.0)


def similarities(vecs: np.ndarray, examples: np.ndarray, metric: str) -> np.ndarray:
    """(n, m) similarity of each vector (metric space) to each example: higher is closer."""
    if metric == "l2":
        return -(np.square(vecs).sum(1)[:, None] - 2.0 * vecs @ examples.T
                 + np.square(examples).sum(1)[None, :])
    return vecs @ examples.T


def best_score(vecs: np.ndarray, pos: np.ndarray, neg: np.ndarray, metric: str):
    """(scores, best positive similarity, positive chosen?) of each vector. The (vectors x
    examples) similarities are computed SIM_BLOCK elements at a time, so memory stays
    bounded whatever the numbers of candidates and examples."""
    n = len(vecs)
    bp, bn = np.empty(n, np.float32), np.full(n, -np.inf, np.float32)
    step = max(1, SIM_BLOCK // max(len(pos), len(neg), 1))
    for i in range(0, n, step):
        bp[i:i + step] = similarities(vecs[i:i + step], pos, metric).max(1)
        if len(neg):
            bn[i:i + step] = similarities(vecs[i:i + step], neg, metric).max(1)
    chosen = bp > bn
    return np.where(chosen, _sig(bp), -_sig(np.where(chosen, 0, bn))).astype(np.float32), bp, chosen


def recommend(coll, positive, negative=None, strategy: str = "average", k: int = 10,
              params: SearchParams | None = None, with_payload: bool = True,
              with_vector: bool = False, filter=None, include_examples: bool = False,
              raw_payloads: bool = False, tenant: tuple | None = None) -> SearchResult:
    """``tenant`` (a tenant key, with ``filter`` a TenantScope of it): stored examples of
    other tenants are not found; candidates come from the tenant only."""
    params = params or SearchParams()
    k, node = validation.k(k), filters.parse(filter)
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
                              "strategy")
    pos_t = parse_examples(positive, "positive", required=True)
    neg_t = parse_examples(negative, "negative", required=False)
    vecs = resolve(coll, pos_t + neg_t, tenant)
    pos, neg = vecs[:len(pos_t)], vecs[len(pos_t):]
    exclude = set() if include_examples else _excluded(pos_t + neg_t)
    if strategy == "average":
        q = pos.mean(0) - (neg.mean(0) if len(neg) else 0)
        return search_excluding(coll, _query(coll, q, "positive minus negative examples"), k,
                                params, node, exclude, with_payload, with_vector, raw_payloads)
    return _best_score(coll, pos, neg, k, params, node, exclude, with_payload, with_vector,
                       raw_payloads)


def _best_score(coll, pos, neg, k, params, node, exclude, with_payload, with_vector, raw_payloads):
    metric, want = coll.config.metric, k + len(exclude)
    sign = 1.0 if higher_is_better(metric) else -1.0  # search scores -> similarities
    kk = max(4 * want, 64)
    limit = max(16 * want, 1024)  # candidates per positive before scoring everything
    while True:
        parts = coll.search_prepared(pos, kk, params, with_payload, True, node, raw_payloads)
        if not parts:
            return SearchResult([], np.zeros(0, np.float32))
        rows: dict[str, tuple[int, int]] = {}
        for qi, res in enumerate(parts):
            for i, pid in enumerate(res.ids):
                if pid not in exclude:
                    rows.setdefault(pid, (qi, i))
        exhausted = any(len(r.ids) + r.dropped < kk for r in parts)
        if not rows:
            if exhausted:
                return SearchResult([], np.zeros(0, np.float32))
        else:
            ids = list(rows)
            cand = prepare(np.stack([parts[qi].vectors[i] for qi, i in rows.values()]), metric)
            scores, bp, chosen = best_score(cand, pos, neg, metric)
            order = np.argsort(-scores, kind="stable")[:k]
            bound = max(sign * float(r.scores[-1]) for r in parts if len(r.ids))
            if exhausted or (len(order) == k and chosen[order].all() and bp[order[-1]] > bound):
                out = [rows[ids[j]] for j in order]
                return _assemble(parts, out, scores[order], with_vector)
        if kk >= limit:
            return _scan(coll, pos, neg, k, node, exclude, with_payload, with_vector, raw_payloads)
        kk = min(kk * _GROW, limit)


def _assemble(parts: list[SearchResult], picks: list[tuple[int, int]], scores,
              with_vector: bool) -> SearchResult:
    def col(name):
        if getattr(parts[0], name) is None:
            return None
        return [getattr(parts[qi], name)[i] for qi, i in picks]
    vecs = np.stack([parts[qi].vectors[i] for qi, i in picks]) if with_vector and picks else None
    return SearchResult(ids=[parts[qi].ids[i] for qi, i in picks],
                        scores=np.asarray(scores, np.float32), payloads=col("payloads"),
                        vectors=vecs if with_vector else None, texts=col("texts"),
                        plan=parts[0].plan, payloads_json=col("payloads_json"))


def _scan(coll, pos, neg, k, node, exclude, with_payload, with_vector, raw_payloads):
    """best_score over every matching point of every shard (the exact fallback). Each
    shard's matching set is fixed first (a copy of its labels, under its read lock);
    its vectors are then read _SCAN_CHUNK at a time, each chunk under the read lock
    (writers wait for one chunk's read at most) and scored outside it. A point deleted
    or rewritten before its chunk is read is left out; a label's vector never changes,
    so every score is that of the point as the set was fixed. The best ``2 * want + 16``
    are kept, so the k returned are still whole when some of those were rewritten or
    deleted before their records were read (they are left out: _hydrate)."""
    want, metric = 2 * (k + len(exclude)) + 16, coll.config.metric
    parts = []
    for shard in coll.shards:
        best_s, best_l = np.zeros(0, np.float32), np.zeros(0, np.int64)
        with shard.lock.read():
            labels = shard.with_primary(planner.matching(shard, node, shard.expiry.expired())[0]) \
                if shard.exact.ntotal else np.zeros(0, np.int64)
            seq = shard.applied_seq
        for start in range(0, len(labels), _SCAN_CHUNK):
            lab = labels[start:start + _SCAN_CHUNK]
            with shard.lock.read():
                if shard.applied_seq != seq:  # written meanwhile: keep the labels still live
                    lab = lab[np.isin(lab, planner.universe(shard), assume_unique=True)]
                vecs = shard.exact.reconstruct_batch(lab)
            s, _, _ = best_score(vecs, pos, neg, metric)
            best_s, best_l = np.concatenate([best_s, s]), np.concatenate([best_l, lab])
            top = np.argsort(-best_s, kind="stable")[:want]
            best_s, best_l = best_s[top], best_l[top]
        parts.append((best_s.reshape(1, -1), best_l.reshape(1, -1)))
    scores, which, labels = merge(parts, want, True)
    res = coll._hydrate(scores, which, labels, with_payload, with_vector, "best_score(scan)",
                        raw_payloads)[0]
    return take(res, [i for i, pid in enumerate(res.ids) if pid not in exclude][:k])
