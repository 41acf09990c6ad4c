"""On-disk merges write exactly the live entries: after deletes clustered in a few lists
(tombstones emptying most of them), every entry of the new base generation is the vector
RocksDB holds for its label, and exact search equals numpy brute force."""
from __future__ import annotations

import os
import threading

import faiss
import numpy as np
import pytest

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
    with pytest.raises(TypeError):
        shard.exact.snapshot()  # never every vector copied into RAM
    stored = [(ids.copy(), vecs.copy()) for ids, vecs in ondisk.lists(ann.base.invlists, DIM)]
    labels = np.concatenate([ids for ids, _ in stored])
    assert len(labels) == len(np.unique(labels)) == len(base) - len(gone) + 2
    for ids, vecs in stored:
        np.testing.assert_array_equal(vecs, shard._vectors(ids)[0])
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


def test_open_removes_leftovers_and_relinks_a_renumbered_base(tmp_path):
    """Open removes scratch files and generations no checkpoint names (a crash mid-merge);
    a checkpoint naming generation g gets its own base even when another base numbered g
    is in the shard dir (a rebuild restarts the numbering)."""
    rng = np.random.default_rng(5)
    first = rng.random((600, DIM), np.float32)
    path = str(tmp_path / "db")
    db = Database.open(path, DatabaseOptions(background=False))
    db.create_collection("c", DIM, "l2", "ivf_flat", {"build_threshold": 300, "nprobe": 64},
                         on_disk=True)
    db.upsert("c", [f"p{i}" for i in range(600)], first)
    db.maintain()
    shard = db.collections["c"].shards[0]
    gen, directory = shard.ann.gen, shard.dir
    db.close()
    names = ondisk.file_names(gen)
    other = ondisk.file_names(gen + 1)
    for junk in (other[0], other[1], f"scratch-{gen + 1:08d}.ivfdata"):
        open(os.path.join(directory, junk), "wb").write(b"x" * 64)
    # another base numbered gen: a different index over different vectors
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, 4)
    other_vecs = rng.random((50, DIM), np.float32) + 5
    ivf.train(other_vecs)
    ivf.add_with_ids(other_vecs, np.arange(50, dtype=np.int64))
    for name in names:
        os.unlink(os.path.join(directory, name))
    ondisk._write_gen(directory, gen, ivf, [ivf.invlists], set(), 50, 49)
    db = Database.open(path, DatabaseOptions(background=False))
    shard = db.collections["c"].shards[0]
    assert sorted(n for n in os.listdir(directory) if not n.startswith("ckpt-")) == sorted(names)
    assert shard.ann.base.ntotal == 600
    got = db.search("c", first[:5], 1, SearchParams(exact=True), with_payload=False)
    assert [r.ids for r in got] == [[f"p{i}"] for i in range(5)]
    db.close()


def test_reads_of_a_label_rocksdb_dropped_first_come_from_the_lists(tmp_path):
    """A remove committed to RocksDB and waiting for the write lock: reads by label (a
    filtered search's prefilter, recommend, analytics) still get the vector from the
    lists, from the base and from the delta."""
    rng = np.random.default_rng(2)
    vecs = rng.random((602, DIM), np.float32)
    db = Database.open(str(tmp_path), DatabaseOptions(background=False))
    db.create_collection("c", DIM, "l2", "ivf_flat", {"build_threshold": 300}, on_disk=True)
    db.upsert("c", [f"p{i}" for i in range(600)], vecs[:600])
    db.maintain()
    db.upsert("c", ["p600", "p601"], vecs[600:])  # into the delta
    shard = db.collections["c"].shards[0]
    labels = np.array(shard.labels_of(["p3", "p600", "p7"]), np.int64)
    batch = shard.store.batch()
    for key in shard._label_keys(b"v", labels[:2]):
        batch.delete(key)
    shard.store.write(batch)
    np.testing.assert_array_equal(shard.exact.reconstruct_batch(labels), vecs[[3, 600, 7]])
    db.close()
