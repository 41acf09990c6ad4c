"""Bytes on disk: a checkpoint deletes the WAL entries it covers and, after a bulk load,
compacts their range, so RocksDB holds the vectors once (the point records), not twice."""
import glob
import os

import numpy as np
import pytest

import vecdb.shard
from tests.conftest import clustered

N, DIM = 4000, 128  # 2 MB of vectors


def sst_bytes(db) -> int:
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(db.path, "rocksdb", "*.sst")))


def load(db):
    db.create_collection("c", DIM, index="flat")
    X = clustered(N, DIM, seed=3)
    for lo in range(0, N, 500):
        db.upsert("c", [f"p{i}" for i in range(lo, lo + 500)], X[lo:lo + 500])
    db.store.db.flush()  # in files, as a load larger than the memtable is
    db.checkpoint()
    return X


@pytest.mark.parametrize("threshold,most", [(1 << 20, 1.25), (1 << 40, None)])
def test_a_bulk_load_keeps_its_vectors_once_in_rocksdb(db, monkeypatch, threshold, most):
    monkeypatch.setattr(vecdb.shard, "WAL_COMPACT_BYTES", threshold)  # the knob, not a fake
    X = load(db)
    db.store.db.flush()  # what RocksDB holds in files, memtable included
    vectors = X.nbytes
    if most is not None:
        assert sst_bytes(db) <= most * vectors
    else:  # without the compaction the deleted WAL entries still take their space
        assert sst_bytes(db) >= 1.6 * vectors
    got = db.get("c", ["p0", f"p{N - 1}"], with_vector=True)
    np.testing.assert_array_equal(np.stack([p.vector for p in got]), X[[0, N - 1]])
