"""Deterministic workload of TTL upserts, partial updates and deletes by filter.

Step n (one atomic engine call each) is a pure function of n:
  n % 4 == 0  upsert 40 ids (payload grp, del, born); ids with i % 11 == 0 get
              a 50 ms TTL (expired by the time anyone checks), i % 3 == 0 one hour
  n % 4 == 1  update_payload(filter grp == n % 5, set {"v": n})
  n % 4 == 2  delete(filter del == true and grp == n % 5)
  n % 4 == 3  update_vectors of 10 ids (only those that exist change)
``model(n)`` replays steps 0..n into a dict: id -> (vector, payload).
"""
from __future__ import annotations

import numpy as np

COLLECTION = "f"
DIM = 8
POOL = 400
SHORT_TTL = 0.05
LONG_TTL = 3600.0


def _ids(n: int, size: int) -> list[int]:
    return sorted(np.random.default_rng(n).choice(POOL, size, replace=False).tolist())


def vector(n: int, i: int) -> np.ndarray:
    return np.random.default_rng((n, i)).standard_normal(DIM).astype(np.float32)


def step(n: int) -> tuple:
    kind = n % 4
    if kind == 0:
        ids = _ids(n, 40)
        pays = [{"grp": i % 5, "del": i % 7 == 0, "born": n} for i in ids]
        ttl = [SHORT_TTL if i % 11 == 0 else LONG_TTL if i % 3 == 0 else None for i in ids]
        return ("upsert", [f"k{i}" for i in ids], np.stack([vector(n, i) for i in ids]), pays, ttl)
    if kind == 1:
        return ("update", {"must": [{"key": "grp", "match": n % 5}]}, {"v": n})
    if kind == 2:
        return ("delete", {"must": [{"key": "del", "match": True}, {"key": "grp", "match": n % 5}]})
    ids = _ids(n, 10)
    return ("vectors", [f"k{i}" for i in ids], np.stack([vector(n, i) for i in ids]))


def run(db, n: int) -> None:
    s = step(n)
    if s[0] == "upsert":
        db.upsert(COLLECTION, s[1], s[2], s[3], ttl=s[4])
    elif s[0] == "update":
        db.update_payload(COLLECTION, filter=s[1], set=s[2])
    elif s[0] == "delete":
        db.delete(COLLECTION, filter=s[1])
    else:
        db.update_vectors(COLLECTION, s[1], s[2])


def model(upto: int) -> dict[str, tuple[bytes, dict]]:
    """Live points after steps 0..upto; short-TTL points are gone (they expired)."""
    state: dict[str, tuple[np.ndarray, dict]] = {}
    for n in range(upto + 1):
        s = step(n)
        if s[0] == "upsert":
            for pid, vec, pay, ttl in zip(s[1], s[2], s[3], s[4]):
                if ttl == SHORT_TTL:
                    state.pop(pid, None)
                else:
                    state[pid] = (vec, dict(pay))
        elif s[0] == "update":
            grp = s[1]["must"][0]["match"]
            for pid, (vec, pay) in state.items():
                if pay["grp"] == grp:
                    pay.update(s[2])
        elif s[0] == "delete":
            grp = s[1]["must"][1]["match"]
            for pid in [p for p, (_, pay) in state.items() if pay["del"] and pay["grp"] == grp]:
                del state[pid]
        else:
            for pid, vec in zip(s[1], s[2]):
                if pid in state:
                    state[pid] = (vec, state[pid][1])
    return {pid: (vec.tobytes(), pay) for pid, (vec, pay) in state.items()}


def long_ttl_ids(upto: int) -> set[str]:
    """Ids whose latest upsert (within steps 0..upto) gave them the one-hour TTL."""
    out: set[str] = set()
    for n in range(0, upto + 1, 4):
        _, ids, _, _, ttl = step(n)
        for pid, t in zip(ids, ttl):
            (out.add if t == LONG_TTL else out.discard)(pid)
    return out
