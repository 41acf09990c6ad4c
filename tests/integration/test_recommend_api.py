"""Recommend, vector arithmetic and grouped search through real gRPC servers (threaded
in-process, aio subprocess), Client and AsyncClient, and the vecdbctl entry point; checked
against brute-force numpy references, plus a semantic check with the MiniLM encoder on
tests/data/topics.jsonl (4 topics x 50 sentences)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import ROOT, SRC_PATHS, rand
from vecdb_client import (
    AsyncClient,
    FailedPreconditionError,
    Group,
    InvalidArgumentError,
    NotFoundError,
)

DIM = 12
N = 600
TOPICS = [json.loads(line) for line in (ROOT / "tests/data/topics.jsonl").read_text().splitlines()]


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_top(ids, X, q, k, skip=()):
    """Cosine top-k of q over the rows of X, leaving out ``skip``."""
    s = unit(X) @ unit(q)
    order = [j for j in np.argsort(-s, kind="stable") if ids[j] not in skip][:k]
    return [ids[j] for j in order], s[order]


def ref_best(ids, X, pos, neg, k, skip=()):
    V = unit(X)
    bp = (V @ unit(pos).T).max(1)
    bn = (V @ unit(neg).T).max(1) if len(neg) else np.full(len(V), -np.inf)
    sig = lambda x: 0.5 * (x / (1 + np.abs(x)) + 1)
    s = np.where(bp > bn, sig(bp), -sig(np.where(bp > bn, 0, bn)))
    order = [j for j in np.argsort(-s, kind="stable") if ids[j] not in skip][:k]
    return [ids[j] for j in order]


def ref_groups(ids, X, pays, q, key, size, count, skip=()):
    ranked, _ = ref_top(ids, X, q, len(ids), skip)
    groups: dict = {}
    for pid in ranked:
        v = pays[ids.index(pid)].get(key)
        if v is not None:
            groups.setdefault(v, []).append(pid)
    return [(g, hits[:size]) for g, hits in list(groups.items())[:count]]


@pytest.fixture(scope="module")
def data(client):
    X = rand(N, DIM, seed=21)
    ids = [f"p{i}" for i in range(N)]
    pays = [{"author": f"a{i % 9}" if i % 10 else f"rare{i % 4}", "n": i} for i in range(N)]
    client.create_collection("beyond", dim=DIM, index="flat", shards=3)
    client.upsert("beyond", ids, X, payloads=pays)
    return ids, X, pays


def _check_sync(c, data, coll="beyond"):
    """The three features through one client, each against its numpy reference."""
    ids, X, pays = data
    q = unit(X[[1, 2]]).mean(0) - unit(X[[3]]).mean(0)
    got = c.recommend(coll, ["p1", "p2"], ["p3"], k=8)
    assert [h.id for h in got] == ref_top(ids, X, q, 8, {"p1", "p2", "p3"})[0]
    got = c.recommend(coll, ["p1", X[50]], [{"id": "p3"}], strategy="best_score", k=8)
    assert [h.id for h in got] == ref_best(ids, X, X[[1, 50]], X[[3]], 8, {"p1", "p3"})
    flt = {"key": "n", "range": {"gte": 300}}
    got = c.recommend(coll, ["p1"], k=5, filter=flt)
    skip = {"p1"} | {f"p{i}" for i in range(300)}
    assert [h.id for h in got] == ref_top(ids, X, X[1], 5, skip)[0]
    expr = [("+", "id:p7"), ("-", "id:p8"), (0.5, X[9].tolist())]
    qe = unit(X[7]) - unit(X[8]) + 0.5 * unit(X[9])
    got = c.search(coll, expression=expr, k=6)
    want, scores = ref_top(ids, X, qe, 6, {"p7", "p8"})
    assert [h.id for h in got] == want
    np.testing.assert_allclose([h.score for h in got], scores, atol=1e-4)
    got = c.search(coll, expression=expr, k=6, include_terms=True, filter=flt)
    assert [h.id for h in got] == ref_top(ids, X, qe, 6, {f"p{i}" for i in range(300)})[0]
    groups = c.search(coll, vector=X[11], group_by="author", group_size=2, groups=12)
    assert all(isinstance(g, Group) for g in groups)
    assert [(g.key, [h.id for h in g.hits]) for g in groups] == \
        ref_groups(ids, X, pays, X[11], "author", 2, 12)
    batch = c.search(coll, vectors=X[[11, 12]], group_by="author", groups=3)
    assert [(g.key, [h.id for h in g.hits]) for g in batch[1]] == \
        ref_groups(ids, X, pays, X[12], "author", 1, 3)


def test_threaded_server_sync_client(client, data):
    _check_sync(client, data)


def test_async_client(server, data):
    ids, X, pays = data

    async def scenario():
        async with AsyncClient(server.target, timeout=20) as c:
            got = await c.recommend("beyond", ["p1", "p2"], ["p3"], k=8)
            q = unit(X[[1, 2]]).mean(0) - unit(X[[3]]).mean(0)
            assert [h.id for h in got] == ref_top(ids, X, q, 8, {"p1", "p2", "p3"})[0]
            got = await c.recommend("beyond", ["p4"], ["p5", "p6"], strategy="best_score", k=5)
            assert [h.id for h in got] == ref_best(ids, X, X[[4]], X[[5, 6]], 5, {"p4", "p5", "p6"})
            got = await c.search("beyond", expression=[{"id": "p7", "weight": 2}, ("-", "id:p8")], k=4)
            assert [h.id for h in got] == ref_top(ids, X, 2 * unit(X[7]) - unit(X[8]), 4, {"p7", "p8"})[0]
            # the sign multiplies a dict's weight: "-" with weight 2 is -2 (SDK and server agree)
            got = await c.search("beyond", expression=[("+", "id:p7"),
                                                       ("-", {"id": "p8", "weight": 2})], k=4)
            assert [h.id for h in got] == ref_top(ids, X, unit(X[7]) - 2 * unit(X[8]), 4, {"p7", "p8"})[0]
            groups = await c.search("beyond", vector=X[11], group_by="author", groups=4, group_size=3)
            assert [(g.key, [h.id for h in g.hits]) for g in groups] == \
                ref_groups(ids, X, pays, X[11], "author", 3, 4)
            with pytest.raises(NotFoundError) as e:
                await c.recommend("beyond", ["p1", "missing"])
            assert e.value.field == "positive[1]"
    asyncio.run(scenario())


def test_aio_server(spawn, data):
    srv = spawn("--server-mode", "aio")
    ids, X, pays = data
    with srv.client() as c:
        c.create_collection("beyond", dim=DIM, index="flat", shards=2)
        c.upsert("beyond", ids, X, payloads=pays)
        _check_sync(c, data)


def test_bad_input_over_grpc(client, data):
    def err(cls, fn, field):
        with pytest.raises(cls) as e:
            fn()
        assert e.value.field == field and e.value.request_id and "Traceback" not in e.value.message
        return e.value.message

    before = client.describe_collection("beyond").shards
    err(InvalidArgumentError, lambda: client.recommend("beyond", []), "positive")
    assert "'zz'" in err(NotFoundError, lambda: client.recommend("beyond", ["p1"], ["zz"]), "negative[0]")
    err(FailedPreconditionError, lambda: client.recommend("beyond", [{"text": "hello"}]), "positive[0]")
    err(InvalidArgumentError, lambda: client.recommend("beyond", ["p1"], k=10_001), "k")
    err(InvalidArgumentError, lambda: client.recommend("beyond", ["p1"], strategy="mean"), "strategy")
    err(FailedPreconditionError, lambda: client.search("beyond", expression=[("+", "text:a")]),
        "expression[0]")
    err(NotFoundError, lambda: client.search("beyond", expression=[("+", "id:p1"), ("-", "id:q")]),
        "expression[1]")
    err(InvalidArgumentError, lambda: client.search("beyond", expression=[("+", [1.0, 2.0])]),
        "expression[0]")
    err(InvalidArgumentError, lambda: client.search("beyond", vector=data[1][0], group_by="author",
                                                    groups=1000, group_size=100), "groups")
    client.create_collection("beyond_bad", dim=DIM, index="flat")
    client.upsert("beyond_bad", ["a", "b"], data[1][:2], payloads=[{"tags": ["x"]}, {"tags": "y"}])
    assert "'tags'" in err(InvalidArgumentError, lambda: client.search(
        "beyond_bad", vector=data[1][0], group_by="tags"), "group_by")
    # client-side: only what cannot be encoded
    with pytest.raises(InvalidArgumentError) as e:
        client.search("beyond", expression=[("*", "id:p1")])
    assert e.value.field == "expression[0]" and e.value.request_id is None
    assert [s.applied_seq for s in client.describe_collection("beyond").shards] == \
        [s.applied_seq for s in before]


# ---- semantic: the built-in MiniLM encoder on 4 clear topics ------------------------------
@pytest.fixture(scope="module")
def topics(client):
    client.create_collection("topics", encoder="minilm")
    client.upsert("topics", [t["id"] for t in TOPICS], texts=[t["text"] for t in TOPICS],
                  payloads=[{"topic": t["topic"]} for t in TOPICS])
    return {t["id"]: t["topic"] for t in TOPICS}


def test_recommend_prefers_the_positive_topic(client, topics):
    for strategy in ("average", "best_score"):
        hits = client.recommend("topics", ["cook-00"], ["foot-00"], strategy=strategy, k=10)
        got = [topics[h.id] for h in hits]
        assert got.count("cooking") >= 8 and "football" not in got, (strategy, got)
    hits = client.recommend("topics", [{"text": "a slow-cooked stew with garlic and herbs"}],
                            [{"text": "the striker scored in the final minute"}], k=10)
    assert [topics[h.id] for h in hits].count("cooking") >= 8


def test_arithmetic_with_texts_and_groups_by_topic_equal_the_reference(server, client, topics):
    pts = list(client.iter_points("topics", with_vectors=True))
    ids, X = [p.id for p in pts], np.stack([p.vector for p in pts])
    pays = [p.payload for p in pts]
    texts = ["looking through a telescope", "baking bread"]
    with server.app.engine.session() as db:  # the collection's own encoder, as the server runs it
        T = db.embed_queries("topics", texts)
    q = unit(X[ids.index("astro-03")]) - unit(T[0]) + unit(T[1])
    got = client.search("topics", expression=[("+", "id:astro-03"), ("-", f"text:{texts[0]}"),
                                              ("+", f"text:{texts[1]}")], k=10)
    want, scores = ref_top(ids, X, q, 10, {"astro-03"})
    assert [h.id for h in got] == want
    np.testing.assert_allclose([h.score for h in got], scores, atol=1e-4)
    groups = client.search("topics", text="which planets can you see tonight", group_by="topic",
                           groups=4, group_size=3)
    with server.app.engine.session() as db:
        qt = db.embed_queries("topics", ["which planets can you see tonight"])[0]
    assert [(g.key, [h.id for h in g.hits]) for g in groups] == \
        ref_groups(ids, X, pays, qt, "topic", 3, 4)
    assert groups[0].key == "astronomy" and len(groups) == 4


# ---- the CLI through the installed vecdbctl entry point ------------------------------------
def vecdbctl(target, *args):
    exe = str(Path(sys.executable).parent / "vecdbctl")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS)}
    env.pop("VECDB_HOST", None)
    return subprocess.run([exe, "--host", target, *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_cli(server, data):
    ids, X, pays = data
    out = vecdbctl(server.target, "recommend", "beyond", "--positive", "p1", "p2", "--negative",
                   "p3", "-k", "5", "-o", "json")
    assert out.returncode == 0, out.stderr
    q = unit(X[[1, 2]]).mean(0) - unit(X[[3]]).mean(0)
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == \
        ref_top(ids, X, q, 5, {"p1", "p2", "p3"})[0]
    out = vecdbctl(server.target, "recommend", "beyond", "--positive", "p4",
                   "--negative-vector", json.dumps(X[5].tolist()), "--strategy", "best_score",
                   "-k", "4", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == \
        ref_best(ids, X, X[[4]], X[[5]], 4, {"p4"})
    out = vecdbctl(server.target, "search", "beyond", "--plus", "id:p7", "--minus", "id:p8",
                   "--term", "0.5", json.dumps(X[9].tolist()), "-k", "6", "-o", "json")
    assert out.returncode == 0, out.stderr
    qe = unit(X[7]) - unit(X[8]) + 0.5 * unit(X[9])
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == \
        ref_top(ids, X, qe, 6, {"p7", "p8"})[0]
    out = vecdbctl(server.target, "search", "beyond", "--vector", json.dumps(X[11].tolist()),
                   "--group-by", "author", "--group-size", "2", "--groups", "5", "-o", "json")
    assert out.returncode == 0, out.stderr
    got = [(g["key"], [h["id"] for h in g["hits"]]) for g in json.loads(out.stdout)["results"][0]]
    assert got == ref_groups(ids, X, pays, X[11], "author", 2, 5)
    out = vecdbctl(server.target, "search", "beyond", "--vector", json.dumps(X[11].tolist()),
                   "--group-by", "author", "--groups", "2")
    assert out.returncode == 0 and "author = " in out.stdout, out.stderr
    out = vecdbctl(server.target, "recommend", "beyond", "--positive", "nope")
    assert out.returncode == 1 and "positive[0]" in out.stderr and "Traceback" not in out.stderr
    out = vecdbctl(server.target, "search", "beyond", "--plus", "p1")
    assert out.returncode == 2 and "id:ID" in out.stderr
