"""Pure functions: shard routing and exact top-k merge (tested against brute force)."""
from __future__ import annotations

import zlib

import numpy as np


def shard_of(pid: str, shards: int) -> int:
    """Stable across processes and versions: CRC32 of the utf-8 id, mod shards."""
    return zlib.crc32(pid.encode()) % shards if shards > 1 else 0


# Up to this many candidates in all (queries x shards x k) the merge sorts them all.
SORT_ALL_MAX = 4096


def merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int, higher_is_better: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-shard (scores, labels) of shape (q, k_i) into the global top k.

    Returns (scores, shard_index, labels), each (q, <=k); missing slots have
    label -1 and are sorted last. Ties keep shard order (stable sort).
    """
    q = parts[0][0].shape[0]
    if len(parts) == 1 and parts[0][1].shape[1] <= k:  # one shard: FAISS already sorted it
        scores, labels = np.asarray(parts[0][0], np.float32), np.asarray(parts[0][1], np.int64)
        return scores, np.zeros(labels.shape, np.int32), labels
    scores = np.concatenate([np.asarray(s, np.float32).reshape(q, -1) for s, _ in parts], axis=1)
    labels = np.concatenate([np.asarray(l, np.int64).reshape(q, -1) for _, l in parts], axis=1)
    which = np.concatenate([np.full((q, np.asarray(l).reshape(q, -1).shape[1]), i, np.int32)
                            for i, (_, l) in enumerate(parts)], axis=1)
    key = -scores if higher_is_better else scores.copy()
    key[labels < 0] = np.inf
    kk = min(k, key.shape[1])
    if kk < key.shape[1] and key.size > SORT_ALL_MAX:
        part = np.argpartition(key, kk - 1, axis=1)[:, :kk]
        kth = np.take_along_axis(key, part, 1).max(axis=1, keepdims=True)
        # argpartition picks any of the ties at the k-th place: there, the first columns
        for r in np.flatnonzero((key == kth).sum(1) > (np.take_along_axis(key, part, 1) == kth).sum(1)):
            part[r] = np.lexsort((np.arange(key.shape[1]), key[r]))[:kk]
        # and sort by key, then by column (shard order, then rank)
        order = np.take_along_axis(part, np.lexsort((part, np.take_along_axis(key, part, 1))), 1)
    else:  # few candidates: one stable sort (key, then column) is cheaper than the above
        order = np.argsort(key, axis=1, kind="stable")[:, :kk]
    return (np.take_along_axis(scores, order, 1), np.take_along_axis(which, order, 1),
            np.take_along_axis(labels, order, 1))
