"""Named vectors over gRPC (docs/named_vectors.md): create with vector fields, upsert
partial vector sets (one call and streamed batches), get them back, search / range search
/ recommend with using=, update_vectors of one field, bad input named by field with
nothing written; the sync SDK on the threaded server and AsyncClient on the aio server;
an old-style request (no named fields) on a named collection still works; vecdbctl
collections create --vector, search/range-search/recommend --using, get --with-vectors."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from harness import InProcessServer
from test_cli import cli
from vecdb_client import AsyncClient, InvalidArgumentError

N = 120
FIELDS = [{"name": "image", "dim": 6, "metric": "ip", "index": "flat"},
          {"name": "body", "dim": 5, "metric": "l2", "index": "flat"}]


def data():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(N, 8)).astype("f4"), rng.normal(size=(N, 6)).astype("f4"),
            rng.normal(size=(N, 5)).astype("f4"))


def named(image, body):
    return {"image": [v if i % 2 == 0 else None for i, v in enumerate(image)],
            "body": [v if i % 3 == 0 else None for i, v in enumerate(body)]}


def top(vecs, present, q, k, metric):
    rows = [i for i in range(len(vecs)) if present(i)]
    s = vecs[rows] @ q if metric == "ip" else -((vecs[rows] - q) ** 2).sum(1)
    return [f"p{rows[j]}" for j in np.argsort(-s, kind="stable")[:k]]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcessServer(tmp_path_factory.mktemp("named") / "data")
    yield s
    s.stop()


def test_named_vectors_over_grpc(srv):
    title, image, body = data()
    ids = [f"p{i}" for i in range(N)]
    with srv.client(chunk_points=25) as c:  # several streamed batches
        info = c.create_collection("nv", 8, index="flat", shards=2, vector_name="title",
                                   vectors=FIELDS)
        assert info.config.vector_name == "title"
        assert [f["name"] for f in info.config.vectors] == ["image", "body"]
        c.upsert("nv", ids, title, payloads=[{"i": i} for i in range(N)],
                 named=named(image, body))
        p0, p1, p3 = c.get("nv", ["p0", "p1", "p3"], with_vectors=True)
        assert set(p0.vectors) == {"image", "body"} and not p1.vectors and set(p3.vectors) == {"body"}
        np.testing.assert_array_equal(p3.vectors["body"], body[3])
        for q in np.random.default_rng(2).normal(size=(3, 8)).astype("f4"):
            hits = c.search("nv", q[:6], k=7, using="image", with_vectors=True)
            assert [h.id for h in hits] == top(image, lambda i: i % 2 == 0, q[:6], 7, "ip")
            np.testing.assert_array_equal(hits[0].vector, image[int(hits[0].id[1:])])
            hits = c.search("nv", q[:5], k=7, using="body", filter={"key": "i", "range": {"lt": 60}})
            assert [h.id for h in hits] == top(body, lambda i: i % 3 == 0 and i < 60, q[:5], 7, "l2")
            assert len(c.search("nv", q, k=5)) == 5  # the primary, as an old client asks
        d = ((body - body[0]) ** 2).sum(1)
        got = c.range_search("nv", body[0], threshold=6.0, using="body")
        assert {h.id for h in got} == {f"p{i}" for i in range(0, N, 3) if d[i] < 6.0}
        rec = c.recommend("nv", ["p0", "p2"], k=4, using="image")
        want = [p for p in top(image, lambda i: i % 2 == 0, (image[0] + image[2]) / 2, 6, "ip")
                if p not in ("p0", "p2")][:4]
        assert [h.id for h in rec] == want
        c.update_vectors("nv", ["p1"], named={"image": [image[0]]})
        p1 = c.get("nv", ["p1"], with_vectors=True)[0]
        assert set(p1.vectors) == {"image"} and p1.payload == {"i": 1}
        np.testing.assert_array_equal(p1.vector, title[1])
        with pytest.raises(InvalidArgumentError) as e:
            c.upsert("nv", ["x", "y"], title[:2], named={"image": [None, np.ones(5)]})
        assert e.value.field == "points[1].vectors.image"
        with pytest.raises(InvalidArgumentError) as e:
            c.upsert("nv", ["x"], title[:1], named={"color": [np.ones(3)]})
        assert e.value.field == "vectors.color"
        with pytest.raises(InvalidArgumentError) as e:
            c.search("nv", np.ones(6), using="nope")
        assert e.value.field == "using"
        assert c.count("nv") == N and not c.get("nv", ["x", "y"])


def test_async_client_on_the_aio_server(spawn):
    title, image, body = data()
    srv = spawn("--server-mode", "aio")

    async def run():
        async with AsyncClient(srv.target, timeout=20) as c:
            await c.create_collection("nva", 8, index="flat", vectors=FIELDS)
            await c.upsert("nva", [f"p{i}" for i in range(N)], title, named=named(image, body))
            hits = await c.search("nva", body[3], k=3, using="body")
            assert [h.id for h in hits] == top(body, lambda i: i % 3 == 0, body[3], 3, "l2")
            await c.update_vectors("nva", ["p3"], named={"body": [body[6]]})
            got = (await c.get("nva", ["p3"], with_vectors=True))[0]
            np.testing.assert_array_equal(got.vectors["body"], body[6])
            rec = await c.recommend("nva", ["p2"], k=1, using="image", include_examples=True)
            assert rec[0].id == top(image, lambda i: i % 2 == 0, image[2], 1, "ip")[0]
    asyncio.run(run())


def test_vecdbctl_vector_fields_and_using(srv):
    title, image, body = data()
    out = cli("collections", "create", "nvc", "--dim", "8", "--index", "flat",
              "--vector", "image:6:ip:flat", "--vector", "body:5:l2", "-o", "json", host=srv.target)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert [(f["name"], f["dim"], f["metric"], f["index"]) for f in d["vectors"]] == \
        [("image", 6, "ip", "flat"), ("body", 5, "l2", "auto")]
    with srv.client() as c:
        c.upsert("nvc", [f"p{i}" for i in range(N)], title, named=named(image, body))
    q = json.dumps(image[4].tolist())
    out = cli("search", "nvc", "--vector", q, "--using", "image", "-k", "3", "-o", "json",
              host=srv.target)
    assert out.returncode == 0, out.stderr
    assert [h["id"] for h in json.loads(out.stdout)["results"][0]] == \
        top(image, lambda i: i % 2 == 0, image[4], 3, "ip")
    out = cli("recommend", "nvc", "--positive", "p4", "--using", "body", "-k", "2", "-o", "json",
              host=srv.target)
    assert out.returncode != 0 and "not found" in out.stderr  # p4 carries no body vector
    out = cli("points", "get", "nvc", "p0", "--with-vectors", "-o", "json", host=srv.target)
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)["points"][0]["vectors"]) == {"image", "body"}
    bad = cli("collections", "create", "nvd", "--dim", "8", "--vector", "image", host=srv.target)
    assert bad.returncode != 0 and "NAME:DIM" in bad.stderr


def test_field_encoder_over_grpc(srv):
    pytest.importorskip("sentence_transformers")
    with srv.client() as c:
        info = c.create_collection("nve", 4, vectors=[{"name": "s", "encoder": "minilm"}])
        assert info.config.vectors == [{"name": "s", "dim": 384, "metric": "cosine",
                                        "index": "auto", "encoder": "minilm"}]
        c.upsert("nve", ["stew", "bike"], np.ones((2, 4), "f4"),
                 texts=["slow cooked beef stew", "how to change a bicycle tyre"])
        assert [h.id for h in c.search("nve", text="flat tire repair", k=1, using="s")] == ["bike"]
        with pytest.raises(InvalidArgumentError) as e:
            c.search("nve", text="stew", k=1, using="nope")
        assert e.value.field == "using"


def test_points_without_the_primary_over_grpc(srv):
    """An upsert with named vectors and no primary vectors is accepted; reads send the
    primary of a batch where some point lacks it as named_vectors "" (the SDK lifts it
    back into Point.vector); count, scroll and search by field include those points."""
    title, image, _body = data()
    with srv.client(chunk_points=7) as c:
        c.create_collection("nvp", 8, index="flat", shards=2, vector_name="title",
                            vectors=FIELDS[:1])
        c.upsert("nvp", [f"a{i}" for i in range(20)], None, named={"image": image[:20]})
        c.upsert("nvp", ["b0", "b1"], named={"title": [title[0], None],
                                             "image": [None, image[21]]})
        c.upsert("nvp", ["c0", "c1"], named={"": [title[3], None], "image": [None, image[3]]})
        c0, c1 = c.get("nvp", ["c0", "c1"], with_vectors=True)  # "" names the primary too
        np.testing.assert_array_equal(c0.vector, title[3])
        assert c1.vector is None and c0.vectors == {}
        c.delete("nvp", ["c0", "c1"])
        assert c.count("nvp") == 22 and len(c.scroll("nvp", limit=100).points) == 22
        a0, b0, b1 = c.get("nvp", ["a0", "b0", "b1"], with_vectors=True)
        assert a0.vector is None and set(a0.vectors) == {"image"}
        np.testing.assert_array_equal(b0.vector, title[0])
        assert b0.vectors == {} and b1.vector is None
        q = image[5]
        got = c.search("nvp", q, k=5, using="image")
        rows = list(range(20)) + [21]
        want = [("a%d" % r if r < 20 else "b1") for r in
                np.array(rows)[np.argsort(-(image[rows] @ q), kind="stable")[:5]]]
        assert [h.id for h in got] == want
        assert [h.id for h in c.search("nvp", title[0], k=5)] == ["b0"]
        with pytest.raises(InvalidArgumentError) as e:  # no vector at all: nothing written
            c.upsert("nvp", ["x", "y"], named={"image": [image[0], None]})
        assert "points[1].vectors" in str(e.value)
        assert c.count("nvp") == 22
