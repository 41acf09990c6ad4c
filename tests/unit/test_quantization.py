"""Quantized collections (vecdb/quant.py, vecdb/quant_store.py): recall per mode against
exact search, no full-precision copy in RAM, filters, deletes and compaction, restarts,
snapshots, and the INVALID_ARGUMENT answers naming quantization/rescore."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests.quant_data import embeddings
from vecdb import Database, DatabaseOptions, SearchParams
from vecdb.errors import InvalidArgument
from vecdb.quant_store import VectorFile
from vecdb.types import RESCORE_DEFAULTS

N, DIM, K = 20_000, 256, 10
MODES = [("sq8", "hnsw"), ("sq8", "auto"), ("rabitq", "auto"), ("binary", "auto")]


@pytest.fixture(scope="module")
def data():
    return embeddings(N, DIM, seed=0), embeddings(200, DIM, seed=1)


def open_db(path) -> Database:
    return Database.open(str(path), DatabaseOptions(background=False))


def fill(db: Database, name: str, base: np.ndarray) -> None:
    ids = [f"p{i}" for i in range(len(base))]
    pays = [{"group": f"g{i % 7}", "n": i} for i in range(len(base))]
    for lo in range(0, len(base), 5000):
        db.upsert(name, ids[lo:lo + 5000], base[lo:lo + 5000], pays[lo:lo + 5000])
    db.maintain()  # builds the quantized index (background off)


def truth(base: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None):
    rows = np.arange(len(base)) if rows is None else rows
    scores = queries @ base[rows].T
    return [[f"p{rows[j]}" for j in np.argsort(-s, kind="stable")[:k]] for s in scores]


def recall(results, expected) -> float:
    return float(np.mean([len(set(r.ids) & set(e)) / len(e) for r, e in zip(results, expected)]))


@pytest.mark.parametrize("quantization,index", MODES)
def test_recall_at_defaults_and_codes_only_in_ram(db, data, quantization, index):
    base, queries = data
    db.create_collection("q", DIM, "cosine", index, {"build_threshold": 1000},
                         quantization=quantization)
    fill(db, "q", base)
    desc = db.describe_collection("q")
    assert desc.index_state == "built" and desc.config.quantization == quantization
    assert desc.config.rescore_factor == RESCORE_DEFAULTS[quantization]
    shard = db.collections["q"].shards[0]
    assert isinstance(shard.exact, VectorFile)  # the float32 vectors are on disk
    assert desc.memory_bytes < N * DIM * 4 * 0.6  # far below the float32 vectors alone
    expected = truth(base, queries, K)
    exact = db.search("q", queries, K, SearchParams(exact=True), with_payload=False)
    assert recall(exact, expected) == 1.0
    approx = db.search("q", queries, K, with_payload=False)
    assert recall(approx, expected) >= 0.95
    # re-scored from the full-precision vectors: the scores are exact
    np.testing.assert_allclose(approx[0].scores, [queries[0] @ base[int(p[1:])] for p in approx[0].ids],
                               rtol=1e-4, atol=1e-5)
    # rescore 1 = no oversampling: recall drops for the coarse codes (the factor is used)
    db.create_collection("r1", DIM, "cosine", index, {"build_threshold": 1000},
                         quantization=quantization, rescore=1)
    fill(db, "r1", base)
    low = recall(db.search("r1", queries, K, with_payload=False), expected)
    if quantization != "sq8":
        assert low < recall(approx, expected)


def test_full_precision_collection_is_unchanged(db, data):
    base, queries = data
    db.create_collection("f", DIM, "cosine", "hnsw", {"build_threshold": 1000})
    fill(db, "f", base[:5000])
    shard = db.collections["f"].shards[0]
    assert not isinstance(shard.exact, VectorFile) and shard.ann.quant == ""
    assert "quantization" not in db.list_collections()[0].to_dict()  # catalog as before
    db.checkpoint()
    assert sorted(os.listdir(os.path.join(shard.dir, os.listdir(shard.dir)[0]))) == \
        ["ann.graph", "dead.npy", "ids.npy", "meta.json", "tombstones.npy"]  # the records hold the vectors
    assert not [n for n in os.listdir(shard.dir) if n.startswith("vectors-")]
    # the graph's float storage (the one copy of the vectors) is counted
    assert db.describe_collection("f").memory_bytes > 5000 * DIM * 4


@pytest.mark.parametrize("quantization,index", [("sq8", "auto"), ("binary", "auto")])
def test_filters_on_quantized_collections(db, data, quantization, index):
    base, queries = data
    db.create_collection("q", DIM, "cosine", index, {"build_threshold": 1000},
                         quantization=quantization, payload_indexes={"group": "keyword"})
    fill(db, "q", base)
    n = np.arange(N)
    for flt, rows in [({"must": [{"key": "group", "match": "g3"}]}, n[n % 7 == 3]),  # index
                      ({"must": [{"key": "n", "range": {"lt": 15000}}]}, n[n < 15000]),  # scan
                      ({"must": [{"key": "n", "range": {"lt": 300}}]}, n[n < 300])]:  # prefilter
        expected = truth(base, queries, K, rows)
        allowed = {f"p{r}" for r in rows}
        exact = db.search("q", queries, K, SearchParams(exact=True), filter=flt, with_payload=False)
        assert [r.ids for r in exact] == expected
        approx = db.search("q", queries, K, filter=flt, with_payload=False)
        assert all(set(r.ids) <= allowed and len(r.ids) == K for r in approx)
        assert recall(approx, expected) >= 0.95
    got = db.range_search("q", queries[:3], 0.9, filter={"must": [{"key": "group", "match": "g1"}]},
                          with_payload=False)
    rows = n[n % 7 == 1]
    for q, r in zip(queries[:3], got):
        assert sorted(r.ids) == sorted(f"p{j}" for j in rows[base[rows] @ q > 0.9])


def test_deletes_replacements_compaction_and_restart(tmp_path, data):
    base, queries = data
    path = tmp_path / "d"
    db = open_db(path)
    shard_dir = None
    try:
        db.create_collection("q", DIM, "cosine", "hnsw", {"build_threshold": 1000}, quantization="sq8")
        fill(db, "q", base[:8000])
        db.checkpoint()
        shard_dir = db.collections["q"].shards[0].dir
        # replace a quarter, delete over half: compaction rewrites the vector file
        db.upsert("q", [f"p{i}" for i in range(2000)], base[10_000:12_000])
        db.delete("q", [f"p{i}" for i in range(2000, 7000)])
        gen_before = db.collections["q"].shards[0].exact.gen
        db.checkpoint()
        vf = db.collections["q"].shards[0].exact
        assert vf.gen > gen_before and vf.rows == vf.ntotal == 3000
        assert [n for n in os.listdir(shard_dir) if n.startswith("vectors-")] == [f"vectors-{vf.gen:08d}.f32"]
        db.upsert("q", ["late"], base[15_000:15_001])  # only in the WAL after the checkpoint
    finally:
        db.close()
    live_rows = np.r_[10_000:12_000, 7000:8000, 15_000:15_001]
    live_ids = [f"p{i}" for i in range(2000)] + [f"p{i}" for i in range(7000, 8000)] + ["late"]
    vecs = base[live_rows]
    for reopen in range(2):
        db = open_db(path)
        try:
            assert db.count("q") == 3001
            for exact in (True, False):
                res = db.search("q", vecs[::50], 1, SearchParams(exact=exact), with_payload=False)
                assert [r.ids[0] for r in res] == live_ids[::50]
            got = db.get("q", ["p0", "p2500", "late"], with_vector=True)
            assert {p.id for p in got} == {"p0", "late"}
            if reopen == 0:  # a torn tail (rows past the checkpoint) is cut back and replayed
                vf = db.collections["q"].shards[0].exact
                with open(vf.path, "ab") as f:
                    f.write(b"\x01" * 100)
        finally:
            db.close()


def test_missing_vector_file_rebuilds_from_rocksdb(tmp_path, data):
    base, queries = data
    path = tmp_path / "d"
    db = open_db(path)
    db.create_collection("q", DIM, "cosine", "auto", {"build_threshold": 1000}, quantization="rabitq")
    fill(db, "q", base[:4000])
    db.checkpoint()
    vf_path = db.collections["q"].shards[0].exact.path
    db.close()
    os.unlink(vf_path)
    db = open_db(path)
    try:
        res = db.search("q", base[:4000:100], 1, SearchParams(exact=True), with_payload=False)
        assert [r.ids[0] for r in res] == [f"p{i}" for i in range(0, 4000, 100)]
    finally:
        db.close()


def test_snapshot_and_restore_of_a_quantized_collection(db, data):
    base, queries = data
    db.create_collection("q", DIM, "cosine", "hnsw", {"build_threshold": 1000}, quantization="binary")
    fill(db, "q", base[:6000])
    db.checkpoint()
    before = db.search("q", queries, K, with_payload=False)
    snap = db.create_snapshot("q")
    db.upsert("q", ["after"], base[7000:7001])  # not in the snapshot
    desc = db.restore_snapshot(snap.name, "copy")
    assert desc.config.quantization == "binary" and desc.points == 6000
    db.maintain()
    after = db.search("copy", queries, K, with_payload=False)
    assert recall(after, [r.ids for r in before]) >= 0.95
    assert recall(after, truth(base[:6000], queries, K)) >= 0.95
    assert db.get("copy", ["after"]) == []


@pytest.mark.parametrize("kwargs,field", [
    ({"quantization": "pq4"}, "quantization"),
    ({"quantization": "sq8", "index": "flat"}, "quantization"),
    ({"quantization": "sq8", "index": "ivf_pq"}, "quantization"),
    ({"quantization": "binary", "index": "ivf_flat"}, "quantization"),
    ({"quantization": "rabitq", "index": "hnsw"}, "quantization"),
    ({"rescore": 4}, "rescore"),
    ({"quantization": "sq8", "rescore": -1}, "rescore"),
    ({"quantization": "sq8", "rescore": 2.5}, "rescore"),
    ({"quantization": "sq8", "rescore": True}, "rescore"),
])
def test_bad_options_name_the_field_and_write_nothing(db, kwargs, field):
    with pytest.raises(InvalidArgument) as ei:
        db.create_collection("bad", 8, **kwargs)
    assert ei.value.field == field
    assert db.list_collections() == []


def test_analytics_read_the_on_disk_vectors(db, data):
    base, _ = data
    for name, quant in (("f", None), ("q", "sq8")):
        db.create_collection(name, DIM, "cosine", "hnsw", {"build_threshold": 1000}, quantization=quant)
        fill(db, name, base[:3000])
    db.delete("q", ["p5"])
    db.delete("f", ["p5"])
    for flt in (None, {"must": [{"key": "group", "match": "g2"}]}):
        got = [db.outliers(name, n=5, filter=flt, with_payload=False) for name in ("f", "q")]
        assert [o.id for o in got[0].outliers] == [o.id for o in got[1].outliers]
        assert got[0].population == got[1].population


def test_close_releases_the_vector_file_handles(tmp_path, data):
    """Database.close() closes each quantized shard's vector file (embedded mode and the
    cluster's scratch databases open and close databases many times)."""
    base, _ = data
    path = tmp_path / "d"

    def open_vector_files() -> int:
        fds = os.listdir("/proc/self/fd")
        return sum(1 for f in fds if os.path.realpath(f"/proc/self/fd/{f}").startswith(str(path))
                   and os.path.realpath(f"/proc/self/fd/{f}").endswith(".f32"))
    db = open_db(path)
    db.create_collection("q", DIM, "cosine", "hnsw", {"build_threshold": 1000}, shards=2,
                         quantization="sq8")
    fill(db, "q", base[:2000])
    assert open_vector_files() == 2
    db.close()
    for _ in range(3):
        open_db(path).close()
    assert open_vector_files() == 0
    db = open_db(path)
    db.drop_collection("q")  # released at the drop, then again (idempotent) at close
    db.close()
    assert open_vector_files() == 0
