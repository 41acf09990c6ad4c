"""The in-RAM id column (vecdb/id_column.py): hits' ids and plain flags without RocksDB,
never stale after deletes, replacements and payload rewrites."""
import numpy as np

from vecdb import records
from vecdb.id_column import IdColumn


def _rec(pid: str, payload: bytes | None = None, text: bytes | None = None) -> bytes:
    return records.encode(pid.encode(), payload, text)


def test_learn_lookup_forget_merge():
    col = IdColumn()
    labels = list(range(1, 3001))  # past the merge threshold: arrays and pending both used
    ids = {lab: f"id-{lab}-ü" * (1 + lab % 3) for lab in labels}
    plain = {lab: lab % 2 == 0 for lab in labels}
    for lo in range(0, 3000, 700):
        chunk = labels[lo:lo + 700]
        col.learn(chunk, [_rec(ids[lab], None if plain[lab] else b'{"a":1}') for lab in chunk],
                  col.epoch)
    ask = np.array([5, 3000, 4000, 0, 17, 17], np.int64)
    got, known = col.lookup(ask, False)
    assert got == [ids[5], ids[3000], None, None, ids[17], ids[17]]
    assert known == [True, True, False, False, True, True]
    got, known = col.lookup(ask, True)  # with payloads: answered for the plain ones only
    assert got == [None, ids[3000], None, None, None, None]
    assert known == [True, True, False, False, True, True]
    col.forget(np.array([5, 2999, 3000]))
    got, _ = col.lookup(np.array([5, 2999, 3000, 6], np.int64), False)
    assert got == [None, None, None, ids[6]]
    col.learn(list(range(3001, 4500)), [_rec(f"n{lab}") for lab in range(3001, 4500)], col.epoch)
    ask = np.array([4499, 5, 1, 2998], np.int64)
    assert col.lookup(ask, False)[0] == ["n4499", None, ids[1], ids[2998]]
    assert col.lookup(ask, True)[0] == ["n4499", None, None, ids[2998]]
    before = col.nbytes
    col.forget(np.arange(1, 3001))  # most of the buffer garbage: the next merge rewrites it
    col.learn(list(range(5000, 6100)), [_rec(f"m{lab}") for lab in range(5000, 6100)], col.epoch)
    assert col.nbytes < before
    got, _ = col.lookup(np.array([6099, 4000, 10], np.int64), False)
    assert got == ["m6099", "n4000", None]


def test_with_payloads_and_no_plain_point_known_nothing_is_looked_up():
    col = IdColumn()
    col.learn([1, 2], [_rec("a", b'{"x":1}'), _rec("b", None, b"text")], col.epoch)
    assert col.lookup(np.array([1, 2, 3], np.int64), True) == ([None] * 3, None)
    assert col.lookup(np.array([1, 2, 3], np.int64), False) == (["a", "b", None],
                                                                [True, True, False])
    col.learn([3], [_rec("c")], col.epoch)
    assert col.lookup(np.array([1, 3], np.int64), True) == ([None, "c"], [True, True])


def test_a_read_overlapping_a_forget_is_not_learned():
    col = IdColumn()
    epoch = col.epoch
    col.forget([7])  # e.g. label 7 deleted while its record was being read
    col.learn([7], [_rec("x")], epoch)
    assert col.lookup(np.array([7], np.int64), False)[0] == [None]
    col.learn([7], [_rec("x")], col.epoch)
    assert col.lookup(np.array([7], np.int64), False)[0] == ["x"]


def _labels_of(db, name, ids):
    return db.collections[name].shards[0].labels_of(ids)


def test_search_ids_from_the_column_follow_writes(db):
    db.create_collection("c", 2, metric="l2")
    db.upsert("c", ["a", "b", "c"], [[0, 0], [1, 0], [5, 5]], texts=[None, None, "t"])
    shard = db.collections["c"].shards[0]
    [r] = db.search("c", [[0, 0]], k=3, with_payload=False)
    assert r.ids == ["a", "b", "c"]
    la, lb, lc = _labels_of(db, "c", ["a", "b", "c"])
    assert shard.id_column.lookup(np.array([la, lb, lc], np.int64), True) == (
        ["a", "b", None], [True, True, True])  # "c" has a text: read for it
    db.upsert("c", ["a"], [[0.1, 0]], [{"k": 1}])  # replaced: a new label, the old forgotten
    assert shard.id_column.lookup(np.array([la], np.int64), False)[0] == [None]
    [r] = db.search("c", [[0, 0]], k=3)
    assert r.ids == ["a", "b", "c"] and r.payloads == [{"k": 1}, None, None]
    assert r.texts == [None, None, "t"]
    db.delete("c", ["b"])
    assert shard.hydrate(np.array([lb], np.int64), False, False)[0] == [""]  # gone: ""
    [r] = db.search("c", [[0, 0]], k=3, with_payload=False)
    assert r.ids == ["a", "c"]


def test_a_payload_written_in_place_is_read_after_a_plain_hit(db):
    """set_payloads (analytics write_label) rewrites records under the same label: the
    column must not keep answering "no payload" for it."""
    db.create_collection("c", 2, metric="l2")
    db.upsert("c", ["a", "b"], [[0, 0], [1, 0]])
    [r] = db.search("c", [[0, 0]], k=2)
    assert r.payloads == [None, None]
    coll = db.collections["c"]
    [la] = _labels_of(db, "c", ["a"])
    assert coll.set_payloads(0, np.array([la], np.int64),
                             lambda labs, ids, pays: [{"cluster": 3}]) == [la]
    [r] = db.search("c", [[0, 0]], k=2)
    assert r.ids == ["a", "b"] and r.payloads == [{"cluster": 3}, None]
    [r] = db.search("c", [[0, 0]], k=2, with_payload=False)
    assert r.ids == ["a", "b"] and r.payloads is None


def test_ids_only_batch_over_shards_keeps_every_hit(db):
    db.create_collection("s", 2, metric="l2", shards=3)
    n = 60
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((n, 2)).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    db.upsert("s", ids, vecs)
    q = rng.standard_normal((20, 2)).astype(np.float32)
    with_p = db.search("s", q, k=7)
    ids_only = db.search("s", q, k=7, with_payload=False)
    again = db.search("s", q, k=7, with_payload=False)  # all from the column now
    assert [r.ids for r in ids_only] == [r.ids for r in with_p] == [r.ids for r in again]
    d = ((vecs[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    assert [r.ids for r in again] == [[ids[j] for j in np.argsort(row, kind="stable")[:7]]
                                      for row in d]
