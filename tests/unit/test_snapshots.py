"""Snapshots: consistent under concurrent writes, restored identically (here and in
another data directory), damaged ones refused, crash during restore leaves no trace."""
from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from tests.conftest import clustered
from vecdb import Database, DatabaseOptions, SearchParams
from vecdb.errors import AlreadyExists, FailedPrecondition, NotFound


def fill(db, n=4000, index="hnsw"):
    db.create_collection("src", 16, metric="cosine", index=index, shards=3,
                         index_params=None if index == "flat" else {"build_threshold": 500},
                         payload_indexes={"g": "integer"})
    vecs = clustered(n, 16, seed=3)
    ids = [f"p{i}" for i in range(n)]
    db.upsert("src", ids, vecs, [{"g": i % 10} for i in range(n)], [f"text {i}" for i in range(n)])
    db.upsert("src", ids[:50], vecs[:50], ttl=3600)  # TTLs travel with the snapshot
    db.delete("src", ids[100:200])
    db.maintain()
    return ids, vecs


def results(db, name, queries):
    out = []
    for exact in (False, True):
        for filt in (None, {"key": "g", "range": {"lt": 3}}):
            res = db.search(name, queries, k=10, params=SearchParams(exact=exact), filter=filt)
            out.append([(r.ids, r.scores.tolist(), r.payloads, r.texts) for r in res])
    return out


@pytest.mark.parametrize("tarball", [False, True])
def test_restore_answers_exactly_like_the_source_elsewhere(tmp_path, tarball):
    a = Database.open(str(tmp_path / "a"), DatabaseOptions(background=False))
    ids, vecs = fill(a)
    q = clustered(20, 16, seed=9)
    before = results(a, "src", q)
    info = a.create_snapshot("src", "snap1", tarball=tarball)
    assert info.points == a.count("src") == 3900 and info.collection == "src"
    assert [s.name for s in a.list_snapshots()] == ["snap1"]
    a.restore_snapshot("snap1", "copy")  # same server, new name
    assert results(a, "copy", q) == before
    with pytest.raises(AlreadyExists):
        a.restore_snapshot("snap1")  # "src" exists
    # another server: copy the snapshot into its snapshot directory
    b = Database.open(str(tmp_path / "b"), DatabaseOptions(background=False))
    os.makedirs(b.snapshot_dir)
    (shutil.copy if tarball else shutil.copytree)(info.path, os.path.join(b.snapshot_dir,
                                                                          os.path.basename(info.path)))
    b.restore_snapshot("snap1")
    assert results(b, "src", q) == before
    desc = b.describe_collection("src")
    assert desc.points == 3900 and desc.payload_indexes["g"]["state"] == "ready"
    assert len(b.collections["src"].shards[0].expiry) + len(b.collections["src"].shards[1].expiry) + \
        len(b.collections["src"].shards[2].expiry) == 50
    b.close()
    b = Database.open(str(tmp_path / "b"), DatabaseOptions(background=False))  # and after a reopen
    assert results(b, "src", q) == before
    b.close()
    a.delete_snapshot("snap1")
    assert a.list_snapshots() == []
    with pytest.raises(NotFound):
        a.restore_snapshot("snap1")
    a.close()


def test_snapshot_under_concurrent_writes_is_one_instant(tmp_path):
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(background=False))
    db.create_collection("w", 8, metric="l2", shards=4, index="flat")
    rng = np.random.default_rng(0)
    stop, batches = threading.Event(), []

    def writer():
        b = 0
        while not stop.is_set():
            ids = [f"b{b}-{i}" for i in range(100)]  # every batch adds exactly 100 new points
            db.upsert("w", ids, rng.standard_normal((100, 8)).astype(np.float32), [{"b": b}] * 100)
            batches.append(b)
            b += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(batches) < 5:
            pass
        infos = [db.create_snapshot("w", f"s{i}") for i in range(3)]
    finally:
        stop.set()
        t.join()
    for i, info in enumerate(infos):
        restored = db.restore_snapshot(info.name, f"r{i}")
        assert restored.points % 100 == 0 and restored.points == info.points  # whole batches only
        got = {p.payload["b"] for p in db.scroll(f"r{i}", limit=10_000).points}
        assert got == set(range(len(got)))  # a prefix of the batches: no gaps
    db.close()


def test_damaged_snapshot_is_refused_and_nothing_written(tmp_path):
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(background=False))
    fill(db, n=800, index="flat")
    info = db.create_snapshot("src", "bad")
    victim = os.path.join(info.path, "shard-1", "records.bin")
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(victim, "wb").write(bytes(data))
    with pytest.raises(FailedPrecondition, match="damaged: shard-1/records.bin"):
        db.restore_snapshot("bad", "copy")
    assert [c.name for c in db.list_collections()] == ["src"]
    os.remove(os.path.join(info.path, "manifest.json"))
    with pytest.raises(FailedPrecondition, match="unreadable"):
        db.restore_snapshot("bad", "copy")
    db.close()


def test_crash_during_restore_leaves_no_trace(tmp_path):
    path = str(tmp_path / "d")
    db = Database.open(path, DatabaseOptions(background=False))
    fill(db, n=800, index="flat")
    db.create_snapshot("src", "s")
    # what a crash after the records were written, before the catalog entry, leaves behind
    uid = db.catalog.reserve_uid("half")
    db.store.write(_one_key(db, uid), sync=True)
    os.makedirs(os.path.join(db.catalog.dir_of(uid), "shard-0"))
    db.close()
    db = Database.open(path, DatabaseOptions(background=False))
    assert [c.name for c in db.list_collections()] == ["src"]
    assert not list(db.store.scan(b"D", b"E"))
    assert not os.path.exists(db.catalog.dir_of(uid))
    assert not [k for k, _ in db.store.scan(b"S" + uid.to_bytes(4, "big"), b"S" + (uid + 1).to_bytes(4, "big"))]
    db.restore_snapshot("s", "half")
    assert db.count("half") == db.count("src")
    db.close()


def _one_key(db, uid):
    wb = db.store.batch()
    wb.put(b"S" + uid.to_bytes(4, "big") + b"\x00m", b"x" * 24)
    return wb
