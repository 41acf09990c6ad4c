"""On-disk merges write exactly the live entries: after deletes clustered in a few lists
(tombstones emptying most of them), every entry of the new base generation is the vector
RocksDB holds for its label, and exact search equals numpy brute force."""
from __future__ import annotations

import threading

import numpy as np

from vecdb import Database, DatabaseOptions, SearchParams, ondisk

DIM, PER, CLUSTERS = 16, 60, 12


def test_merge_after_clustered_deletes(tmp_path, monkeypatch):
    monkeypatch.setattr(ondisk, "DELTA_RATIO", 0.0)
    rng = np.random.default_rng(3)
    centers = rng.normal(0, 10, (CLUSTERS, DIM)).astype(np.float32)
    base = np.concatenate([c + rng.normal(0, 1, (PER, DIM)).astype(np.float32) for c in centers])
    db = Database.open(str(tmp_path), DatabaseOptions(background=False, ondisk_delta_mb=0))
    db.create_collection("c", DIM, "l2", "ivf_flat", {"build_threshold": 300, "nlist": CLUSTERS,
                                                      "nprobe": CLUSTERS}, on_disk=True)
    db.upsert("c", [f"p{i}" for i in range(len(base))], base)
    db.maintain()
    shard = db.collections["c"].shards[0]
    assert isinstance(shard.ann, ondisk.DiskIvf)
    gen = shard.ann.gen
    # most of three clusters gone (their lists shrink below half), a few new points
    gone = np.concatenate([np.arange(c * PER, c * PER + PER * 4 // 5) for c in (1, 5, 9)])
    db.delete("c", [f"p{i}" for i in gone])
    extra = centers[[1, 5]] + rng.normal(0, 1, (2, DIM)).astype(np.float32)
    db.upsert("c", ["x0", "x1"], extra)
    db.maintain()
    ann = shard.ann
    assert ann.gen > gen and not ann.tombstones and ann.delta.ntotal == 0
    stored = [(ids.copy(), vecs.copy()) for ids, vecs in ondisk.lists(ann.base.invlists, DIM)]
    labels = np.concatenate([ids for ids, _ in stored])
    assert len(labels) == len(np.unique(labels)) == len(base) - len(gone) + 2
    for ids, vecs in stored:
        np.testing.assert_array_equal(vecs, shard._vectors(ids))
    live = np.setdiff1d(np.arange(len(base)), gone)
    keys = [f"p{i}" for i in live] + ["x0", "x1"]
    points = np.concatenate([base[live], extra])
    queries = base[rng.choice(len(base), 20, replace=False)] + 0.1
    got = db.search("c", queries, 10, SearchParams(exact=True), with_payload=False)
    for q, r in zip(queries, got):
        want = [keys[j] for j in np.argsort(((points - q) ** 2).sum(1), kind="stable")[:10]]
        assert r.ids == want
    db.close()


def test_merge_swap_skips_a_label_removed_in_rocksdb_not_yet_in_memory(tmp_path, monkeypatch):
    """An overwrite committed to RocksDB (the old label's vector gone there) while its apply
    waits for the write lock, during the swap of a merge: the replay leaves that label out
    instead of failing the merge."""
    from vecdb import shard as shard_mod
    monkeypatch.setattr(ondisk, "DELTA_RATIO", 0.0)
    rng = np.random.default_rng(0)
    db = Database.open(str(tmp_path), DatabaseOptions(background=False, ondisk_delta_mb=0))
    db.create_collection("c", DIM, "l2", "ivf_flat", {"build_threshold": 300, "nprobe": 8},
                         on_disk=True)
    db.upsert("c", [f"p{i}" for i in range(600)], rng.random((600, DIM), np.float32))
    db.maintain()
    shard = db.collections["c"].shards[0]
    gen = shard.ann.gen
    db.upsert("c", ["x"], rng.random((1, DIM), np.float32))  # a delta: a merge is due
    merged, swap = threading.Event(), threading.Event()
    real_merge, real_apply = ondisk.merge, shard_mod.Shard.apply

    def paused_merge(*args):
        out = real_merge(*args)
        merged.set()
        swap.wait(10)
        return out
    monkeypatch.setattr(ondisk, "merge", paused_merge)
    result = {}
    builder = threading.Thread(target=lambda: result.update(built=shard.build()))
    builder.start()
    merged.wait(10)
    db.upsert("c", ["y"], rng.random((1, DIM), np.float32))  # added during the merge: replayed
    final = rng.random((1, DIM), np.float32)

    def late_apply(self, *args, **kwargs):  # committed; the swap runs before it is applied
        swap.set()
        builder.join(10)
        return real_apply(self, *args, **kwargs)
    monkeypatch.setattr(shard_mod.Shard, "apply", late_apply)
    db.upsert("c", ["y"], final)  # overwrite: RocksDB no longer holds y's first label
    monkeypatch.setattr(shard_mod.Shard, "apply", real_apply)
    builder.join(10)
    assert result == {"built": True} and shard.ann.gen > gen
    got = db.search("c", final, 1, SearchParams(exact=True), with_payload=False)[0]
    assert got.ids == ["y"] and db.count("c") == 602
    db.close()
