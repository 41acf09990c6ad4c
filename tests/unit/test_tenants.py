"""Tenant collections in the engine (vecdb/tenants.py, vecdb/tenant_search.py): every read
and write names its tenant, a tenant search equals brute force over that tenant's points,
bad input writes nothing, quotas, drop, and the partition survives a reopen."""
from __future__ import annotations

import numpy as np
import pytest

from vecdb import SearchParams, tenant_search
from vecdb.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

DIM = 8


def make(db, shards=2, index="flat"):
    db.create_collection("t", DIM, metric="l2", shards=shards, index=index,
                         tenant_field="customer")
    rng = np.random.default_rng(0)
    vecs = {}
    for t, n in (("a", 30), ("b", 50), (7, 20)):
        ids = [f"{t}-{i}" for i in range(n)]
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        db.upsert("t", ids, v, [{"i": i} for i in range(n)], tenant=t)
        vecs[t] = dict(zip(ids, v))
    return vecs


def brute(vecs: dict, q: np.ndarray, k: int) -> list[str]:
    ids = list(vecs)
    d = ((np.stack([vecs[i] for i in ids]) - q) ** 2).sum(axis=1)
    return [ids[j] for j in np.argsort(d, kind="stable")[:k]]


def test_search_count_get_scroll_stay_in_the_tenant(db):
    vecs = make(db)
    q = np.random.default_rng(5).standard_normal((3, DIM)).astype(np.float32)
    for t in ("a", "b", 7):
        res = db.search("t", q, k=10, tenant=t)
        for i, r in enumerate(res):
            assert r.ids == brute(vecs[t], q[i], 10)
            assert all(p["customer"] == t for p in r.payloads)
            assert r.plan.startswith("shard 0: tenant exact")
        assert db.count("t", tenant=t) == len(vecs[t])
        assert db.count("t", filter={"key": "i", "range": {"lt": 10}}, tenant=t) == 10
        page = db.scroll("t", limit=1000, tenant=t)
        assert sorted(p.id for p in page.points) == sorted(vecs[t])
    # other tenants' ids are invisible to get, delete and updates
    assert db.get("t", ["a-0", "b-0"], tenant="a")[0].id == "a-0"
    assert len(db.get("t", ["a-0", "b-0"], tenant="a")) == 1
    assert db.delete("t", ids=["b-1"], tenant="a").count == 0
    assert db.update_payload("t", ids=["b-1"], set={"x": 1}, tenant="a").count == 0
    assert db.update_vectors("t", ["b-1", "a-1"], np.ones((2, DIM), np.float32),
                             tenant="a").count == 1
    assert db.count("t", tenant="b") == 50
    # a filter naming another tenant finds nothing
    assert db.count("t", filter={"key": "customer", "match": "b"}, tenant="a") == 0
    assert db.delete("t", filter={"key": "i", "range": {"lt": 5}}, tenant="b").count == 5
    assert db.count("t", tenant="b") == 45 and db.count("t", tenant="a") == 30


def test_missing_and_wrong_typed_tenants_name_the_field_an_empty_one_reads_empty(db):
    make(db)
    q = np.zeros((1, DIM), np.float32)
    for call in (lambda: db.search("t", q, tenant=None), lambda: db.count("t"),
                 lambda: db.get("t", ["a-0"])):
        with pytest.raises(InvalidArgument) as ei:
            call()
        assert ei.value.field == "tenant"
    for bad in (1.5, True, "", ["a"], {"x": 1}):
        with pytest.raises(InvalidArgument) as ei:
            db.count("t", tenant=bad)
        assert ei.value.field == "tenant"
    # a tenant without points (never written, or dropped) reads as empty
    assert db.search("t", q, k=5, tenant="nobody")[0].ids == []
    assert db.count("t", tenant="nobody") == 0
    assert db.count("t", filter={"key": "i", "match": 1}, tenant="nobody") == 0
    assert db.scroll("t", tenant="nobody").points == []
    assert db.range_search("t", q, threshold=1e9, tenant="nobody")[0].ids == []
    assert db.get("t", ["a-0"], tenant="nobody") == []
    assert db.delete("t", ids=["a-0"], tenant="nobody").count == 0
    assert db.tenant_info("t", "nobody")["points"] == 0
    db.create_collection("plain", DIM)
    with pytest.raises(InvalidArgument) as ei:
        db.count("plain", tenant="a")
    assert ei.value.field == "tenant"
    with pytest.raises(FailedPrecondition) as ei:  # analytics stay unscoped: refused
        db.cluster("t", k=2)
    assert ei.value.field == "collection"


def test_bad_batches_write_nothing(db):
    make(db)
    v = np.ones((3, DIM), np.float32)
    cases = [
        ({"payloads": [{"customer": "a"}, {}, {"customer": "a"}]}, "payloads[1].customer"),
        ({"payloads": [{"customer": "a"}, {"customer": 2.5}, {"customer": "a"}]},
         "payloads[1].customer"),
        ({"payloads": [{"customer": "b"}] * 3, "tenant": "a"}, "payloads[0].customer"),
        ({"payloads": None}, "payloads[0].customer"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidArgument) as ei:
            db.upsert("t", ["n1", "n2", "n3"], v, **kwargs)
        assert ei.value.field == field
    # a point never moves to another tenant (by upsert or by a payload update)
    with pytest.raises(InvalidArgument) as ei:
        db.upsert("t", ["n1", "b-3"], v[:2], tenant="a")
    assert ei.value.field == "ids[1]"
    for kwargs in ({"set": {"customer": "b"}}, {"overwrite": {"customer": "b"}}):
        with pytest.raises(InvalidArgument) as ei:
            db.update_payload("t", ids=["a-1"], tenant="a", **kwargs)
        name = next(iter(kwargs))
        assert ei.value.field == f"{name}.customer"
        assert "differs from the request's tenant" in ei.value.message
    with pytest.raises(InvalidArgument) as ei:
        db.update_payload("t", ids=["a-1"], delete_keys=["customer"], tenant="a")
    assert ei.value.field == "delete_keys"
    assert db.get("t", ["n1", "n2", "n3"], tenant="a") == []
    assert db.count("t", tenant="a") == 30 and db.count("t", tenant="b") == 50
    # overwrite keeps the tenant
    db.update_payload("t", ids=["a-1"], overwrite={"z": 1}, tenant="a")
    assert db.get("t", ["a-1"], tenant="a")[0].payload == {"z": 1, "customer": "a"}


def test_quotas_and_drop(db):
    make(db)
    with pytest.raises(InvalidArgument) as ei:
        db.set_tenant_quota("t", "a", max_points=29)
    assert ei.value.field == "max_points"
    info = db.set_tenant_quota("t", "a", max_points=32)
    assert info["points"] == 30 and info["max_points"] == 32 and info["bytes"] > 30 * DIM * 4
    db.upsert("t", ["a-x", "a-y"], np.ones((2, DIM), np.float32), tenant="a")
    with pytest.raises(ResourceExhausted) as ei:
        db.upsert("t", ["a-z"], np.ones((1, DIM), np.float32), tenant="a")
    assert ei.value.field == "tenant"
    db.upsert("t", ["a-x"], np.zeros((1, DIM), np.float32) + 2, tenant="a")  # replace: fits
    used = db.tenant_info("t", "a")["bytes"]
    with pytest.raises(InvalidArgument):
        db.set_tenant_quota("t", "a", max_bytes=used - 1)
    db.set_tenant_quota("t", "new", max_points=5)  # a quota makes a tenant known
    assert db.count("t", tenant="new") == 0
    assert [t["tenant"] for t in db.list_tenants("t")] == ["a", "b", "new", 7]
    assert db.drop_tenant("t", "a") == 32
    assert db.count("t", tenant="b") == 50 and db.count("t", tenant=7) == 20
    assert db.count("t", tenant="a") == 0  # a dropped tenant reads as empty
    assert db.search("t", np.zeros((1, DIM), np.float32), tenant="a")[0].ids == []
    assert db.collections["t"].count() == 70


def test_partition_and_quotas_survive_reopen(db, reopen):
    vecs = make(db)
    db.set_tenant_quota("t", "b", max_points=60)
    db.delete("t", ids=["b-0"], tenant="b")
    before = db.list_tenants("t")
    db = reopen(db)
    try:
        assert db.list_tenants("t") == before
        q = np.ones((1, DIM), np.float32)
        del vecs["b"]["b-0"]
        assert db.search("t", q, k=5, tenant="b")[0].ids == brute(vecs["b"], q[0], 5)
    finally:
        db.close()


def test_large_tenant_uses_the_ann_index_with_its_labels(db, monkeypatch):
    monkeypatch.setattr(tenant_search, "TENANT_EXACT_MAX", 50)
    db.create_collection("t", DIM, metric="l2", shards=1, index="hnsw",
                         index_params={"build_threshold": 1000}, tenant_field="customer")
    rng = np.random.default_rng(1)
    big = rng.standard_normal((2000, DIM)).astype(np.float32)
    db.upsert("t", [f"big-{i}" for i in range(2000)], big, tenant="big")
    db.upsert("t", [f"s-{i}" for i in range(2000)], rng.standard_normal((2000, DIM)).astype(np.float32),
              tenant="small")
    db.collections["t"].build_indexes()
    q = rng.standard_normal((4, DIM)).astype(np.float32)
    res = db.search("t", q, k=10, tenant="big", params=SearchParams(ef_search=200))
    for i, r in enumerate(res):
        assert "tenant selector" in r.plan
        assert all(pid.startswith("big-") for pid in r.ids) and len(r.ids) == 10
        truth = brute(dict(zip([f"big-{j}" for j in range(2000)], big)), q[i], 10)
        assert len(set(r.ids) & set(truth)) >= 8


def test_a_tenant_lives_in_one_shard_and_ids_are_found_wherever_stored(db):
    db.create_collection("t", DIM, metric="l2", shards=3, index="flat", tenant_field="customer")
    coll = db.collections["t"]
    rng = np.random.default_rng(4)
    for t in ("a", "b", "c", "d"):
        db.upsert("t", [f"{t}{i}" for i in range(40)], rng.standard_normal((40, DIM)).astype(np.float32),
                  [{"n": i} for i in range(40)], ttl=[None] * 39 + [1], tenant=t)
        holding = [s.number for s in coll.shards if ("s", t) in s.tenants.labels]
        assert holding == [coll.tenants.home(("s", t))]
        res = db.search("t", rng.standard_normal((1, DIM)).astype(np.float32), k=5, tenant=t)
        assert res[0].plan.count("shard") == 1 and len(res[0].ids) == 5
    # reads, rewrites and deletes by id find the points in their shard
    assert [p.id for p in db.get("t", ["a3", "b3"], tenant="b")] == ["b3"]
    db.update_payload("t", ids=["c5"], set={"x": 1}, tenant="c")
    assert db.get("t", ["c5"], tenant="c")[0].payload == {"n": 5, "x": 1, "customer": "c"}
    assert db.delete("t", ids=["d7", "d8"], tenant="d").count == 2
    assert coll.count() == 158
    import time
    time.sleep(1.1)
    assert db.expire() == 4  # the TTL'd point of each tenant, deleted in its shard
    assert db.count("t", tenant="a") == 39 and coll.count() == 154


def test_payload_only_updates_keep_the_tenant_and_recount_bytes(db):
    make(db, shards=1)
    coll, shard = db.collections["t"], db.collections["t"].shards[0]
    labels = shard.tenants.sorted_labels(("s", "a"))[:3]
    before = db.tenant_info("t", "a")["bytes"]
    with pytest.raises(InvalidArgument):  # a payload-only write may not move a point
        coll.set_payloads(0, labels, lambda labs, ids, pays: [{**p, "customer": "b"} for p in pays])
    assert db.tenant_info("t", "a")["bytes"] == before
    coll.set_payloads(0, labels, lambda labs, ids, pays: [{**p, "label": "x" * 10} for p in pays])
    grown = len(',"label":"xxxxxxxxxx"')
    assert db.tenant_info("t", "a")["bytes"] == before + 3 * grown
    assert db.count("t", filter={"key": "label", "match": "x" * 10}, tenant="a") == 3


@pytest.mark.parametrize("op", ["delete", "update_payload", "update_vectors", "get"])
def test_a_point_that_changes_tenant_mid_call_is_not_touched(db, op):
    """Tenant "a" names its point X; before the call takes the write lock (or reads the
    record), X is deleted in "a" and re-created by "b". The call must not act on b's X."""
    db.create_collection("t", 4, metric="l2", shards=2, index="flat", tenant_field="customer")
    coll = db.collections["t"]
    db.upsert("t", ["X"], np.ones((1, 4), np.float32), [{"v": "a"}], tenant="a")
    fired = []

    def move_x() -> None:
        if not fired:
            fired.append(1)
            db.delete("t", ["X"], tenant="a")
            db.upsert("t", ["X"], np.full((1, 4), 7, np.float32), [{"v": "b"}], tenant="b")
    hook = {"delete": "_selection", "update_payload": "_selection",
            "update_vectors": "_split_primary", "get": "_route"}[op]
    real = getattr(coll, hook)

    def hooked(*args):
        move_x()
        return real(*args)
    setattr(coll, hook, hooked)
    if op == "delete":
        assert db.delete("t", ["X"], tenant="a").count == 0
    elif op == "update_payload":
        assert db.update_payload("t", ids=["X"], set={"v": "by a"}, tenant="a").count == 0
    elif op == "update_vectors":
        assert db.update_vectors("t", ["X"], np.zeros((1, 4), np.float32), tenant="a").count == 0
    else:
        assert db.get("t", ["X"], tenant="a") == []
    delattr(coll, hook)
    assert fired
    got = db.get("t", ["X"], with_vector=True, tenant="b")
    assert [p.payload for p in got] == [{"v": "b", "customer": "b"}]
    assert got[0].vector.tolist() == [7.0] * 4


def test_reembed_keeps_the_tenant_field_and_quotas(db):
    pytest.importorskip("sentence_transformers")
    from vecdb.encoders.st import minilm_path
    db.create_collection("kb_v1", encoder="minilm", shards=2, tenant_field="customer")
    db.create_alias("kb", "kb_v1")
    db.upsert("kb", ["a1", "a2"], texts=["alpha", "beta"], tenant="a")
    db.upsert("kb", ["b1"], texts=["b's secret"], payloads=[{"s": 1}], tenant="b")
    db.set_tenant_quota("kb", "a", max_points=2)
    db.reembed("kb", f"sentence-transformers:{minilm_path()}", wait=True)
    assert db.catalog.resolve("kb").name != "kb_v1"
    assert db.describe_collection("kb").config.tenant_field == "customer"
    with pytest.raises(InvalidArgument) as ei:
        db.count("kb")
    assert ei.value.field == "tenant"
    assert [p.id for p in db.scroll("kb", tenant="b").points] == ["b1"]
    assert db.tenant_info("kb", "a")["max_points"] == 2
    with pytest.raises(ResourceExhausted):
        db.upsert("kb", ["a3"], texts=["gamma"], tenant="a")


@pytest.mark.parametrize("tarball", [False, True])
def test_a_snapshot_keeps_the_quotas(db, reopen, tarball):
    make(db)
    db.set_tenant_quota("t", "a", max_points=30)
    db.set_tenant_quota("t", "empty", max_points=7, max_bytes=900)
    db.create_snapshot("t", "s1", tarball=tarball)
    db.restore_snapshot("s1", "t2")
    db = reopen(db)  # the quotas are stored, not only in memory
    try:
        assert db.list_tenants("t2") == db.list_tenants("t")
        assert db.tenant_info("t2", "empty")["max_bytes"] == 900
        with pytest.raises(ResourceExhausted) as ei:
            db.upsert("t2", ["a-new"], np.ones((1, DIM), np.float32), tenant="a")
        assert ei.value.field == "tenant"
    finally:
        db.close()


def test_a_filter_in_a_small_tenant_reads_its_labels_not_the_shard_postings(db, monkeypatch):
    """A small tenant's filter is answered from its own labels' indexed values (the shard's
    postings are not built); the answers equal a standalone collection's and the postings
    path's (a large tenant)."""
    from vecdb import payload_index
    indexes = {"lang": "keyword", "n": "integer", "body": "text"}
    db.create_collection("t", DIM, metric="l2", shards=1, index="flat", tenant_field="customer",
                         payload_indexes=indexes)
    db.create_collection("solo", DIM, metric="l2", index="flat", payload_indexes=indexes)
    rng = np.random.default_rng(6)
    words = ["red", "green", "blue", "fox", "dog"]

    def pays(n: int) -> list:
        return [{"lang": ["en", "de", "fr"][i % 3], "n": i,
                 "body": f"{words[i % 5]} {words[i % 4]}"} for i in range(n)]
    db.upsert("t", [f"big{i}" for i in range(3000)], rng.standard_normal((3000, DIM)).astype(
        np.float32), pays(3000), tenant="big")
    vecs = rng.standard_normal((60, DIM)).astype(np.float32)
    db.upsert("t", [f"s{i}" for i in range(60)], vecs, pays(60), tenant="s")
    db.upsert("solo", [f"s{i}" for i in range(60)], vecs, pays(60))
    built = []
    for cls in (payload_index.ValueIndex, payload_index.RangeIndex, payload_index.TokenIndex):
        real = cls.lookup
        monkeypatch.setattr(cls, "lookup",
                            lambda self, c, real=real: built.append(id(self)) or real(self, c))
    mine = {id(part) for fi in db.collections["t"].shards[0].pindex.ready.values()
            for part in fi.parts}
    filters = [{"key": "lang", "match": "de"}, {"key": "lang", "any": ["en", "fr"]},
               {"key": "lang", "except": ["en"]}, {"key": "n", "range": {"gt": 10, "lte": 40}},
               {"key": "body", "text": "fox red"},
               {"must": [{"key": "n", "range": {"gte": 5}}],
                "must_not": [{"key": "lang", "match": "en"}]},
               {"should": [{"key": "lang", "match": "de"}, {"key": "body", "text": "dog"}]}]
    q = np.zeros((1, DIM), np.float32)
    for f in filters:
        want = db.count("solo", filter=f)
        assert 0 < want < 60, f
        assert db.count("t", filter=f, tenant="s") == want, f
        assert db.search("t", q, k=100, filter=f, tenant="s")[0].ids == \
            db.search("solo", q, k=100, filter=f)[0].ids
    assert not mine & set(built)  # a 60-point tenant never built the shard's postings
    monkeypatch.setattr(tenant_search, "TENANT_WITHIN_MAX", 0)
    for f in filters:
        assert db.count("t", filter=f, tenant="s") == db.count("solo", filter=f)
    assert mine & set(built)


def test_a_tenant_scroll_page_reads_the_page_not_the_tenant(db, monkeypatch):
    from vecdb.shard import Shard
    db.create_collection("t", DIM, metric="l2", shards=2, index="flat", tenant_field="customer")
    rng = np.random.default_rng(8)
    for t, n in (("big", 3000), ("small", 40)):
        db.upsert("t", [f"{t}{i}" for i in range(n)], rng.standard_normal((n, DIM)).astype(
            np.float32), [{"n": i % 10} for i in range(n)], tenant=t)
    read: list[int] = []
    real = Shard.iter_records
    monkeypatch.setattr(Shard, "iter_records", lambda self, labels=None: read.append(
        -1 if labels is None else len(labels)) or real(self, labels))
    for f, want in ((None, 3000), ({"key": "n", "match": 3}, 300)):
        got, cursor, pages = [], None, 0
        while True:
            page = db.scroll("t", limit=70, cursor=cursor, filter=f, tenant="big")
            got += [p.id for p in page.points]
            assert all(p.payload["customer"] == "big" for p in page.points)
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(got) == sorted(f"big{i}" for i in range(3000) if f is None or i % 10 == 3)
        assert len(got) == want and pages == -(-want // 70)
    assert read and -1 not in read and max(read) <= 2000  # chunks, never the whole tenant
    db.create_collection("plain", DIM)
    db.upsert("plain", ["p0", "p1"], np.ones((2, DIM), np.float32))
    id_cursor = db.scroll("plain", limit=1).next_cursor
    with pytest.raises(InvalidArgument) as ei:  # an id cursor is not a tenant cursor
        db.scroll("t", limit=5, cursor=id_cursor, tenant="small")
    assert ei.value.field == "cursor"


WORDS = ["red", "blue", "green", "fox", "dog", "cat"]


def twin(db, shards=2):
    """A tenant collection "t" (full_text, tenants "a", "b", 7) and a standalone "s"
    holding exactly tenant "a"'s points: tenant "a"'s reads must answer as "s" does."""
    rng = np.random.default_rng(3)
    db.create_collection("t", DIM, metric="l2", shards=shards, index="flat",
                         tenant_field="customer", full_text="plain")
    db.create_collection("s", DIM, metric="l2", shards=1, index="flat", full_text="plain")
    for t, n in (("a", 40), ("b", 60), (7, 20)):
        ids = [f"{t}-{i}" for i in range(n)]
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        texts = [" ".join(rng.choice(WORDS, 3)) for _ in range(n)]
        pays = [{"i": i, "g": i % 4} for i in range(n)]
        db.upsert("t", ids, v, pays, texts=texts, tenant=t)
        if t == "a":
            db.upsert("s", ids, v, [{**p, "customer": "a"} for p in pays], texts=texts)


def same(got, want):
    assert got.ids == want.ids
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["average", "best_score"])
def test_recommend_in_a_tenant_equals_a_standalone_collection(db, strategy):
    twin(db)
    for pos, neg in ((["a-0", "a-5"], ["a-9"]), (["a-3"], None)):
        for flt in (None, {"key": "i", "range": {"gte": 10}}):
            got = db.recommend("t", pos, neg, strategy, k=8, filter=flt, tenant="a")
            same(got, db.recommend("s", pos, neg, strategy, k=8, filter=flt))
            assert all(i.startswith("a-") for i in got.ids)
    # another tenant's ids are not found, exactly like absent ones (same error, same field)
    for other in ("b-0", "7-0"):
        errs = []
        for pid in (other, "nowhere"):
            with pytest.raises(NotFound) as ei:
                db.recommend("t", ["a-0"], [pid], strategy, tenant="a")
            errs.append((ei.value.field, str(ei.value).replace(repr(pid), "ID")))
        assert errs[0] == errs[1] and errs[0][0] == "negative[0]"
    with pytest.raises(InvalidArgument) as ei:
        db.recommend("t", ["a-0"])
    assert ei.value.field == "tenant"


def test_expression_and_grouped_search_stay_in_the_tenant(db):
    twin(db)
    expr = [("+", "id:a-1"), ("-", "id:a-2"), (0.5, "id:a-7")]
    same(db.search_expression("t", expr, k=6, tenant="a"), db.search_expression("s", expr, k=6))
    with pytest.raises(NotFound) as ei:
        db.search_expression("t", [("+", "id:b-1")], tenant="a")
    assert ei.value.field.startswith("expression")
    q = np.random.default_rng(5).standard_normal((2, DIM)).astype(np.float32)
    for flt in (None, {"key": "i", "range": {"lt": 30}}):
        got = db.search_groups("t", q, group_by="g", group_size=3, groups=3, filter=flt,
                               tenant="a")
        want = db.search_groups("s", q, group_by="g", group_size=3, groups=3, filter=flt)
        for g, w in zip(got, want):
            same(g, w)
            assert g.group_keys == w.group_keys and all(i.startswith("a-") for i in g.ids)
    # grouped by the tenant field itself: one group, the tenant's
    one = db.search_groups("t", q[:1], group_by="customer", group_size=2, groups=5, tenant="a")[0]
    assert one.group_keys == ["a", "a"]
    got = db.search_groups("t", expression=expr, group_by="g", group_size=2, groups=2,
                           tenant="a")[0]
    assert got.ids == db.search_groups("s", expression=expr, group_by="g", group_size=2,
                                       groups=2)[0].ids


def test_keyword_and_hybrid_search_keep_to_the_tenant(db):
    twin(db)
    q = np.random.default_rng(6).standard_normal((1, DIM)).astype(np.float32)
    for words in ("fox", "red dog", "cat green blue"):
        got = db.search("t", keywords=words, k=100, tenant="a")[0]
        want = db.search("s", keywords=words, k=100)[0]
        # the same hits; scores use the shard's BM25 statistics (docs/tenants.md)
        assert sorted(got.ids) == sorted(want.ids) and got.ids
        assert all(i.startswith("a-") for i in got.ids)
        flt = {"key": "i", "range": {"lt": 20}}
        got = db.search("t", keywords=words, k=100, filter=flt, tenant="a")[0]
        assert sorted(got.ids) == sorted(db.search("s", keywords=words, k=100, filter=flt)[0].ids)
        hyb = db.search("t", q, keywords=words, k=100, tenant="a")[0]
        assert set(hyb.ids) == {f"a-{i}" for i in range(40)}  # dense part: every point of "a"
    assert db.search("t", keywords="fox", k=5, tenant="nobody")[0].ids == []
    with pytest.raises(InvalidArgument) as ei:
        db.search("t", keywords="fox", k=5)
    assert ei.value.field == "tenant"
