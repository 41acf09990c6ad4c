"""Filters, partial updates, TTL, range search, payload indexes and explain through the
SDK against real servers. Filtered reads are checked against a brute-force Python
evaluation of the same filter over the data the test inserted."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid

import grpc
import numpy as np
import pytest

from harness import rand
from vecdb_client import (AlreadyExistsError, AsyncClient, F, InvalidArgumentError,
                          NotFoundError, PayloadIndexInfo)
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

DIM = 8
N = 300
LANGS = ["en", "de", "fr"]


def make_payloads(n: int, seed: int = 0) -> tuple[list[dict], list[str | None]]:
    """Varied payloads: missing and null keys, arrays, nested objects, datetimes, texts."""
    rng = np.random.default_rng(seed)
    pays, texts = [], []
    for i in range(n):
        p = {"i": i, "year": 2000 + i % 26, "score": float(rng.random()),
             "meta": {"views": int(rng.integers(0, 1000)), "ok": bool(i % 2)},
             "title": "Error Budget policy" if i % 10 == 0 else "other words"}
        if i % 7:
            p["lang"] = LANGS[i % 3]
        if i % 11 == 0:
            p["lang"] = None
        if i % 4:
            p["tags"] = [f"t{j}" for j in range(i % 4)]
        elif i % 8 == 0:
            p["tags"] = []
        if i % 5 == 0:
            p["when"] = f"2024-01-{1 + i % 28:02d}T12:00:00Z"
        pays.append(p)
        texts.append(None if i % 9 == 0 else
                     f"doc {i} {'error budget' if i % 6 == 0 else 'latency'} {LANGS[i % 3]}")
    return pays, texts


# ---------------------------------------------------------------- brute-force oracle
def _raw(payload, key):
    cur = [payload] if payload is not None else []
    for part in key.split("."):
        cur = [o[part] for obj in cur for o in (obj if isinstance(obj, list) else [obj])
               if isinstance(o, dict) and part in o]
    return cur


def _flat(values):
    return [x for v in values for x in (v if isinstance(v, list) else [v])]


def _kind(v):
    if isinstance(v, bool):
        return ("b", v)
    return ("n", float(v)) if isinstance(v, (int, float)) else ("s", v)


def _ts(s):
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def _words(s):
    return set(re.findall(r"\w+", s.casefold()))


def _in_range(x, r):
    return all(((op == "gt" and x > b) or (op == "gte" and x >= b) or (op == "lt" and x < b)
                or (op == "lte" and x <= b)) for op, b in r.items())


def oracle(flt, pid, pay, text) -> bool:
    clause_keys = {"must", "should", "must_not", "min_should"}
    if set(flt) & clause_keys:
        should = [oracle(c, pid, pay, text) for c in flt.get("should", [])]
        return (all(oracle(c, pid, pay, text) for c in flt.get("must", []))
                and not any(oracle(c, pid, pay, text) for c in flt.get("must_not", []))
                and sum(should) >= flt.get("min_should", 1 if should else 0))
    if "has_id" in flt:
        return pid in flt["has_id"]
    key = flt.get("key")
    if "text" in flt:
        have = (_words(text or "") if key is None else
                set().union(*[_words(v) for v in _flat(_raw(pay, key)) if isinstance(v, str)]))
        return _words(flt["text"]) <= have
    if "is_empty" in flt:
        raw = _raw(pay, key)
        return (not raw or all(v is None or v == [] for v in raw)) == flt["is_empty"]
    vals = _flat(_raw(pay, key))
    if "exists" in flt:
        return any(v is not None for v in vals) == flt["exists"]
    if "is_null" in flt:
        return (None in vals and all(v is None for v in vals)) == flt["is_null"]
    scalars = [_kind(v) for v in vals if isinstance(v, (str, int, float, bool))]
    if "match" in flt:
        return _kind(flt["match"]) in scalars
    if "any" in flt:
        return bool(set(scalars) & {_kind(v) for v in flt["any"]})
    if "except" in flt:
        return any(s not in {_kind(v) for v in flt["except"]} for s in scalars)
    r = flt["range"]
    if all(isinstance(b, str) for b in r.values()):
        r = {op: _ts(b) for op, b in r.items()}
        xs = [_ts(v) for v in vals if isinstance(v, str)]
    else:
        xs = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return any(_in_range(x, r) for x in xs)


FILTERS = {
    "lone condition": {"key": "lang", "match": "en"},
    "must match + range": {"must": [{"key": "lang", "match": "en"},
                                    {"key": "year", "range": {"gte": 2020}}]},
    "should any / array match": {"should": [{"key": "lang", "any": ["de", "fr"]},
                                            {"key": "tags", "match": "t2"}]},
    "min_should 2": {"should": [{"key": "lang", "match": "en"},
                                {"key": "year", "range": {"lt": 2005}},
                                {"key": "tags", "exists": True}], "min_should": 2},
    "except on arrays": {"must": [{"key": "tags", "except": ["t0"]}]},
    "must_not except": {"must_not": [{"key": "lang", "except": ["en"]}]},
    "is_null": {"must": [{"key": "lang", "is_null": True}]},
    "is_empty": {"must": [{"key": "tags", "is_empty": True}]},
    "not exists": {"must": [{"key": "lang", "exists": False}]},
    "nested path": {"must": [{"key": "meta.views", "range": {"gt": 500, "lte": 900}},
                             {"key": "meta.ok", "match": True}]},
    "bool is not 1": {"must": [{"key": "meta.ok", "match": 1}]},
    "datetime range": {"must": [{"key": "when", "range": {"gte": "2024-01-10",
                                                          "lt": "2024-01-20T00:00:00+00:00"}}]},
    "float range": {"must": [{"key": "score", "range": {"gte": 0.25, "lt": 0.5}}]},
    "stored text": {"must": [{"text": "Error BUDGET"}]},
    "payload text": {"must": [{"key": "title", "text": "budget"}]},
    "has_id": {"must": [{"has_id": ["p1", "p2", "p3", "p77", "nope"]}]},
    "any integers": {"must": [{"key": "year", "any": [2001, 2003, 2025]}]},
    "nested clauses": {"must": [{"should": [{"key": "lang", "match": "de"},
                                            {"key": "lang", "is_null": True}]},
                                {"must_not": [{"key": "year", "range": {"gte": 2010, "lt": 2020}}]}],
                       "must_not": [{"key": "tags", "match": "t1"}]},
    "matches nothing": {"must": [{"key": "lang", "match": "xx"}]},
}


@pytest.fixture(scope="module")
def ds(client):
    """A 2-shard collection with a keyword index on lang; read-only for the tests using it."""
    name = "flt_" + uuid.uuid4().hex[:8]
    info = client.create_collection(name, dim=DIM, shards=2, payload_indexes={"lang": "keyword"})
    assert info.payload_indexes == {"lang": PayloadIndexInfo("keyword", "ready")}
    ids = [f"p{i}" for i in range(N)]
    vecs = rand(N, DIM, seed=3)
    pays, texts = make_payloads(N)
    client.upsert(name, ids, vecs, payloads=pays, texts=texts)
    yield name, ids, vecs, pays, texts
    client.drop_collection(name)


def expected(flt, ids, pays, texts) -> list[str]:
    return [pid for pid, p, t in zip(ids, pays, texts) if oracle(flt, pid, p, t)]


def cosine_top(vecs, q, rows, k):
    v = vecs[rows] / np.linalg.norm(vecs[rows], axis=1, keepdims=True)
    scores = v @ (q / np.linalg.norm(q))
    order = np.argsort(-scores)[:k]
    return [rows[j] for j in order], scores[order]


@pytest.mark.parametrize("name", list(FILTERS))
def test_filtered_reads_match_brute_force(client, ds, name):
    coll, ids, vecs, pays, texts = ds
    flt = FILTERS[name]
    want = expected(flt, ids, pays, texts)
    assert client.count(coll, flt) == len(want)
    got = [p.id for p in client.iter_points(coll, batch_size=37, filter=flt)]
    assert got == sorted(want)  # scroll order is id order, pages never repeat
    assert all(oracle(flt, p.id, p.payload, p.text)
               for p in client.scroll(coll, limit=20, filter=flt).points)
    q = rand(1, DIM, seed=11)[0]
    everything = client.search(coll, vector=q, k=N, exact=True, filter=flt)
    assert sorted(h.id for h in everything) == sorted(want)
    rows = [ids.index(pid) for pid in want]
    top_rows, top_scores = cosine_top(vecs, q, rows, 10) if rows else ([], [])
    hits = client.search(coll, vector=q, k=10, filter=flt)  # the planner's own choice
    assert [h.id for h in hits] == [ids[r] for r in top_rows]
    np.testing.assert_allclose([h.score for h in hits], top_scores, rtol=1e-5, atol=1e-6)


def test_builder_produces_the_same_dicts_and_results(client, ds):
    coll, ids, _, pays, texts = ds
    built = {
        "must match + range": F.must(F.match("lang", "en"), F.range("year", gte=2020)),
        "should any / array match": F.should(F.any("lang", ["de", "fr"]), F.match("tags", "t2")),
        "min_should 2": F.should(F.match("lang", "en"), F.range("year", lt=2005),
                                 F.exists("tags"), min_should=2),
        "except on arrays": F.must(F.except_("tags", ["t0"])),
        "is_null": F.must(F.is_null("lang")),
        "is_empty": F.must(F.is_empty("tags")),
        "not exists": F.must(F.exists("lang", False)),
        "stored text": F.must(F.text("Error BUDGET")),
        "payload text": F.must(F.text("budget", key="title")),
        "has_id": F.must(F.has_id("p1", "p2", "p3", "p77", "nope")),
        "nested clauses": F.clause(
            must=[F.should(F.match("lang", "de"), F.is_null("lang")),
                  F.must_not(F.range("year", gte=2010, lt=2020))],
            must_not=[F.match("tags", "t1")]),
    }
    for name, flt in built.items():
        want = FILTERS[name]
        if name == "nested clauses":
            want = {**want, "should": []}
        assert flt == want, name
        assert client.count(coll, flt) == len(expected(FILTERS[name], ids, pays, texts)), name
    assert F.has_id(["a", "b"]) == {"has_id": ["a", "b"]}
    # datetime objects become ISO-8601 strings on the wire
    when = F.must(F.range("when", gte=dt.datetime(2024, 1, 10), lt=dt.date(2024, 1, 20)))
    assert client.count(coll, when) == len(expected(FILTERS["datetime range"], ids, pays, texts))


def test_explain_plan(client, ds):
    coll = ds[0]
    q = rand(2, DIM, seed=12)
    hits, plan = client.search(coll, vector=q[0], k=5, filter=F.match("lang", "en"),
                               explain=True)
    assert len(hits) == 5 and "shard 0:" in plan and "shard 1:" in plan
    assert "index" in plan and "matches" in plan, plan
    batch, plan = client.search(coll, vectors=q, k=3, filter=F.match("year", 2001), explain=True)
    assert len(batch) == 2 and "shard 0:" in plan
    _, plain = client.search(coll, vector=q[0], k=3, explain=True)
    assert plain.startswith("shard 0:")
    assert isinstance(client.search(coll, vector=q[0], k=3), list)  # unchanged without explain


def test_range_search(client, ds):
    coll, ids, vecs, pays, texts = ds
    q = vecs[:2] + 0.1 * rand(2, DIM, seed=13)
    flt = F.must(F.match("lang", "en"))
    matching = expected(flt, ids, pays, texts)
    for i in range(2):
        v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        scores = v @ (q[i] / np.linalg.norm(q[i]))
        want = [ids[j] for j in np.argsort(-scores) if scores[j] > 0.5]
        hits = client.range_search(coll, vector=q[i], threshold=0.5)
        assert [h.id for h in hits] == want and all(h.score > 0.5 for h in hits)
        assert [h.id for h in client.range_search(coll, vector=q[i], threshold=0.5,
                                                  limit=4)] == want[:4]
        filtered = client.range_search(coll, vector=q[i], threshold=0.5, filter=flt)
        assert [h.id for h in filtered] == [pid for pid in want if pid in matching]
        assert filtered[0].payload["lang"] == "en"
    batch = client.range_search(coll, vectors=q, threshold=0.9, with_vectors=True)
    assert len(batch) == 2 and batch[0][0].vector.shape == (DIM,)


def test_range_search_l2(client, coll_name):
    client.create_collection(coll_name, dim=2, metric="l2")
    pts = np.array([[0, 0], [1, 0], [0, 2], [3, 3]], np.float32)
    client.upsert(coll_name, ["a", "b", "c", "d"], pts)
    hits = client.range_search(coll_name, vector=[0.0, 0.0], threshold=4.5)
    assert [(h.id, h.score) for h in hits] == [("a", 0.0), ("b", 1.0), ("c", 4.0)]
    with pytest.raises(InvalidArgumentError) as ei:
        client.range_search(coll_name, vector=[0.0, 0.0], threshold=1.0, limit=0)
    assert ei.value.field == "limit"
    client.drop_collection(coll_name)


def _state(client, coll):
    pts = list(client.iter_points(coll, with_vectors=True))
    return [(p.id, p.payload, p.text, p.vector.tobytes()) for p in pts]


BAD_FILTERS = {
    # (filter, field, words in the message); the first two are refused by the SDK
    "unknown operator": ({"must": [{"key": "lang", "match": "en"}, {"key": "x", "regex": "a"}]},
                         "filter.must[1].regex", "unknown operator 'regex'"),
    "wrong value type": ({"must": [{"key": "year", "match": 2.5}]}, "filter.must[0].match",
                         "string, integer or bool"),
    "range value type": ({"must": [{"key": "year", "range": {"gte": [2020]}}]},
                         "filter.must[0].range.gte", "number"),
    "malformed datetime": ({"must": [{"key": "lang", "match": "en"},
                                     {"key": "when", "range": {"gte": "2024-13-45"}}]},
                           "filter.must[1].range.gte", "ISO-8601"),
    "mixed range kinds": ({"must": [{"key": "when", "range": {"gte": 1, "lt": "2024-01-01"}}]},
                          "filter.must[0].range", "mixes"),
    "min_should too big": ({"should": [{"key": "lang", "match": "en"}], "min_should": 3},
                           "filter.min_should", "min_should"),
    "empty text": ({"must": [{"text": "  ,, "}]}, "filter.must[0].text", "word"),
    "unknown clause key": ({"must": [], "filter": []}, "filter.filter", "unknown key"),
}


def _too_deep():
    flt: dict = {"key": "lang", "match": "en"}
    for _ in range(9):
        flt = {"must": [flt]}
    return flt


BAD_FILTERS["too deep"] = (_too_deep(), "filter" + ".must[0]" * 8, "deeper than 8")


@pytest.mark.parametrize("case", list(BAD_FILTERS))
def test_bad_filters_are_refused_and_write_nothing(client, ds, case):
    coll = ds[0]
    flt, field, words = BAD_FILTERS[case]
    before = _state(client, coll)
    calls = [lambda: client.count(coll, flt),
             lambda: client.search(coll, vector=rand(1, DIM)[0], filter=flt),
             lambda: client.scroll(coll, filter=flt),
             lambda: client.range_search(coll, vector=rand(1, DIM)[0], threshold=0.1, filter=flt),
             lambda: client.delete(coll, filter=flt),
             lambda: client.update_payload(coll, filter=flt, set={"hacked": True})]
    for call in calls:
        with pytest.raises(InvalidArgumentError) as ei:
            call()
        assert ei.value.field == field, (case, ei.value.message)
        # the message names the place (an unknown operator: its parent) and the problem
        assert field.rsplit(".", 1)[0] in ei.value.message, ei.value.message
        assert words in ei.value.message, ei.value.message
    assert _state(client, coll) == before


def test_malformed_filters_on_the_wire(server, ds):
    """What the SDK cannot produce: unset oneofs, an empty item. The server names the path."""
    coll = ds[0]
    lang = tpb.Condition(key="lang", match=tpb.Value(s="en"))
    cases = {
        "filter.must[1]": tpb.Filter(must=[tpb.FilterItem(condition=lang),
                                           tpb.FilterItem(condition=tpb.Condition(key="x"))]),
        "filter.must[0].match": tpb.Filter(must=[tpb.FilterItem(
            condition=tpb.Condition(key="x", match=tpb.Value()))]),
        "filter.should[0]": tpb.Filter(should=[tpb.FilterItem()]),
        "filter.must[0].range.lt": tpb.Filter(must=[tpb.FilterItem(condition=tpb.Condition(
            key="x", range=tpb.Range(lt=tpb.RangeBound())))]),
    }
    with grpc.insecure_channel(server.target) as ch:
        stub = pgrpc.PointServiceStub(ch)
        for field, flt in cases.items():
            with pytest.raises(grpc.RpcError) as ei:
                stub.Count(ppb.CountRequest(collection=coll, filter=flt), timeout=10)
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in ei.value.details(), ei.value.details()
            md = dict(ei.value.trailing_metadata())
            assert md["vecdb-field"].startswith(field)
        # delete with a filter but empty ids deletes by filter; an empty filter is refused
        with pytest.raises(grpc.RpcError) as ei:
            stub.Delete(ppb.DeleteRequest(collection=coll, filter=tpb.Filter()), timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_by_filter(client, coll_name):
    pays, texts = make_payloads(120, seed=4)
    ids = [f"p{i}" for i in range(120)]
    client.create_collection(coll_name, dim=DIM, shards=3)
    client.upsert(coll_name, ids, rand(120, DIM, seed=4), payloads=pays, texts=texts)
    flt = FILTERS["should any / array match"]
    doomed = expected(flt, ids, pays, texts)
    assert 0 < len(doomed) < 120
    assert client.delete(coll_name, filter=flt).count == len(doomed)
    left = [p.id for p in client.iter_points(coll_name)]
    assert left == sorted(set(ids) - set(doomed))
    assert client.count(coll_name, flt) == 0
    assert client.delete(coll_name, filter=flt).count == 0  # idempotent
    assert client.delete(coll_name, left[:2] + ["zz"]).count == 2  # by ids as before
    with pytest.raises(InvalidArgumentError):
        client.delete(coll_name, ["p1"], filter=flt)  # not both
    with pytest.raises(InvalidArgumentError):
        client.delete(coll_name)  # not neither
    with pytest.raises(InvalidArgumentError):
        client.delete(coll_name, filter={})  # an empty filter is no filter
    assert client.count(coll_name) == 120 - len(doomed) - 2
    client.drop_collection(coll_name)


def test_partial_updates(client, coll_name):
    client.create_collection(coll_name, dim=4, shards=2)
    vecs = rand(6, 4, seed=5)
    ids = [f"u{i}" for i in range(6)]
    client.upsert(coll_name, ids, vecs, texts=[f"t{i}" for i in range(6)],
                  payloads=[{"n": i, "grp": "a" if i < 3 else "b", "keep": 1} for i in range(6)])
    # by ids: set merges, delete_keys removes; missing ids are skipped
    res = client.update_payload(coll_name, ids=["u0", "u1", "nope"], set={"x": [1, 2]},
                                delete_keys=["keep"])
    assert res.count == 2 and res.shard_seqs
    got = {p.id: p for p in client.get(coll_name, ids, with_vectors=True)}
    assert got["u0"].payload == {"n": 0, "grp": "a", "x": [1, 2]}
    assert got["u2"].payload == {"n": 2, "grp": "a", "keep": 1}
    assert got["u0"].text == "t0"  # text and vector stay
    np.testing.assert_array_equal(got["u1"].vector, vecs[1])
    # by filter: overwrite replaces the whole payload, then set merges
    res = client.update_payload(coll_name, filter=F.match("grp", "b"), overwrite={"grp": "c"},
                                set={"y": True})
    assert res.count == 3
    assert [p.payload for p in client.get(coll_name, ["u3", "u5"])] == [{"grp": "c", "y": True}] * 2
    assert client.count(coll_name, F.match("grp", "c")) == 3
    # errors name the field and write nothing
    before = _state(client, coll_name)
    for kwargs, field in [({"ids": ["u0"]}, "set"),
                          ({"ids": ["u0"], "set": [1]}, "set"),
                          ({"ids": ["u0"], "set": {"bad": object()}}, "set"),
                          ({"ids": ["u0"], "delete_keys": "keep"}, "delete_keys"),
                          ({"set": {"a": 1}}, "ids"),
                          ({"ids": ["u0"], "filter": F.match("grp", "a"), "set": {"a": 1}},
                           "filter")]:
        with pytest.raises(InvalidArgumentError) as ei:
            client.update_payload(coll_name, **kwargs)
        assert ei.value.field == field, (kwargs, ei.value.message)
    assert _state(client, coll_name) == before
    # update_vectors: the new vector is searched, payload and text stay
    new = rand(1, 4, seed=99)
    res = client.update_vectors(coll_name, ["u4", "missing"], np.vstack([new, new]))
    assert res.count == 1
    top = client.search(coll_name, vector=new[0], k=1)[0]
    assert (top.id, top.payload, top.text) == ("u4", {"grp": "c", "y": True}, "t4")
    with pytest.raises(InvalidArgumentError) as ei:
        client.update_vectors(coll_name, ["u4"], rand(1, 5))
    assert "dimension" in ei.value.message
    client.drop_collection(coll_name)


def test_ttl_expiry(client, coll_name):
    client.create_collection(coll_name, dim=4, shards=2)
    vecs = rand(8, 4, seed=6)
    ids = [f"e{i}" for i in range(8)]
    client.upsert(coll_name, ids[:4], vecs[:4], payloads=[{"k": 1}] * 4, ttl=3)
    client.upsert(coll_name, ids[4:], vecs[4:], payloads=[{"k": 1}] * 4,
                  ttl=[3, None, 3600, None])  # per point; None = never
    # a partial update keeps the TTL
    client.update_payload(coll_name, ids=["e0"], set={"touched": True})
    assert client.count(coll_name) == 8
    for bad, field in [(0, "ttl"), (-1, "ttl"), ([1, 0, None, 2], "ttl[1]"), ("x", "ttl")]:
        with pytest.raises(InvalidArgumentError) as ei:
            client.upsert(coll_name, ids[:4], vecs[:4], ttl=bad)
        assert ei.value.field == field
    with pytest.raises(InvalidArgumentError) as ei:
        client.upsert(coll_name, ids[:4], vecs[:4], ttl=[1, 2])
    assert ei.value.field == "ttl" and ei.value.request_id  # the server counts
    deadline = time.monotonic() + 15
    while client.count(coll_name) != 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = ["e5", "e6", "e7"]
    assert client.count(coll_name) == 3
    assert client.count(coll_name, F.match("k", 1)) == 3
    assert [p.id for p in client.get(coll_name, ids)] == alive
    assert sorted(p.id for p in client.iter_points(coll_name)) == alive
    assert sorted(h.id for h in client.search(coll_name, vector=vecs[0], k=8)) == alive
    assert sorted(h.id for h in client.range_search(coll_name, vector=vecs[0],
                                                    threshold=-1.0)) == alive
    client.drop_collection(coll_name)


def test_payload_index_lifecycle(client, ds, coll_name):
    coll, ids, _, pays, texts = ds
    client.create_collection(coll_name, dim=DIM, shards=2,
                             payload_indexes={"year": "integer", "$text": "text"})
    client.upsert(coll_name, ids, rand(N, DIM, seed=3), payloads=pays, texts=texts)
    info = client.describe_collection(coll_name)
    assert info.payload_indexes == {"$text": PayloadIndexInfo("text", "ready"),
                                    "year": PayloadIndexInfo("integer", "ready")}
    client.create_payload_index(coll_name, "meta.views", "integer", wait=True)
    client.create_payload_index(coll_name, "when", "datetime")  # background build
    deadline = time.monotonic() + 10
    while client.describe_collection(coll_name).payload_indexes["when"].state != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert set(client.describe_collection(coll_name).payload_indexes) == {
        "$text", "year", "meta.views", "when"}
    flt = F.must(F.range("meta.views", gt=500), F.range("when", gte="2024-01-05"),
                 F.text("latency"))
    want = expected(flt, ids, pays, texts)
    assert client.count(coll_name, flt) == len(want) == client.count(coll, flt)
    _, plan = client.search(coll_name, vector=rand(1, DIM)[0], filter=flt, explain=True)
    assert "index" in plan, plan
    with pytest.raises(AlreadyExistsError):
        client.create_payload_index(coll_name, "year", "keyword")
    with pytest.raises(InvalidArgumentError) as ei:
        client.create_payload_index(coll_name, "lang", "fulltext")
    assert ei.value.field == "type"
    client.drop_payload_index(coll_name, "meta.views")
    assert "meta.views" not in client.describe_collection(coll_name).payload_indexes
    assert client.count(coll_name, flt) == len(want)  # still right without the index
    with pytest.raises(NotFoundError):
        client.drop_payload_index(coll_name, "meta.views")
    with pytest.raises(InvalidArgumentError):
        client.create_collection(coll_name + "x", dim=4, payload_indexes={"a": "nope"})
    client.drop_collection(coll_name)


def test_async_client(server, coll_name):
    async def scenario():
        async with AsyncClient(server.target, timeout=20) as c:
            await c.create_collection(coll_name, dim=DIM, shards=2,
                                      payload_indexes={"lang": "keyword"})
            ids = [f"p{i}" for i in range(60)]
            vecs = rand(60, DIM, seed=8)
            pays, texts = make_payloads(60, seed=8)
            await c.upsert(coll_name, ids, vecs, payloads=pays, texts=texts,
                           ttl=[None] * 59 + [3600])
            flt = FILTERS["must match + range"]
            want = expected(flt, ids, pays, texts)
            assert await c.count(coll_name, flt) == len(want)
            assert [p.id async for p in c.iter_points(coll_name, batch_size=7,
                                                      filter=flt)] == sorted(want)
            page = await c.scroll(coll_name, limit=2, filter=flt)
            assert len(want) > 2 and len(page.points) == 2 and page.next_cursor
            hits, plan = await c.search(coll_name, vector=vecs[0], k=100, filter=flt,
                                        explain=True)
            assert sorted(h.id for h in hits) == sorted(want) and "shard 1:" in plan
            near = await c.range_search(coll_name, vector=vecs[5], threshold=0.99)
            assert near[0].id == "p5"
            res = await c.update_payload(coll_name, filter=flt, set={"hit": 1})
            assert res.count == len(want)
            assert await c.count(coll_name, F.match("hit", 1)) == len(want)
            assert (await c.update_vectors(coll_name, ["p1"], vecs[2:3])).count == 1
            await c.create_payload_index(coll_name, "year", "integer", wait=True)
            info = await c.describe_collection(coll_name)
            assert info.payload_indexes["year"] == PayloadIndexInfo("integer", "ready")
            await c.drop_payload_index(coll_name, "year")
            assert (await c.delete(coll_name, filter=flt)).count == len(want)
            assert await c.count(coll_name) == 60 - len(want)
            with pytest.raises(InvalidArgumentError) as ei:
                await c.count(coll_name, FILTERS["must match + range"] | {"min_should": 5})
            assert ei.value.field == "filter.min_should"
            await c.drop_collection(coll_name)
    asyncio.run(scenario())


def test_every_new_rpc_on_the_aio_server(spawn):
    srv = spawn("--server-mode", "aio")
    with srv.client() as c:
        c.create_collection("a", dim=4, payload_indexes={"g": "keyword"})
        c.upsert("a", ["x", "y", "z"], rand(3, 4), payloads=[{"g": 1}, {"g": 2}, {"g": 2}],
                 ttl=[None, None, 3600])
        assert c.count("a", F.match("g", 2)) == 2
        assert [p.id for p in c.scroll("a", filter=F.match("g", 2)).points] == ["y", "z"]
        hits, plan = c.search("a", vector=rand(1, 4)[0], filter=F.match("g", 1), explain=True)
        assert [h.id for h in hits] == ["x"] and plan
        assert len(c.range_search("a", vector=rand(1, 4)[0], threshold=-1.0)) == 3
        assert c.update_payload("a", filter=F.match("g", 2), set={"h": 1}).count == 2
        assert c.update_vectors("a", ["x"], rand(1, 4, seed=3)).count == 1
        c.create_payload_index("a", "h", "integer", wait=True)
        assert set(c.describe_collection("a").payload_indexes) == {"g", "h"}
        c.drop_payload_index("a", "h")
        assert c.delete("a", filter=F.match("h", 1)).count == 2
        with pytest.raises(InvalidArgumentError) as ei:
            c.count("a", {"key": "g", "range": {"gte": "yesterday"}})
        assert ei.value.field == "filter.must[0].range.gte"
    assert srv.terminate() == 0
