"""A deterministic write workload shared by the crash child and the checking parent.

Batch ``b`` is a pure function of ``b``, so the child can re-run a write after a
crash (upsert replaces, delete is idempotent) and the parent can replay the
first n writes into a dict model to know exactly what the database must hold.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

COLLECTION = "crash"
DIM = 16
POOL = 3000          # ids are drawn from this pool, so replacements are common
BATCH = 250
DELETE_EVERY = 4     # every 4th batch is followed by a delete of some ids
DELETES = 60


def pid(i: int) -> str:
    return f"id-{i:05d}"


@functools.lru_cache(maxsize=None)
def batch(b: int):
    """(ids, vectors, payloads, deleted_ids) of batch b."""
    rng = np.random.default_rng(b)
    picked = rng.choice(POOL, BATCH, replace=False)
    ids = [pid(int(i)) for i in picked]
    vecs = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    pays = [{"batch": b, "row": j, "tag": "x" * (int(i) % 50)} for j, i in enumerate(picked)]
    deleted = []
    if b % DELETE_EVERY == DELETE_EVERY - 1:
        deleted = [pid(int(i)) for i in rng.choice(POOL, DELETES, replace=False)]
    return ids, vecs, pays, deleted


def steps():
    """The workload as the engine sees it, one atomic write per step:
    (kind, batch, ids, vectors, payloads) with kind "upsert" or "delete"."""
    for b in itertools.count():
        ids, vecs, pays, deleted = batch(b)
        yield ("upsert", b, ids, vecs, pays)
        if deleted:
            yield ("delete", b, deleted, None, None)


def model(upto: int) -> dict[str, tuple[int, int]]:
    """id -> (batch, row) of its live version after steps 0..upto."""
    state: dict[str, tuple[int, int]] = {}
    for kind, b, ids, _, _ in itertools.islice(steps(), upto + 1):
        if kind == "upsert":
            state.update((p, (b, j)) for j, p in enumerate(ids))
        else:
            for p in ids:
                state.pop(p, None)
    return state


def expected_point(b: int, row: int):
    """(vector, payload) the point written by batch b, row ``row`` must have."""
    _, vecs, pays, _ = batch(b)
    return vecs[row], pays[row]
