"""Database.upsert_across: one batch over several collections of one configuration in one
RocksDB write (a cluster node's shard copies are collections of their own)."""
import threading
import time

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


def test_before_write_runs_after_the_checks_and_before_any_write(shards):
    """A cluster primary logs its replication entries in before_write: a batch refused
    for its input must never call it, an accepted one exactly once with nothing written."""
    ids, vecs, pays = _batch(6)
    parts = {"s0": [0, 1], "s1": [2, 3], "s2": [4, 5]}
    seen = []
    bad = list(pays)
    bad[5] = {"x": float("nan")}
    with pytest.raises(InvalidArgument):
        shards.upsert_across(parts, ids, vecs, bad, before_write=lambda: seen.append("bad"))
    with pytest.raises(InvalidArgument):
        shards.upsert_across(parts, ids, vecs[:, :3], pays,
                             before_write=lambda: seen.append("short"))
    assert seen == []
    got = shards.upsert_across(parts, ids, vecs, pays, before_write=lambda: seen.append(
        [shards.count(n) for n in NAMES]))
    assert seen == [[0, 0, 0]]  # called once, before the write
    assert {n: r.count for n, r in got.items()} == {"s0": 2, "s1": 2, "s2": 2}


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


def _in_thread(fn):
    """Run fn in a daemon thread; returns (thread, outcome list: the result or the error)."""
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 - the outcome is what the test inspects
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_a_collection_named_twice_through_an_alias_is_refused(shards):
    shards.create_alias("a0", "s0")
    ids, vecs, pays = _batch(3)
    t, out = _in_thread(lambda: shards.upsert_across({"s0": [0], "a0": [1], "s1": [2]},
                                                     ids, vecs, pays))
    t.join(10)
    assert not t.is_alive(), "upsert_across took s0's write lock twice"
    [err] = out
    assert isinstance(err, InvalidArgument) and err.field == "collections"
    assert "s0" in str(err)
    assert shards.count("s0") == shards.count("s1") == 0  # nothing written
    shards.upsert("s0", ["x"], vecs[:1])  # and no lock left held
    assert shards.count("s0") == 1


def test_locks_are_taken_in_the_order_reembed_takes_them(db):
    """A re-embed holds its source's write lock, then takes its target's (the alias swap);
    the target is created after the source, whatever its name (reembed(target=...)). An
    upsert_across over both must take them in that order too, or the two deadlock."""
    db.create_collection("src", 4, metric="l2")
    db.create_collection("a_tgt", 4, metric="l2")  # sorts before "src" by name
    src, tgt = db.collections["src"], db.collections["a_tgt"]
    ids, vecs, pays = _batch(2)
    with src.write_lock:  # where the swap holds it
        t, out = _in_thread(lambda: db.upsert_across({"a_tgt": [0], "src": [1]}, ids, vecs, pays))
        deadline = time.monotonic() + 0.5  # let it take whatever it takes before src's
        while not tgt.write_lock.locked() and time.monotonic() < deadline:
            time.sleep(0.005)
        took = tgt.write_lock.acquire(timeout=5)  # the swap's next step
        assert took, "upsert_across holds the target's lock while waiting for the source's"
        tgt.write_lock.release()
    t.join(10)
    assert not t.is_alive() and [r.count for r in out[0].values()] == [1, 1]
