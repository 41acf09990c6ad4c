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
    got, pl = col.lookup(ask)
    assert got == [ids[5], ids[3000], None, None, ids[17], ids[17]]
    assert pl == [False, True, False, False, False, False]
    col.forget(np.array([5, 2999, 3000]))
    got, _ = col.lookup(np.array([5, 2999, 3000, 6], np.int64))
    assert got == [None, None, None, ids[6]]
    col.learn(list(range(3001, 4500)), [_rec(f"n{lab}") for lab in range(3001, 4500)], col.epoch)
    got, pl = col.lookup(np.array([4499, 5, 1, 2998], np.int64))
    assert got == ["n4499", None, ids[1], ids[2998]] and pl == [True, False, False, True]
    before = col.nbytes
    col.forget(np.arange(1, 3001))  # most of the buffer garbage: the next merge rewrites it
    col.learn(list(range(5000, 6100)), [_rec(f"m{lab}") for lab in range(5000, 6100)], col.epoch)
    assert col.nbytes < before
    got, _ = col.lookup(np.array([6099, 4000, 10], np.int64))
    assert got == ["m6099", "n4000", None]


def test_a_read_overlapping_a_forget_is_not_learned():
    col = IdColumn()
    epoch = col.epoch
    col.forget([7])  # e.g. label 7 deleted while its record was being read
    col.learn([7], [_rec("x")], epoch)
    assert col.lookup(np.array([7], np.int64))[0] == [None]
    col.learn([7], [_rec("x")], col.epoch)
    assert col.lookup(np.array([7], np.int64))[0] == ["x"]


def _labels_of(db, name, ids):
    return db.collections[name].shards[0].labels_of(ids)


def test_search_ids_from_the_column_follow_writes(db):
    db.create_collection("c", 2, metric="l2")
    db.upsert("c", ["a", "b", "c"], [[0, 0], [1, 0], [5, 5]], texts=[None, None, "t"])
    shard = db.collections["c"].shards[0]
    [r] = db.search("c", [[0, 0]], k=3, with_payload=False)
    assert r.ids == ["a", "b", "c"]
    la, lb, lc = _labels_of(db, "c", ["a", "b", "c"])
    assert shard.id_column.lookup(np.array([la, lb, lc], np.int64)) == (
        ["a", "b", "c"], [True, True, False])  # "c" has a text
    db.upsert("c", ["a"], [[0.1, 0]], [{"k": 1}])  # replaced: a new label, the old forgotten
    assert shard.id_column.lookup(np.array([la], np.int64))[0] == [None]
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
