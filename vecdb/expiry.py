"""Per-point TTL of one shard: label -> expiry time (ms since the epoch).

Stored durably under S<uid><shard>e<label> in the same WriteBatch as the
point; this map is derived (rebuilt from those keys on open). Expired points
are hidden from every read at once and deleted by the background reaper
(Collection.expire) through the normal WAL-logged delete path.
"""
from __future__ import annotations

import time

import numpy as np

_EMPTY = np.zeros(0, np.int64)


def now_ms() -> int:
    return int(time.time() * 1000)


class ExpiryMap:
    def __init__(self) -> None:
        self.at: dict[int, int] = {}
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.at)

    def set(self, labels: np.ndarray, expire_ms: list[int | None]) -> None:
        for lab, ms in zip(labels.tolist(), expire_ms):
            if ms is not None:
                self.at[lab] = ms
                self._sorted = None

    def remove(self, labels: np.ndarray) -> None:
        if not self.at:
            return
        for lab in labels.tolist():
            if self.at.pop(lab, None) is not None:
                self._sorted = None

    def expired(self, now: int | None = None) -> np.ndarray:
        """Sorted labels whose time has come."""
        if not self.at:
            return _EMPTY
        if self._sorted is None:
            labs = np.fromiter(self.at.keys(), np.int64, len(self.at))
            ms = np.fromiter(self.at.values(), np.int64, len(self.at))
            order = np.argsort(ms)
            self._sorted = (ms[order], labs[order])
        ms, labs = self._sorted
        cut = np.searchsorted(ms, now_ms() if now is None else now, "right")
        return np.sort(labs[:cut])
