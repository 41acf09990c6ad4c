"""Points without the primary vector in a collection with named fields (issue #18: a point
carries any non-empty subset of its fields): per-field exact search against numpy, count,
scroll, get, filters, delete and TTL counting them, rewrites keeping the primary absent,
reopening (WAL replay, checkpoints, a rebuild), and bad input refused with nothing written."""
import shutil
import time

import numpy as np
import pytest

from vecdb import Database, DatabaseOptions
from vecdb.errors import InvalidArgument, NotFound

N = 90
FIELDS = [{"name": "image", "dim": 6, "metric": "ip", "index": "flat"}]


def opts():
    return DatabaseOptions(background=False, search_batch_max=0)


def make(db, shards=2):
    """p0..p89: i % 3 == 0 only image, 1 only the primary (title), 2 both."""
    db.create_collection("c", dim=8, metric="l2", index="flat", shards=shards,
                         vector_name="title", vectors=FIELDS)
    rng = np.random.default_rng(0)
    title = rng.normal(size=(N, 8)).astype("f4")
    image = rng.normal(size=(N, 6)).astype("f4")
    kind = [i % 3 for i in range(N)]
    db.upsert("c", [f"p{i}" for i in range(N)], [None if k == 0 else v for k, v in zip(kind, title)],
              payloads=[{"i": i, "even": i % 2 == 0} for i in range(N)],
              named={"image": [None if k == 1 else v for k, v in zip(kind, image)]})
    return title, image, kind


def ref(vecs, rows, q, k, metric):
    m = vecs[rows]
    s = ((m - q) ** 2).sum(1) if metric == "l2" else -(m @ q)
    return [f"p{rows[j]}" for j in np.argsort(s, kind="stable")[:k]]


def check(db, title, image, kind, gone=()):
    live = [i for i in range(N) if f"p{i}" not in gone]
    q = np.random.default_rng(5).normal(size=8).astype("f4")
    with_title = [i for i in live if kind[i] != 0]
    with_image = [i for i in live if kind[i] != 1]
    assert db.search("c", q, k=10)[0].ids == ref(title, with_title, q, 10, "l2")
    assert db.search("c", q[:6], k=10, using="image")[0].ids == ref(image, with_image, q[:6], 10, "ip")
    flt = {"key": "even", "match": True}
    assert db.search("c", q, k=10, filter=flt)[0].ids == \
        ref(title, [i for i in with_title if i % 2 == 0], q, 10, "l2")
    assert db.search("c", q[:6], k=10, using="image", filter=flt)[0].ids == \
        ref(image, [i for i in with_image if i % 2 == 0], q[:6], 10, "ip")
    assert db.count("c") == len(live)
    assert db.count("c", filter=flt) == sum(i % 2 == 0 for i in live)
    assert sorted(p.id for p in db.scroll("c", limit=1000).points) == sorted(f"p{i}" for i in live)
    assert sum(s.points for s in db.describe_collection("c").shards) == len(live)


@pytest.mark.parametrize("shards", [1, 3])
def test_points_carry_any_non_empty_subset(tmp_path, shards):
    with Database.open(str(tmp_path), opts()) as db:
        title, image, kind = make(db, shards)
        check(db, title, image, kind)
        p0, p1, p2 = db.get("c", ["p0", "p1", "p2"], with_vector=True)
        assert p0.vector is None and set(p0.vectors) == {"image"} and p0.payload == {"i": 0, "even": True}
        np.testing.assert_array_equal(p1.vector, title[1])
        assert p1.vectors == {} and set(p2.vectors) == {"image"}
        # recommend by an example without the primary: not found on the primary, fine by image
        with pytest.raises(NotFound, match="p0"):
            db.recommend("c", positive=["p0"])
        hits = db.recommend("c", positive=["p0"], using="image", k=5).ids
        assert len(hits) == 5 and "p0" not in hits
        # the primary's full scans (best_score, analytics) see only the points that carry it
        best = db.recommend("c", positive=["p1"], strategy="best_score", k=N).ids
        assert sorted(best) == sorted(f"p{i}" for i in range(N) if kind[i] != 0 and i != 1)
        out = db.outliers("c", n=5, k=3, filter={"key": "even", "match": True})
        assert out.population == sum(kind[i] != 0 for i in range(0, N, 2))
        assert all(kind[int(o.id[1:])] != 0 for o in out.outliers)
        # a payload update and a rewrite of a named field keep the primary absent;
        # update_vectors can add it
        db.update_payload("c", ["p0"], set={"tag": 1})
        db.update_vectors("c", ["p0"], named={"image": [image[0]]})
        p0 = db.get("c", ["p0"], with_vector=True)[0]
        assert p0.vector is None and p0.payload["tag"] == 1
        db.update_vectors("c", ["p3"], vectors=title[3:4])
        kind[3] = 2
        check(db, title, image, kind)
        # named vectors only, the primary never given: a point without it
        db.upsert("c", ["only"], named={"image": [image[0]]})
        assert db.get("c", ["only"], with_vector=True)[0].vector is None
        db.delete("c", ["only", "p6", "p7", "p8"])
        check(db, title, image, kind, gone={"p6", "p7", "p8"})
        # a filtered delete removes points with and without the primary
        db.delete("c", filter={"key": "i", "range": {"gte": 80}})
        gone = {"p6", "p7", "p8"} | {f"p{i}" for i in range(80, N)}
        check(db, title, image, kind, gone)


def test_ttl_expires_points_without_the_primary(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        db.create_collection("c", dim=4, metric="ip", index="flat", vectors=FIELDS)
        db.upsert("c", ["a", "b"], named={"image": np.ones((2, 6), "f4")}, ttl=[0.2, None])
        assert db.count("c") == 2
        time.sleep(0.4)
        assert db.count("c") == 1 and [p.id for p in db.get("c", ["a", "b"])] == ["b"]
        assert db.search("c", np.ones(6), k=5, using="image")[0].ids == ["b"]
        assert db.expire() == 1 and db.count("c") == 1 and not db.get("c", ["a"])


@pytest.mark.parametrize("how", ["replay", "rebuild"])
def test_reopen_keeps_points_without_the_primary(tmp_path, how, caplog):
    data = tmp_path / "data"
    with Database.open(str(data), opts()) as db:
        title, image, kind = make(db)
        db.checkpoint()
        # after the checkpoint: a point without the primary, one replaced, one deleted
        db.upsert("c", ["p1"], [None], named={"image": [image[1]]})
        db.delete("c", ["p0"])
        for s in db._get("c").shards:
            s.retired = True  # no checkpoint at close: the next open replays the WAL
            if how == "rebuild":
                shutil.rmtree(s.dir)
    kind[1] = 0
    with Database.open(str(data), opts()) as db:
        check(db, title, image, kind, gone={"p0"})
        db.checkpoint()
    assert ("rebuilding" in caplog.text) == (how == "rebuild")
    with Database.open(str(data), opts()) as db:  # from the new checkpoint
        check(db, title, image, kind, gone={"p0"})


def test_single_vector_collections_still_require_the_vector_and_bad_input_writes_nothing(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        db.create_collection("s", dim=4, vector_name="v")
        with pytest.raises(InvalidArgument) as e:
            db.upsert("s", ["a", "b"], named={"v": [np.ones(4), None]})
        assert e.value.field == "points[1].vectors.v"
        make(db)
        with pytest.raises(InvalidArgument) as e:  # neither the primary nor a named field
            db.upsert("c", ["a", "b", "x"], [np.ones(8), None, None],
                      named={"image": [None, np.ones(6), None]})
        assert e.value.field == "points[2].vectors" and "points[2].vectors" in e.value.message
        with pytest.raises(InvalidArgument) as e:  # a bad primary row is named by its place
            db.upsert("c", ["a", "b"], [None, np.ones(7)], named={"image": [np.ones(6), None]})
        assert "vectors" in e.value.field
        assert db.count("c") == N and not db.get("c", ["a", "b", "x"])


def test_replaying_the_removal_of_a_point_without_the_primary_leaves_the_primary_graph_alone(tmp_path):
    """The WAL lists the removed labels that had no primary: a replay after a checkpoint
    does not tombstone them in the primary's HNSW graph (the set of such labels read on
    open no longer holds them)."""
    data = tmp_path / "data"
    with Database.open(str(data), opts()) as db:
        db.create_collection("c", dim=8, metric="l2", index="hnsw", vectors=FIELDS,
                             index_params={"build_threshold": 30})
        rng = np.random.default_rng(2)
        db.upsert("c", [f"p{i}" for i in range(40)], rng.normal(size=(40, 8)).astype("f4"))
        db.upsert("c", ["z", "y"], named={"image": rng.normal(size=(2, 6)).astype("f4")})
        db.maintain()
        shard = db._get("c").shards[0]
        assert shard.ann is not None and shard.ann.kind == "hnsw"
        db.checkpoint()
        db.delete("c", ["z", "p0"])
        db.upsert("c", ["y"], named={"image": np.ones((1, 6), "f4")})  # replaced, still bare
        assert shard.ann.tombstones == {1}  # p0's label only
        shard.retired = True  # no checkpoint at close: the next open replays the WAL
    with Database.open(str(data), opts()) as db:
        shard = db._get("c").shards[0]
        assert shard.ann is not None and shard.ann.tombstones == {1}
        assert db.count("c") == 40 and len(shard.bare) == 1
        assert db.get("c", ["y"], with_vector=True)[0].vector is None


def test_snapshot_restore_keeps_points_without_the_primary(tmp_path):
    with Database.open(str(tmp_path), opts()) as db:
        title, image, kind = make(db)
        db.create_snapshot("c", "s1")
        db.restore_snapshot("s1", "copy")
        q = np.random.default_rng(5).normal(size=8).astype("f4")
        assert db.count("copy") == N
        assert db.search("copy", q, k=10)[0].ids == db.search("c", q, k=10)[0].ids
        assert db.search("copy", q[:6], k=10, using="image")[0].ids == \
            db.search("c", q[:6], k=10, using="image")[0].ids
        assert db.get("copy", ["p0"], with_vector=True)[0].vector is None
