"""kill -9 during TTL upserts, partial updates (payload by filter, vectors by id) and
deletes by filter: after every restart the collection equals the model after the last
acknowledged step or the one in flight, expired points stay hidden, TTLs survive."""
from __future__ import annotations

import random
import time

import numpy as np

from vecdb import Database, DatabaseOptions

from .filters_workload import COLLECTION, POOL, SHORT_TTL, long_ttl_ids, model
from .harness import last_ack, run_child_and_kill

ROUNDS = 8


def diff(found: dict, want: dict) -> list:
    out = []
    for pid in sorted(found.keys() | want.keys()):
        a, b = found.get(pid), want.get(pid)
        if a != b:
            out.append((pid, None if a is None else (a[0] == (b or (None,))[0], a[1]),
                        None if b is None else b[1]))
    return out[:10]


def test_ttl_updates_and_filtered_deletes_survive_sigkill(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data, ack = str(tmp_path / "data"), str(tmp_path / "acks")
    every = [f"k{i}" for i in range(POOL)]
    for rnd in range(ROUNDS):
        run_child_and_kill("filters_child.py", [data, ack], rng, 0.1, 1.0)
        time.sleep(4 * SHORT_TTL)  # the model counts short-TTL points as expired: make it so
        acked = last_ack(ack)
        where = f"seed={seed} round={rnd} acked={acked}"
        db = Database.open(data, DatabaseOptions(background=False))
        try:
            found = {p.id: (p.vector.tobytes(), p.payload)
                     for p in db.get(COLLECTION, every, with_vector=True, with_payload=True)}
            candidates = [model(acked), model(acked + 1)]
            assert found in candidates, f"{where}: neither the acknowledged state nor that plus the " \
                f"in-flight step; differences from the acknowledged state: {diff(found, candidates[0])}"
            live = candidates[candidates.index(found)]
            assert db.count(COLLECTION) == len(live), where
            for g in range(5):
                want = sum(1 for _, pay in live.values() if pay["grp"] == g)
                assert db.count(COLLECTION, filter={"key": "grp", "match": g}) == want, where
            if live:
                q = np.frombuffer(next(iter(live.values()))[0], np.float32)[None]
                hits = db.search(COLLECTION, q, k=50, with_payload=False)[0]
                assert set(hits.ids) <= live.keys(), f"{where}: search returned a deleted or expired point"
            # TTLs are durable state too: every live one-hour point still carries its expiry
            coll = db.collections[COLLECTION]
            with_ttl = {pid for s in coll.shards for lab, pid, _, _ in s.iter_records()
                        if lab in s.expiry.at} & live.keys()  # (expired, unreaped ones are not live)
            assert with_ttl == long_ttl_ids(acked + (live is candidates[1])) & live.keys(), where
            assert db.expire() >= 0 and db.count(COLLECTION) == len(live), where
        finally:
            db.close()
    assert last_ack(ack) > 20, "the child acknowledged too few steps for the test to mean much"
