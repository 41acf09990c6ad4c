"""Every RPC through the blocking SDK against a real in-process server."""
from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harness import rand
from vecdb_client import (AlreadyExistsError, Client, DeadlineExceededError, Hit,
                          NotFoundError, Point)


@pytest.fixture
def coll(client, coll_name):
    client.create_collection(coll_name, dim=8)
    yield coll_name
    client.drop_collection(coll_name)


def test_collection_lifecycle(client, coll_name):
    info = client.create_collection(coll_name, dim=16, metric="l2", index="hnsw", shards=2,
                                    M=16, ef_search=32)
    assert (info.name, info.dim, info.points, len(info.shards)) == (coll_name, 16, 0, 2)
    assert info.config.metric == "l2" and info.config.index == "hnsw"
    assert info.config.index_params == {"M": 16, "ef_search": 32}
    assert coll_name in [c.name for c in client.list_collections()]
    assert client.describe_collection(coll_name).config == info.config
    with pytest.raises(AlreadyExistsError):
        client.create_collection(coll_name, dim=16)
    client.drop_collection(coll_name)
    assert coll_name not in [c.name for c in client.list_collections()]
    with pytest.raises(NotFoundError):
        client.describe_collection(coll_name)


def test_aliases(client, coll, coll_name):
    other = coll_name + "_b"
    client.create_collection(other, dim=8)
    try:
        client.create_alias("al_" + coll_name, coll)
        with pytest.raises(AlreadyExistsError) as ei:
            client.create_alias("al_" + coll_name, other)
        assert ei.value.request_id
        assert client.describe_collection("al_" + coll_name).name == coll
        assert client.describe_collection(coll).aliases == ("al_" + coll_name,)
        client.set_alias("al_" + coll_name, other)  # atomic re-point
        assert client.list_aliases(other) == {"al_" + coll_name: other}
        assert client.list_aliases(coll) == {}
        assert client.list_aliases()["al_" + coll_name] == other
        client.upsert("al_" + coll_name, ["x"], rand(1, 8))  # writes through the alias
        assert client.count(other) == 1
        client.delete_alias("al_" + coll_name)
        with pytest.raises(NotFoundError):
            client.delete_alias("al_" + coll_name)
    finally:
        client.drop_collection(other)


def test_points_roundtrip(client, coll):
    vecs = rand(40, 8, seed=1)
    ids = [f"p{i}" for i in range(40)]
    payloads = [{"i": i, "tag": "even" if i % 2 == 0 else "odd", "nested": {"a": [1, 2]}}
                if i % 5 else None for i in range(40)]
    texts = [f"text {i}" if i % 3 == 0 else None for i in range(40)]
    res = client.upsert(coll, ids, vecs, payloads=payloads, texts=texts)
    assert res.count == 40 and res.shard_seqs
    assert client.count(coll) == 40
    got = client.get(coll, ["p3", "missing", "p0", "p10"], with_vectors=True)
    assert [p.id for p in got] == ["p3", "p0", "p10"]  # request order, missing omitted
    assert isinstance(got[0], Point)
    assert got[0].payload == payloads[3] and got[1].payload is None
    assert got[0].text == "text 3" and got[2].text is None
    np.testing.assert_array_equal(got[0].vector, vecs[3])
    bare = client.get(coll, ["p3"], with_payload=False)
    assert bare[0].payload is None and bare[0].vector is None
    # plain lists are accepted as well as numpy arrays
    client.upsert(coll, ["p0"], [[float(x) for x in vecs[0] * 2]], payloads=[{"v": 2}])
    assert client.get(coll, ["p0"])[0].payload == {"v": 2}
    assert client.count(coll) == 40
    res = client.delete(coll, ["p0", "p1", "never"])
    assert res.count == 2 and client.count(coll) == 38
    assert client.get(coll, ["p0", "p1"]) == []


def test_scroll_and_iterate(client, coll):
    ids = [f"s{i:03d}" for i in range(57)]
    client.upsert(coll, ids, rand(57, 8, seed=2), payloads=[{"i": i} for i in range(57)])
    page = client.scroll(coll, limit=20)
    assert len(page.points) == 20 and page.next_cursor
    seen, cursor = [], None
    while True:
        page = client.scroll(coll, 20, cursor, with_vectors=True)
        seen += page.points
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(p.id for p in seen) == ids and seen[0].vector.shape == (8,)
    assert sorted(p.id for p in client.iter_points(coll, batch_size=7)) == ids
    assert {p.payload["i"] for p in client.iter_points(coll)} == set(range(57))


def test_search_single_and_batch(client, coll):
    vecs = rand(100, 8, seed=3)
    client.upsert(coll, [f"v{i}" for i in range(100)], vecs,
                  payloads=[{"i": i} for i in range(100)])
    hits = client.search(coll, vector=vecs[7], k=5)
    assert isinstance(hits[0], Hit) and hits[0].id == "v7" and len(hits) == 5
    assert hits[0].payload == {"i": 7} and hits[0].vector is None
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))  # cosine: higher first
    batch = client.search(coll, vectors=vecs[:3].tolist(), k=4, with_vectors=True,
                          with_payload=False, exact=True)
    assert [r[0].id for r in batch] == ["v0", "v1", "v2"]
    assert batch[0][0].payload is None and batch[0][0].vector.shape == (8,)
    assert len(client.search(coll, vector=list(vecs[0]), k=1000)) == 100


def test_l2_scores_are_squared_distances_lower_first(client, coll_name):
    client.create_collection(coll_name, dim=2, metric="l2", index="flat")
    try:
        client.upsert(coll_name, ["o", "a", "b"], [[0, 0], [1, 0], [3, 4]])
        hits = client.search(coll_name, vector=np.zeros(2, np.float32), k=3)
        assert [(h.id, h.score) for h in hits] == [("o", 0.0), ("a", 1.0), ("b", 25.0)]
    finally:
        client.drop_collection(coll_name)


def test_streaming_upsert_in_chunks_with_progress(server, coll):
    calls = []
    with server.client(chunk_bytes=8 * 1024) as c:  # ~ 200 points of dim 8 per batch
        res = c.upsert(coll, [f"b{i}" for i in range(1500)], rand(1500, 8, seed=4),
                       payloads=[{"i": i} for i in range(1500)],
                       progress=lambda done, total: calls.append((done, total)))
        assert res.count == 1500 and c.count(coll) == 1500
    assert len(calls) > 3 and calls[-1] == (1500, 1500)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_deadline_is_enforced(client, coll):
    # enough work (2,000 exact queries x 20,000 points, 200k hits) that the answer
    # cannot come back inside grpc's timer granularity: a tiny search once did
    client.upsert(coll, [f"d{i}" for i in range(20_000)], rand(20_000, 8))
    with pytest.raises(DeadlineExceededError):
        client.search(coll, vectors=rand(2_000, 8, seed=1), k=100, exact=True, timeout=1e-6)


def test_health_and_reflection(server, client):
    assert client.health() == "SERVING"
    with grpc.insecure_channel(server.target) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="vecdb.v1.PointService"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        reply = next(stub.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
    assert {"vecdb.v1.CollectionService", "vecdb.v1.PointService",
            "grpc.health.v1.Health"} <= names


def test_context_manager_closes_channel(server):
    with Client(server.target) as c:
        assert c.list_collections() is not None
    with pytest.raises(Exception):
        c.list_collections()
