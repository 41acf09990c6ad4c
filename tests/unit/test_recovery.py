import glob
import logging
import os

import pytest

from tests.conftest import clustered
from vecdb import SearchParams
from vecdb.storage import U64, shard_prefix


def wal_seqs(db, name, shard=0):
    cfg = db.describe_collection(name).config
    p = shard_prefix(cfg.uid, shard)
    return [U64.unpack(k[-8:])[0] for k, _ in db.store.scan(p + b"w", p + b"x")]


def fill(db, name="c", n=3000, dim=16, seed=0):
    X = clustered(n, dim, seed=seed)
    ids = [f"p{i}" for i in range(n)]
    for lo in range(0, n, 500):
        db.upsert(name, ids[lo:lo + 500], X[lo:lo + 500], [{"i": i} for i in range(lo, lo + 500)])
    return ids, X


def test_reopen_replays_wal_without_checkpoint(db, reopen):
    db.create_collection("c", 16, shards=2)
    ids, X = fill(db)
    db.delete("c", ids[:10])
    before = db.search("c", X[:20], k=5)
    # no checkpoint: simulate a crash by dropping the in-memory state (no close)
    db.pool.shutdown()
    db.store.close()
    db._lock.release()
    db._closed = True
    from vecdb import Database, DatabaseOptions
    db2 = Database.open(db.path, DatabaseOptions(background=False))
    try:
        assert db2.count("c") == 2990
        after = db2.search("c", X[:20], k=5)
        assert [r.ids for r in after] == [r.ids for r in before]
    finally:
        db2.close()


def test_checkpoint_truncates_wal_and_keeps_ann(db, reopen):
    db.create_collection("c", 16, index="hnsw", index_params={"build_threshold": 500})
    ids, X = fill(db)
    assert wal_seqs(db, "c") == list(range(1, 7))
    db.maintain()
    db = reopen(db, wal_retain=2)
    try:
        db.upsert("c", ["new"], X[:1])
        db.checkpoint()
        # the WAL keeps what recovery needs: nothing the checkpoint covers (wal_retain sizes
        # the cluster's replication log, not this)
        assert wal_seqs(db, "c") == []
        db.upsert("c", ["newer"], X[1:2])
        assert wal_seqs(db, "c") == [8]
        d = db.describe_collection("c")
        assert d.index_state == "built" and d.shards[0].checkpoint_seq == 7
        db = reopen(db)
        d = db.describe_collection("c")
        assert d.index_state == "built" and d.shards[0].index_type == "hnsw"  # loaded, not rebuilt
        assert db.count("c") == 3002 and db.get("c", ["newer"])
    finally:
        db.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_dir", "bad_meta"])
def test_damaged_checkpoint_is_rebuilt_from_rocksdb(db, reopen, damage, caplog):
    db.create_collection("c", 16, index="ivf_flat", index_params={"build_threshold": 500})
    ids, X = fill(db)
    db.maintain()
    db.checkpoint()
    db.upsert("c", ["late"], X[:1] + 1)  # WAL after the checkpoint
    want = [r.ids for r in db.search("c", X[:30], k=10, params=SearchParams(exact=True))]
    db.close()
    [ckpt] = glob.glob(os.path.join(db.path, "collections", "*", "shard-0", "ckpt-*"))
    target = os.path.join(ckpt, "ann.faiss")  # the IVF lists hold the vectors (no exact.faiss)
    if damage == "flip":
        with open(target, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0xFF]))
    elif damage == "truncate":
        os.truncate(target, 100)
    elif damage == "delete_dir":
        import shutil
        shutil.rmtree(ckpt)
    else:
        with open(os.path.join(ckpt, "meta.json"), "w") as f:
            f.write("{not json")
    caplog.set_level(logging.WARNING)
    from vecdb import Database, DatabaseOptions
    db = Database.open(db.path, DatabaseOptions(background=False))
    try:
        assert db.count("c") == 3001
        got = [r.ids for r in db.search("c", X[:30], k=10, params=SearchParams(exact=True))]
        assert got == want
        assert "rebuilding index from RocksDB" in caplog.text
        db.maintain()  # the ANN index comes back in the background path
        assert db.describe_collection("c").index_state == "built"
    finally:
        db.close()


def test_async_durability_round_trip(tmp_path):
    from vecdb import Database, DatabaseOptions
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(durability="async", background=False))
    db.create_collection("c", 2)
    db.upsert("c", ["a"], [[1, 2]])
    db.close()
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(background=False))
    assert db.count("c") == 1
    db.close()


def test_background_thread_builds_and_checkpoints(tmp_path):
    import time
    from vecdb import Database, DatabaseOptions
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(checkpoint_interval_s=0.2))
    try:
        db.create_collection("c", 8, index="ivf_flat", index_params={"build_threshold": 300})
        X = clustered(1000, 8)
        db.upsert("c", [str(i) for i in range(1000)], X)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            d = db.describe_collection("c")
            if d.index_state == "built" and d.shards[0].checkpoint_seq == d.shards[0].applied_seq:
                break
            time.sleep(0.1)
        assert d.index_state == "built" and d.shards[0].checkpoint_seq == 1
        assert db.search("c", X[:1], k=1)[0].ids == ["0"]
    finally:
        db.close()


def test_checkpoint_streams_files_with_checksums_and_reports_disk_full(db, reopen, tmp_path):
    import errno
    import json
    import zlib

    import faiss

    from vecdb import checkpoint
    db.create_collection("c", 16, index="hnsw", index_params={"build_threshold": 500})
    fill(db)
    db.maintain()
    db.checkpoint()
    [ckpt] = glob.glob(os.path.join(db.path, "collections", "*", "shard-0", "ckpt-*"))
    with open(os.path.join(ckpt, "meta.json")) as f:
        meta = json.load(f)
    # HNSW holds the vectors once: the records; the checkpoint the graph without them
    assert set(meta["files"]) == {"ann.graph", "ids.npy", "dead.npy", "tombstones.npy"}
    for name, spec in meta["files"].items():
        with open(os.path.join(ckpt, name), "rb") as f:
            data = f.read()
        assert (len(data), zlib.crc32(data)) == (spec["size"], spec["crc32"])
    shard = db.collections["c"].shards[0]
    graph = str(tmp_path / "graph.faiss")
    faiss.write_index(shard.ann.index.index, graph, faiss.IO_FLAG_SKIP_STORAGE)
    with open(os.path.join(ckpt, "ann.graph"), "rb") as f, open(graph, "rb") as g:
        assert f.read() == g.read()
    # a full disk under the streamed write surfaces as the file's own OSError
    with pytest.raises(OSError) as err:
        checkpoint._write_index("/dev/full", shard.ann.index)
    assert err.value.errno == errno.ENOSPC
    # a dump a crash left behind is never loaded, and the next checkpoint replaces it
    os.makedirs(os.path.join(os.path.dirname(ckpt), checkpoint.PENDING, "exact.faiss"))
    db.upsert("c", ["late"], clustered(1, 16, seed=5))
    db.checkpoint()
    db = reopen(db)
    try:
        assert db.count("c") == 3001 and db.describe_collection("c").index_state == "built"
        assert not os.path.exists(os.path.join(os.path.dirname(ckpt), checkpoint.PENDING))
    finally:
        db.close()


def test_a_commit_interrupted_before_its_rename_is_completed_on_open(db, reopen, caplog):
    """Crash after a same-seq checkpoint was removed but before the pending one (complete:
    meta.json is written last) was renamed: the pending one is used, not a rebuild."""
    from vecdb import checkpoint
    db.create_collection("c", 16, index="hnsw", index_params={"build_threshold": 500})
    fill(db)
    db.maintain()
    db.checkpoint()
    [ckpt] = glob.glob(os.path.join(db.path, "collections", "*", "shard-0", "ckpt-*"))
    db.close()
    os.rename(ckpt, os.path.join(os.path.dirname(ckpt), checkpoint.PENDING))
    caplog.set_level(logging.INFO)
    db = reopen(db)
    try:
        assert "completed the interrupted checkpoint" in caplog.text
        assert "rebuilding index from RocksDB" not in caplog.text
        assert os.path.isdir(ckpt)
        assert db.count("c") == 3000 and db.describe_collection("c").index_state == "built"
    finally:
        db.close()
