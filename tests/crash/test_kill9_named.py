"""kill -9 while writing points with named vectors: after every kill the database opens,
each point holds exactly the vector set of its last acknowledged write (or of the one
in flight, atomically; some points without the primary), a search by each field finds
each checked point first, and count and the primary's search agree with the model."""
from __future__ import annotations

import random

import numpy as np

from vecdb import Database, DatabaseOptions

from .harness import last_ack, run_child_and_kill
from .named_child import named_of, primary_of
from .workload import COLLECTION, POOL, batch, model, pid

ROUNDS = 5
ALL_IDS = [pid(i) for i in range(POOL)]


def expected(state: dict) -> dict:
    out = {}
    for p, (b, row) in state.items():
        vecs = batch(b)[1]
        named = {f: v[0] for f, v in named_of(vecs[row:row + 1], [row]).items() if v[0] is not None}
        primary = primary_of(vecs[row:row + 1], [row])[0]
        out[p] = (None if primary is None else primary.tobytes(),
                  {f: v.tobytes() for f, v in named.items()})
    return out


def found(db: Database) -> dict:
    return {p.id: (None if p.vector is None else p.vector.tobytes(), {f: v.tobytes() for f, v in (p.vectors or {}).items()})
            for p in db.get(COLLECTION, ALL_IDS, with_vector=True, with_payload=False)}


def test_named_vectors_survive_sigkill(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data, ack = str(tmp_path / "data"), str(tmp_path / "acks")
    for rnd in range(ROUNDS):
        run_child_and_kill("named_child.py", [data, ack], rng, low=0.3, high=2.0)
        acked = last_ack(ack)
        where = f"seed={seed} round={rnd} acked={acked}"
        with Database.open(data, DatabaseOptions(background=False)) as db:
            got = found(db)
            before, after = expected(model(acked)), expected(model(acked + 1))
            assert got in (before, after), f"{where}: neither the acknowledged state nor that " \
                "plus the in-flight write"
            for p in rng.sample(sorted(got), min(10, len(got))):
                for field, raw in got[p][1].items():
                    q = np.frombuffer(raw, np.float32)
                    res = db.search(COLLECTION, q, k=1, using=field)[0]
                    assert res.scores[0] < 1e-6, f"{where}: {p} {field} not found by its vector"
            assert db.count(COLLECTION) == len(got), where
            with_primary = {p for p, v in got.items() if v[0] is not None}
            if got:
                assert len(with_primary) < len(got), where  # points without it are written
                res = db.search(COLLECTION, np.zeros(16, np.float32), k=len(got))[0]
                assert set(res.ids) == with_primary, f"{where}: the primary's members"
            counts = {f: sum(f in v[1] for v in got.values()) for f in ("image", "body")}
            stats = db.describe_collection(COLLECTION).shards
            assert {f: sum(s.vectors[f]["points"] for s in stats) for f in counts} == counts, where
