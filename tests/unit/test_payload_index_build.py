"""A payload index created on a populated collection while upserts, replacements and
deletes keep coming ends identical to one built from scratch (a reopen)."""
from __future__ import annotations

import threading

import numpy as np

from vecdb import Database, DatabaseOptions


def index_state(db: Database, field: str) -> list[dict]:
    """Per shard: label -> indexed values, mapped to point ids (labels differ across runs)."""
    coll = db.collections["c"]
    out = []
    for shard in coll.shards:
        fi = shard.pindex.ready[field]
        by_label = {lab: pid for lab, pid, _, _ in shard.iter_records()}
        out.append({by_label[lab]: tuple(sorted(map(str, part.of[lab])))
                    for part in fi.parts for lab in part.of})
    return out


def test_index_built_during_concurrent_writes_equals_full_rebuild(tmp_path):
    path = str(tmp_path / "data")
    db = Database.open(path, DatabaseOptions(background=False))
    db.create_collection("c", 4, metric="l2", shards=3)
    rng = np.random.default_rng(0)
    n = 30_000
    ids = [f"p{i}" for i in range(n)]
    db.upsert("c", ids, rng.standard_normal((n, 4)).astype(np.float32),
              [{"g": i % 50, "tag": f"t{i % 7}"} for i in range(n)])
    stop = threading.Event()
    errors = []

    def writer():
        r = np.random.default_rng(1)
        step = 0
        try:
            while not stop.is_set() or step < 20:
                step += 1
                pick = [f"p{i}" for i in r.choice(n + 2000, 200, replace=False)]
                db.upsert("c", pick, r.standard_normal((200, 4)).astype(np.float32),
                          [{"g": int(r.integers(0, 50)), "step": step} for _ in pick])
                db.delete("c", [f"p{i}" for i in r.choice(n + 2000, 50, replace=False)])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    db.create_payload_index("c", "g", "integer", wait=True)
    stop.set()
    t.join()
    assert not errors
    assert db.describe_collection("c").payload_indexes == {"g": {"type": "integer", "state": "ready"}}
    live = index_state(db, "g")
    f = {"must": [{"key": "g", "range": {"gte": 10, "lt": 20}}]}
    count_live = db.count("c", filter=f)
    db.close()
    db = Database.open(path, DatabaseOptions(background=False))  # rebuilt from RocksDB
    try:
        assert index_state(db, "g") == live
        assert db.count("c", filter=f) == count_live
        slow, cursor = 0, None
        while True:
            page = db.scroll("c", limit=10_000, cursor=cursor)
            slow += sum(1 for p in page.points if 10 <= p.payload["g"] < 20)
            if not (cursor := page.next_cursor):
                break
        assert count_live == slow
    finally:
        db.close()
