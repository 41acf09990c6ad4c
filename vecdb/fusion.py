"""Pure functions: fuse ranked lists from several retrievers into one ranking.

``rrf``: reciprocal rank fusion, score(d) = sum over lists of 1 / (rrf_k + rank(d)),
rank counted from 1; a list without d adds nothing.
``weighted``: each list's scores min-max normalised to [0, 1] (1 = its best hit, 0 =
its worst; all equal: 1), lower-is-better lists (l2 distances) flipped first; score(d)
= sum of weight * normalised score; a list without d adds 0.
Ties keep first appearance (earlier lists first, then rank).
"""
from __future__ import annotations

import math

from .errors import InvalidArgument

FUSIONS = ("rrf", "weighted")
RRF_K_DEFAULT = 60.0


def check(fusion, weights, rrf_k, n_lists: int) -> tuple[str, tuple[float, ...], float]:
    """Validated (fusion, weights, rrf_k); weights default to equal."""
    fusion = fusion or "rrf"
    if fusion not in FUSIONS:
        raise InvalidArgument(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}", "fusion")
    if weights is None or (not isinstance(weights, (str, bytes)) and len(weights) == 0):
        weights = (1.0,) * n_lists
    try:
        weights = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise InvalidArgument(f"weights must be {n_lists} numbers, got {weights!r}", "weights") from None
    if len(weights) != n_lists:
        raise InvalidArgument(f"weights must be {n_lists} numbers (one per retriever), "
                              f"got {len(weights)}", "weights")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise InvalidArgument("weights must be finite, non-negative and not all 0", "weights")
    rrf_k = RRF_K_DEFAULT if rrf_k is None or rrf_k == 0 else rrf_k
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float)) or \
            not math.isfinite(rrf_k) or rrf_k <= 0:
        raise InvalidArgument(f"rrf_k must be a positive finite number, got {rrf_k!r}", "rrf_k")
    return fusion, weights, float(rrf_k)


def rrf(lists: list[list], weights: tuple[float, ...], rrf_k: float) -> list[tuple[object, float]]:
    """``lists``: keys best first. Returns (key, fused score), best first."""
    fused: dict = {}
    for keys, w in zip(lists, weights):
        for rank, key in enumerate(keys, 1):
            fused[key] = fused.get(key, 0.0) + w / (rrf_k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def weighted(lists: list[tuple[list, list, bool]], weights: tuple[float, ...]
             ) -> list[tuple[object, float]]:
    """``lists``: (keys best first, their scores, higher_is_better)."""
    fused: dict = {}
    for (keys, scores, higher), w in zip(lists, weights):
        if not keys:
            continue
        lo, hi = min(scores), max(scores)
        for key, s in zip(keys, scores):
            norm = 1.0 if hi == lo else ((s - lo) if higher else (hi - s)) / (hi - lo)
            fused[key] = fused.get(key, 0.0) + w * norm
    return sorted(fused.items(), key=lambda kv: -kv[1])


def fuse(lists: list[tuple[list, list, bool]], fusion: str, weights: tuple[float, ...],
         rrf_k: float) -> list[tuple[object, float]]:
    """``lists``: (keys best first, their scores, higher_is_better), fused by ``fusion``
    (checked: "rrf" or "weighted"). Returns (key, fused score), best first."""
    if fusion == "rrf":
        return rrf([keys for keys, _, _ in lists], weights, rrf_k)
    return weighted(lists, weights)


def explain(names: list[str], lists: list[tuple[list, list, bool]], keys: list,
            labels: list) -> str:
    """'p7 (dense #3 0.81, keywords -), ...': each fused hit (``keys``, shown as
    ``labels``) with its rank and score in each named list, '-' where it is not."""
    def place(keys_, scores, key) -> str:
        try:
            at = keys_.index(key)
        except ValueError:
            return "-"
        return f"#{at + 1} {float(scores[at]):.6g}"
    return ", ".join(f"{label} (" + ", ".join(f"{name} {place(k_, s_, key)}" for name, (k_, s_, _)
                                             in zip(names, lists)) + ")"
                     for key, label in zip(keys, labels))
