"""On-disk collections (vecdb/ondisk.py): recall against numpy brute force on clustered
data, the lists in a mapped file (not in the process's heap), merges of the in-RAM delta
with deletes as tombstones, filters, get-with-vector, reopen, a lost checkpoint rebuilt
by streaming, snapshot/restore, and the INVALID_ARGUMENT answers naming on_disk."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.quant_data import embeddings
from vecdb import Database, DatabaseOptions, SearchParams, ondisk
from vecdb.errors import InvalidArgument
from vecdb.types import IndexSpec

N, DIM, K = 9000, 32, 10
PARAMS = {"build_threshold": 1000, "nprobe": 16}


@pytest.fixture(scope="module")
def data():
    return embeddings(N, DIM, seed=0, latent=8, clusters=64), \
        embeddings(100, DIM, seed=1, latent=8, clusters=64)


@pytest.fixture
def merge_always(monkeypatch):
    """Every maintain() merges a non-empty delta (ondisk_delta_mb 0; the ratio to the base
    is set aside too)."""
    monkeypatch.setattr(ondisk, "DELTA_RATIO", 0.0)


def open_db(path) -> Database:
    return Database.open(str(path), DatabaseOptions(background=False, ondisk_delta_mb=0))


def fill(db: Database, name: str, base: np.ndarray, start: int = 0) -> None:
    ids = [f"p{i}" for i in range(start, start + len(base))]
    for lo in range(0, len(base), 2000):
        db.upsert(name, ids[lo:lo + 2000], base[lo:lo + 2000],
                  [{"g": (start + lo + j) % 3} for j in range(len(base[lo:lo + 2000]))])
        db.maintain()


def truth(base: np.ndarray, queries: np.ndarray, rows: np.ndarray) -> list[list[str]]:
    scores = queries @ base[rows].T
    return [[f"p{rows[j]}" for j in np.argsort(-s, kind="stable")[:K]] for s in scores]


def recall(results, expected) -> float:
    return float(np.mean([len(set(r.ids) & set(e)) / K for r, e in zip(results, expected)]))


def check(db: Database, name: str, base, queries, live: np.ndarray) -> None:
    expected = truth(base, queries, live)
    assert recall(db.search(name, queries, K, SearchParams(exact=True), with_payload=False),
                  expected) == 1.0
    got = db.search(name, queries, K, with_payload=False)
    assert recall(got, expected) >= 0.95
    alive = {f"p{i}" for i in live}
    assert all(set(r.ids) <= alive for r in got)
    g1 = live[live % 3 == 1]
    filtered = db.search(name, queries, K, filter={"key": "g", "match": 1}, with_payload=False)
    assert recall(filtered, truth(base, queries, g1)) >= 0.95
    assert db.count(name) == len(live)


def test_recall_merges_deletes_and_reopen(tmp_path, data, merge_always):
    base, queries = data
    path = str(tmp_path / "data")
    db = open_db(path)
    db.create_collection("d", DIM, "cosine", "auto", PARAMS, on_disk=True)
    assert db.describe_collection("d").config.on_disk
    fill(db, "d", base[:4000])
    shard = db.collections["d"].shards[0]
    assert isinstance(shard.ann, ondisk.DiskIvf) and shard.ann.base.ntotal > 0
    nlist = shard.ann.base.nlist  # nlist auto, trained on the first 2,000
    # the lists are a mapped file, not heap: describe counts the delta and the quantizer only
    assert db.describe_collection("d").memory_bytes < 4000 * DIM * 4 / 4
    gone = np.arange(0, 4000, 7)
    db.delete("d", [f"p{i}" for i in gone])
    fill(db, "d", base[4000:], start=4000)  # merges: tombstones dropped, delta folded in
    assert not shard.ann.tombstones and shard.ann.gen > 1
    assert shard.ann.base.nlist > nlist  # past 4x the points trained on: lists retrained
    live = np.setdiff1d(np.arange(N), gone)
    check(db, "d", base, queries, live)
    db.upsert("d", ["p8999"], base[8999:])  # again, into the delta
    db.delete("d", ["p1", "p8999"])  # after the last merge: a base tombstone and a delta label
    live = np.setdiff1d(live, [1, 8999])
    got = {p.id: p for p in db.get("d", ["p2", "p1"], with_vector=True)}
    assert set(got) == {"p2"}
    np.testing.assert_allclose(got["p2"].vector, base[2], rtol=1e-6)
    check(db, "d", base, queries, live)
    db.close()
    db = open_db(path)
    shard = db.collections["d"].shards[0]
    assert isinstance(shard.ann, ondisk.DiskIvf)
    assert ondisk._gens(shard.dir) == [shard.ann.gen]  # older generations deleted
    check(db, "d", base, queries, live)
    # a lost checkpoint: the base is streamed again from RocksDB's vectors
    for name in os.listdir(shard.dir):
        if name.startswith("ckpt-"):
            shutil.rmtree(os.path.join(shard.dir, name))
    db.close()
    for name in os.listdir(shard.dir):
        if name.startswith("ckpt-"):  # close wrote one again: remove it too
            shutil.rmtree(os.path.join(shard.dir, name))
    db = open_db(path)
    assert isinstance(db.collections["d"].shards[0].ann, ondisk.DiskIvf)
    check(db, "d", base, queries, live)
    db.close()


def test_snapshot_and_restore(tmp_path, data, merge_always):
    base, queries = data
    db = open_db(tmp_path / "data")
    db.create_collection("d", DIM, "l2", "ivf_flat", PARAMS, on_disk=True)
    fill(db, "d", base[:3000])
    db.upsert("d", ["late"], base[3000:3001])  # in the delta, not merged
    snap = db.create_snapshot("d")
    db.delete("d", ["p0"])  # not in the snapshot
    desc = db.restore_snapshot(snap.name, "copy")
    assert desc.config.on_disk and desc.points == 3001
    live = np.arange(3000)
    dist = ((queries[:, None, :] - base[None, live]) ** 2).sum(-1)
    expected = [[f"p{live[j]}" for j in np.argsort(d, kind="stable")[:K]] for d in dist]
    got = db.search("copy", queries, K, with_payload=False)
    assert recall(got, expected) >= 0.95
    assert {p.id for p in db.get("copy", ["late", "p0"])} == {"late", "p0"}
    db.close()


@pytest.mark.parametrize("kwargs,why", [
    ({"index": "hnsw"}, "ivf_flat or auto"),
    ({"index": "flat"}, "ivf_flat or auto"),
    ({"quantization": "sq8"}, "quantization"),
    ({"on_disk": "yes"}, "true or false"),
])
def test_bad_options_name_on_disk(db, kwargs, why):
    args = {"index": "auto", "on_disk": True, **kwargs}
    with pytest.raises(InvalidArgument) as e:
        db.create_collection("bad", DIM, **args)
    assert e.value.field == "on_disk" and why in str(e.value)
    assert "bad" not in [c.name for c in db.list_collections()]


@pytest.mark.parametrize("value", [1.5, "8", True, -1])
def test_bad_ondisk_delta_mb_names_the_field(value):
    with pytest.raises(InvalidArgument) as err:
        DatabaseOptions(ondisk_delta_mb=value)
    assert err.value.field == "ondisk_delta_mb"


def test_stream_writes_each_vector_once_into_its_nearest_list(tmp_path, data):
    """A retrain's base (ondisk.stream): every vector of the chunks once, under its label,
    in the list of its nearest centroid, in a file of exactly one copy of the lists."""
    base = data[0][:6000]
    chunks = lambda: ((np.arange(lo, lo + 1500, dtype=np.int64) * 3, base[lo:lo + 1500])  # noqa: E731
                      for lo in range(0, 6000, 1500))
    ann = ondisk.stream(str(tmp_path), IndexSpec("ivf_flat", {"nlist": 24}), "ip", DIM,
                        6000, chunks)
    ivf = ann.base
    ids, vecs, where = [], [], []
    for lst, (i, v) in enumerate(ondisk.lists(ivf.invlists, DIM)):
        ids.append(i)
        vecs.append(v)
        where.append(np.full(len(i), lst))
    ids, vecs, where = np.concatenate(ids), np.concatenate(vecs), np.concatenate(where)
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], np.arange(6000) * 3)
    np.testing.assert_array_equal(vecs[order], base)
    np.testing.assert_array_equal(where[order], ivf.quantizer.assign(base, 1).ravel())
    assert ann.base_max == 5999 * 3 and ann.trained_on == 6000
    data_file = os.path.join(str(tmp_path), ondisk.file_names(ann.gen)[1])
    assert os.path.getsize(data_file) == 6000 * (DIM * 4 + 8)
    assert sorted(os.listdir(tmp_path)) == sorted(ondisk.file_names(ann.gen))
