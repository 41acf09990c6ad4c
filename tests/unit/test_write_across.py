"""Database.upsert_across: one batch over several collections of one configuration in one
RocksDB write (a cluster node's shard copies are collections of their own)."""
import numpy as np
import pytest

from vecdb.errors import InvalidArgument

NAMES = ["s0", "s1", "s2"]


@pytest.fixture
def shards(db):
    for n in NAMES:
        db.create_collection(n, 4, metric="l2")
    return db


def _batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    return ids, rng.standard_normal((n, 4)).astype(np.float32), [{"i": i} for i in range(n)]


def test_each_collection_gets_its_rows_durably(shards, reopen):
    ids, vecs, pays = _batch(9)
    parts = {"s0": [0, 3, 6], "s1": [1, 4, 7, 8], "s2": [2, 5]}
    texts = [f"t{i}" for i in range(9)]
    got = shards.upsert_across(parts, ids, vecs, pays, texts, ttl=[None] * 8 + [3600])
    assert {n: r.count for n, r in got.items()} == {"s0": 3, "s1": 4, "s2": 2}
    assert all(list(r.seqs.values()) == [1] for r in got.values())  # one WAL entry each
    db = reopen(shards)  # recovered from what the one write made durable
    try:
        for name, rows in parts.items():
            points = db.get(name, [ids[j] for j in rows], with_vector=True)
            assert [p.id for p in points] == [ids[j] for j in rows]
            for p, j in zip(points, rows):
                np.testing.assert_array_equal(p.vector, vecs[j])
                assert p.payload == {"i": j} and p.text == f"t{j}"
            assert db.count(name) == len(rows)
        assert set(db.expiry_of("s1", ["p8", "p7"])) == {"p8"}
        [res] = db.search_across(NAMES, [vecs[5]], k=1)
        assert res.ids[0] == "p5"
    finally:
        db.close()


def test_a_bad_row_writes_nothing_anywhere(shards):
    ids, vecs, pays = _batch(6)
    pays[4] = {"x": float("nan")}  # not JSON: the whole batch is refused
    with pytest.raises(InvalidArgument) as err:
        shards.upsert_across({"s0": [0, 1], "s1": [2, 3], "s2": [4, 5]}, ids, vecs, pays)
    assert err.value.field == "payloads"
    assert all(shards.count(n) == 0 for n in NAMES)
    assert all(s.applied_seq == 0 for n in NAMES
               for s in shards.describe_collection(n).shards)
    with pytest.raises(InvalidArgument) as err:
        shards.upsert_across({"s0": [0, 1, 2], "s1": [3, 4, 5]}, ids, vecs[:, :3], pays)
    assert err.value.field == "vectors" and shards.count("s0") == 0


def test_parts_must_cover_the_batch_once_and_collections_must_match(shards):
    ids, vecs, pays = _batch(4)
    for parts in ({"s0": [0, 1], "s1": [2]}, {"s0": [0, 1, 2], "s1": [2, 3]},
                  {"s0": [0, 1], "s1": [2, 4]}, {"s0": [-1, 1], "s1": [2, 3]}):
        with pytest.raises(InvalidArgument) as err:
            shards.upsert_across(parts, ids, vecs, pays)
        assert err.value.field == "ids"
    shards.create_collection("wide", 8, metric="l2")
    with pytest.raises(InvalidArgument) as err:
        shards.upsert_across({"s0": [0, 1], "wide": [2, 3]}, ids, vecs, pays)
    assert err.value.field == "collections"
    assert shards.count("s0") == 0
