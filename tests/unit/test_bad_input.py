"""Every bad input gets a typed error naming the field, and writes nothing."""
import numpy as np
import pytest

from vecdb import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted, SearchParams


@pytest.fixture
def coll(db):
    db.create_collection("c", 4, metric="l2", shards=3)
    db.upsert("c", ["keep"], [[1, 2, 3, 4]], [{"v": 1}])
    return db


def unchanged(db):
    assert db.count("c") == 1
    [p] = db.get("c", ["keep"], with_vector=True)
    np.testing.assert_array_equal(p.vector, [1, 2, 3, 4])
    assert p.payload == {"v": 1}


@pytest.mark.parametrize("ids,vectors,payloads,field,exc,words", [
    (["a"], [[1, 2, 3]], None, "vectors", InvalidArgument, "dimension 4"),
    (["a", "b"], [[1, 2, 3, 4]], None, "vectors", InvalidArgument, "1 rows but 2 ids"),
    (["a", "b"], [[1, 2, 3, 4], [np.nan, 0, 0, 0]], None, "vectors", InvalidArgument, "vectors[1] contains NaN"),
    (["a"], [[np.inf, 0, 0, 0]], None, "vectors", InvalidArgument, "NaN or Inf"),
    ([""], [[1, 2, 3, 4]], None, "ids", InvalidArgument, "empty"),
    (["x" * 513], [[1, 2, 3, 4]], None, "ids", InvalidArgument, "at most 512 bytes"),
    (["a", "keep", "a"], [[1, 2, 3, 4]] * 3, None, "ids", InvalidArgument, "duplicate id 'a'"),
    ([7], [[1, 2, 3, 4]], None, "ids", InvalidArgument, "must be a string"),
    (["a"], [[1, 2, 3, 4]], [[1, 2]], "payloads", InvalidArgument, "JSON object"),
    (["a"], [[1, 2, 3, 4]], ["str"], "payloads", InvalidArgument, "JSON object"),
    (["a"], [[1, 2, 3, 4]], [{"x": float("nan")}], "payloads", InvalidArgument, "JSON"),
    (["a"], [[1, 2, 3, 4]], [{"x": object()}], "payloads", InvalidArgument, "JSON"),
    (["a"], [[1, 2, 3, 4]], [{"x": "y" * 70_000}], "payloads", ResourceExhausted, "limit is 65536"),
    (["a", "b"], [[1, 2, 3, 4]] * 2, [{}], "payloads", InvalidArgument, "1 entries but 2 ids"),
    (["a"], "not numbers", None, "vectors", InvalidArgument, "numeric"),
])
def test_bad_upsert_is_rejected_and_writes_nothing(coll, ids, vectors, payloads, field, exc, words):
    with pytest.raises(exc) as e:
        coll.upsert("c", ids, vectors, payloads)
    assert e.value.field == field
    assert words in str(e.value)
    unchanged(coll)


def test_batch_spanning_shards_is_all_or_nothing(coll):
    ids = [f"id{i}" for i in range(50)]
    vecs = np.ones((50, 4), np.float32)
    vecs[49, 2] = np.nan  # the last one is bad: none of the 50 may land, whatever its shard
    with pytest.raises(InvalidArgument):
        coll.upsert("c", ids, vecs)
    unchanged(coll)
    assert coll.get("c", ids) == []


def test_cosine_rejects_zero_vector(db):
    db.create_collection("cos", 3)
    with pytest.raises(InvalidArgument, match=r"vectors\[1\] is all zeros"):
        db.upsert("cos", ["a", "b"], [[1, 0, 0], [0, 0, 0]])
    assert db.count("cos") == 0


def test_unknown_collection(db):
    for call in (lambda: db.upsert("nope", ["a"], [[1]]), lambda: db.count("nope"),
                 lambda: db.search("nope", [[1]]), lambda: db.get("nope", ["a"]),
                 lambda: db.delete("nope", ["a"]), lambda: db.describe_collection("nope"),
                 lambda: db.drop_collection("nope")):
        with pytest.raises(NotFound, match="'nope' does not exist"):
            call()


@pytest.mark.parametrize("kwargs,field,words", [
    ({"name": ""}, "name", "1-64 characters"),
    ({"name": "has space"}, "name", "1-64 characters"),
    ({"name": "x" * 65}, "name", "1-64 characters"),
    ({"name": "ok", "dim": 0}, "dim", "1..16384"),
    ({"name": "ok", "dim": 16385}, "dim", "1..16384"),
    ({"name": "ok", "dim": 2.5}, "dim", "integer"),
    ({"name": "ok", "metric": "hamming"}, "metric", "cosine, ip, l2"),
    ({"name": "ok", "index": "lsh"}, "index", "flat, ivf_flat"),
    ({"name": "ok", "index": "hnsw", "index_params": {"nlist": 4}}, "index_params.nlist", "unknown index parameter"),
    ({"name": "ok", "index": "hnsw", "index_params": {"M": 0}}, "index_params.M", "1..1048576"),
    ({"name": "ok", "shards": 0}, "shards", "1..64"),
    ({"name": "ok", "shards": 65}, "shards", "1..64"),
])
def test_bad_collection_config(db, kwargs, field, words):
    args = {"dim": 4, **kwargs}
    with pytest.raises(InvalidArgument) as e:
        db.create_collection(**args)
    assert e.value.field == field and words in str(e.value)
    assert db.list_collections() == []


def test_duplicate_collection(db):
    db.create_collection("c", 4)
    with pytest.raises(AlreadyExists, match="already exists"):
        db.create_collection("c", 8)
    assert db.describe_collection("c").config.dim == 4


@pytest.mark.parametrize("k", [0, 10_001, -1])
def test_k_out_of_range(coll, k):
    with pytest.raises(InvalidArgument, match=r"k must be in 1..10000") as e:
        coll.search("c", [[1, 2, 3, 4]], k=k)
    assert e.value.field == "k"


def test_bad_queries_and_params(coll):
    with pytest.raises(InvalidArgument, match="dimension 4") as e:
        coll.search("c", [[1, 2]], k=1)
    assert e.value.field == "queries"
    with pytest.raises(InvalidArgument, match="NaN"):
        coll.search("c", [[np.nan, 1, 2, 3]])
    with pytest.raises(InvalidArgument, match="nprobe"):
        coll.search("c", [[1, 2, 3, 4]], params=SearchParams(nprobe=0))


def test_bad_scroll_cursor_and_limit(coll):
    with pytest.raises(InvalidArgument, match="cursor"):
        coll.scroll("c", cursor="%%%")
    with pytest.raises(InvalidArgument, match="limit"):
        coll.scroll("c", limit=0)


def test_bad_alias_calls(db):
    db.create_collection("c", 4)
    with pytest.raises(NotFound, match="collection 'zz'"):
        db.create_alias("a", "zz")
    with pytest.raises(InvalidArgument, match="alias"):
        db.create_alias("bad name", "c")
    with pytest.raises(AlreadyExists, match="collection name"):
        db.create_alias("c", "c")
    db.create_alias("a", "c")
    with pytest.raises(AlreadyExists, match="alias 'a' already exists"):
        db.create_alias("a", "c")
    with pytest.raises(AlreadyExists, match="alias"):
        db.create_collection("a", 4)
    with pytest.raises(NotFound):
        db.delete_alias("missing")
