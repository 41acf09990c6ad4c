import numpy as np
import pytest


@pytest.fixture
def coll(db):
    db.create_collection("c", 3, metric="l2", shards=3)
    return db


def test_upsert_get_replace_delete(coll):
    r = coll.upsert("c", ["a", "b", "ü-ñ"], [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                    [{"k": "v", "n": [1, {"x": None}]}, None, {"t": True}], ["hello", None, "wörld"])
    assert r.count == 3 and sum(1 for _ in r.seqs) >= 1
    got = coll.get("c", ["ü-ñ", "missing", "a"], with_vector=True)
    assert [p.id for p in got] == ["ü-ñ", "a"]  # request order, missing omitted
    assert got[0].payload == {"t": True} and got[0].text == "wörld"
    np.testing.assert_array_equal(got[1].vector, [1, 0, 0])
    assert got[1].payload == {"k": "v", "n": [1, {"x": None}]}
    assert coll.get("c", ["b"])[0].payload is None and coll.get("c", ["b"])[0].vector is None
    assert coll.get("c", ["a"], with_payload=False)[0].payload is None
    coll.upsert("c", ["a"], [[5, 5, 5]], [{"v": 2}])  # replace
    [a] = coll.get("c", ["a"], with_vector=True)
    np.testing.assert_array_equal(a.vector, [5, 5, 5])
    assert a.payload == {"v": 2} and a.text is None and coll.count("c") == 3
    [res] = coll.search("c", [[1, 0, 0]], k=3)
    assert "a" != res.ids[0] and res.scores[-1] == pytest.approx(16 + 25 + 25)  # l2 squared
    assert coll.delete("c", ["a", "a", "nope"]).count == 1
    assert coll.count("c") == 2 and coll.get("c", ["a"]) == []
    assert coll.delete("c", ["nope"]).count == 0


def test_search_returns_payload_vector_text(coll):
    coll.upsert("c", ["a", "b"], [[1, 0, 0], [0, 1, 0]], [{"i": 1}, {"i": 2}], ["ta", "tb"])
    [res] = coll.search("c", [[0.9, 0, 0]], k=2, with_vector=True)
    hits = list(res)
    assert hits[0].id == "a" and hits[0].payload == {"i": 1} and hits[0].text == "ta"
    np.testing.assert_array_equal(hits[1].vector, [0, 1, 0])
    assert hits[0].score == pytest.approx(0.01)
    [res] = coll.search("c", [[0.9, 0, 0]], k=2, with_payload=False)
    assert res.payloads is None and res.vectors is None and res.ids == ["a", "b"]


def test_scroll_is_stable_and_complete(coll):
    ids = [f"id{i:04d}" for i in range(257)]
    coll.upsert("c", ids, np.random.default_rng(0).random((257, 3)))
    seen, cursor = [], None
    while True:
        page = coll.scroll("c", limit=50, cursor=cursor)
        seen += [p.id for p in page.points]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(ids)
    # a write between pages never makes the scroll repeat or skip old ids
    page = coll.scroll("c", limit=10)
    coll.delete("c", ["id0003"])
    coll.upsert("c", ["id0000a"], [[1, 1, 1]])
    nxt = coll.scroll("c", limit=10, cursor=page.next_cursor)
    assert nxt.points[0].id == "id0010"


def test_search_on_empty_collection(coll):
    assert [len(r) for r in coll.search("c", [[1, 2, 3], [3, 2, 1]], k=5)] == [0, 0]
