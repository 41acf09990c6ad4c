"""Every bad input gets the right status code and a message naming the field, writes
nothing, and leaves the server SERVING. Cases go through the SDK; wire-level
malformations (that the SDK cannot produce) go through the raw stubs."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from harness import rand
from vecdb_client import (AlreadyExistsError, InvalidArgumentError, NotFoundError,
                          ResourceExhaustedError, VecdbClientError)
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

DIM = 4
IDS = [f"r{i}" for i in range(10)]


@pytest.fixture(scope="module")
def ref(client):
    """A reference collection with an alias and 10 points; its state must never change."""
    client.create_collection("ref", dim=DIM)
    client.create_alias("ref_alias", "ref")
    client.upsert("ref", IDS, rand(10, DIM, seed=9), payloads=[{"i": i} for i in range(10)])
    return "ref"


def snapshot(c):
    pts = c.get("ref", IDS, with_vectors=True)
    return (c.count("ref"), [(p.id, p.payload, p.vector.tobytes()) for p in pts],
            sorted(x.name for x in c.list_collections()), c.list_aliases())


V = rand(1, DIM, seed=1)
CASES = {
    # collections
    "create bad name": (InvalidArgumentError, "name", lambda c: c.create_collection("bad name!", 4)),
    "create dim 0": (InvalidArgumentError, "dim", lambda c: c.create_collection("n1", 0)),
    "create dim negative": (InvalidArgumentError, "dim", lambda c: c.create_collection("n1", -3)),
    "create dim huge": (InvalidArgumentError, "dim", lambda c: c.create_collection("n1", 10**6)),
    "create metric": (InvalidArgumentError, "metric", lambda c: c.create_collection("n1", 4, "hamming")),
    "create index": (InvalidArgumentError, "index", lambda c: c.create_collection("n1", 4, index="lsh")),
    "create index param": (InvalidArgumentError, "foo",
                           lambda c: c.create_collection("n1", 4, index="hnsw", foo=3)),
    "create shards 0": (InvalidArgumentError, "shards", lambda c: c.create_collection("n1", 4, shards=0)),
    "create exists": (AlreadyExistsError, "ref", lambda c: c.create_collection("ref", 4)),
    "describe missing": (NotFoundError, "nope", lambda c: c.describe_collection("nope")),
    "drop missing": (NotFoundError, "nope", lambda c: c.drop_collection("nope")),
    "drop via alias": (NotFoundError, "alias", lambda c: c.drop_collection("ref_alias")),
    "alias to missing": (NotFoundError, "nope", lambda c: c.create_alias("a9", "nope")),
    "alias taken": (AlreadyExistsError, "ref_alias", lambda c: c.create_alias("ref_alias", "ref")),
    "alias bad name": (InvalidArgumentError, "alias", lambda c: c.create_alias("a b", "ref")),
    "set alias to missing": (NotFoundError, "nope", lambda c: c.set_alias("ref_alias", "nope")),
    "delete missing alias": (NotFoundError, "alias", lambda c: c.delete_alias("nope")),
    # writes
    "upsert missing coll": (NotFoundError, "nope", lambda c: c.upsert("nope", ["x"], V)),
    "upsert wrong dim": (InvalidArgumentError, "dimension", lambda c: c.upsert("ref", ["x"], rand(1, 5))),
    "upsert row count": (InvalidArgumentError, "rows", lambda c: c.upsert("ref", ["x", "y"], V)),
    "upsert duplicate ids": (InvalidArgumentError, "duplicate",
                             lambda c: c.upsert("ref", ["x", "x"], rand(2, DIM))),
    "upsert empty id": (InvalidArgumentError, "ids[0]", lambda c: c.upsert("ref", [""], V)),
    "upsert long id": (InvalidArgumentError, "ids[0]", lambda c: c.upsert("ref", ["x" * 600], V)),
    "upsert NaN": (InvalidArgumentError, "NaN",
                   lambda c: c.upsert("ref", ["x", "r1"], [[1, 2, 3, 4], [np.nan, 1, 1, 1]])),
    "upsert zero cosine": (InvalidArgumentError, "zero", lambda c: c.upsert("ref", ["x"], [[0] * DIM])),
    "upsert payload not object": (InvalidArgumentError, "payloads[0]",
                                  lambda c: c.upsert("ref", ["x"], V, payloads=[[1, 2]])),
    "upsert payload count": (InvalidArgumentError, "payloads",
                             lambda c: c.upsert("ref", ["x"], V, payloads=[{}, {}])),
    "upsert payload too big": (ResourceExhaustedError, "payloads[0]",
                               lambda c: c.upsert("ref", ["r0"], V, payloads=[{"b": "x" * 70000}])),
    "upsert text count": (InvalidArgumentError, "texts", lambda c: c.upsert("ref", ["x"], V, texts=["a", "b"])),
    "upsert atomic batch": (InvalidArgumentError, "vectors[1]",
                            lambda c: c.upsert("ref", ["r0", "x"], [[1, 1, 1, 1], [0, 0, 0, 0]])),
    "delete missing coll": (NotFoundError, "nope", lambda c: c.delete("nope", ["r1"])),
    "delete empty id": (InvalidArgumentError, "ids[1]", lambda c: c.delete("ref", ["r1", ""])),
    # reads
    "get missing coll": (NotFoundError, "nope", lambda c: c.get("nope", ["r1"])),
    "get empty id": (InvalidArgumentError, "ids[0]", lambda c: c.get("ref", [""])),
    "count missing coll": (NotFoundError, "nope", lambda c: c.count("nope")),
    "scroll limit 0": (InvalidArgumentError, "limit", lambda c: c.scroll("ref", limit=0)),
    "scroll limit big": (InvalidArgumentError, "limit", lambda c: c.scroll("ref", limit=10**6)),
    "scroll bad cursor": (InvalidArgumentError, "cursor", lambda c: c.scroll("ref", cursor="!!")),
    "search missing coll": (NotFoundError, "nope", lambda c: c.search("nope", vector=V[0])),
    "search k 0": (InvalidArgumentError, "k", lambda c: c.search("ref", vector=V[0], k=0)),
    "search k big": (InvalidArgumentError, "k", lambda c: c.search("ref", vector=V[0], k=10001)),
    "search wrong dim": (InvalidArgumentError, "dimension", lambda c: c.search("ref", vector=[1.0, 2.0])),
    "search NaN": (InvalidArgumentError, "NaN", lambda c: c.search("ref", vector=[np.inf, 1, 1, 1])),
    "search nprobe 0": (InvalidArgumentError, "nprobe", lambda c: c.search("ref", vector=V[0], nprobe=0)),
    # refused by the SDK before sending (cannot be encoded)
    "sdk ragged vectors": (InvalidArgumentError, "vectors",
                           lambda c: c.upsert("ref", ["x", "y"], [[1, 2, 3, 4], [1, 2]])),
    "sdk non-string id": (InvalidArgumentError, "ids[0]", lambda c: c.upsert("ref", [7], V)),
    "sdk payload not JSON": (InvalidArgumentError, "payloads[0]",
                             lambda c: c.upsert("ref", ["x"], V, payloads=[{"s": {1, 2}}])),
    "sdk no query": (InvalidArgumentError, "vector", lambda c: c.search("ref", k=3)),
    "sdk 2-D vector=": (InvalidArgumentError, "vector", lambda c: c.search("ref", vector=rand(2, DIM))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_sdk(client, ref, case):
    exc_type, needle, call = CASES[case]
    before = snapshot(client)
    with pytest.raises(exc_type) as ei:
        call(client)
    err = ei.value
    assert needle in err.message, err.message
    assert "Traceback" not in err.message and "File \"" not in err.message
    if not case.startswith("sdk"):
        assert err.request_id and len(err.request_id) == 16
    assert snapshot(client) == before
    assert client.health() == "SERVING"


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as ch:
        yield pgrpc.PointServiceStub(ch)


def _upsert(points: tpb.PointBatch) -> ppb.UpsertRequest:
    return ppb.UpsertRequest(collection="ref", points=points)


WIRE = {
    "vector bytes short": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=1, dim=DIM, data=b"\0" * 15))), "points.vectors"),
    "vector count negative": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=-1, dim=DIM))), "count"),
    "payload invalid JSON": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=1, dim=DIM, data=V.tobytes()), payloads="[{nope]")), "points.payloads is not valid"),
    "payload NaN": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=1, dim=DIM, data=V.tobytes()), payloads='[{"a": NaN}]')), "NaN"),
    "payloads not an array": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=1, dim=DIM, data=V.tobytes()), payloads='{"a": 1}')), "JSON array"),
    "payload entry not object": (_upsert(tpb.PointBatch(ids=["x"], vectors=tpb.Vectors(
        count=1, dim=DIM, data=V.tobytes()), payloads="[[1]]")), "payloads[0] must be a JSON object"),
    "payload entries short": (_upsert(tpb.PointBatch(ids=["x", "y"], vectors=tpb.Vectors(
        count=2, dim=DIM, data=rand(2, DIM).tobytes()), payloads="[{}]")), "payloads has 1"),
}


@pytest.mark.parametrize("case", list(WIRE))
def test_bad_input_wire(client, ref, stub, case):
    request, needle = WIRE[case]
    before = snapshot(client)
    with pytest.raises(grpc.RpcError) as ei:
        stub.Upsert(request, timeout=10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in ei.value.details()
    assert snapshot(client) == before


def test_search_without_query_on_the_wire(ref, stub):
    with pytest.raises(grpc.RpcError) as ei:
        stub.Search(ppb.SearchRequest(collection="ref", k=3), timeout=10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vectors" in ei.value.details()


def test_stream_stops_at_bad_batch_and_keeps_acknowledged_ones(client, ref, stub):
    def batch(i, ids, data):
        return ppb.UpsertRequest(collection="ref", batch_id=i, points=tpb.PointBatch(
            ids=ids, vectors=tpb.Vectors(count=len(ids), dim=DIM, data=data)))
    good = rand(2, DIM, seed=3).tobytes()
    reqs = [batch(0, ["s0", "s1"], good), batch(1, ["s2"], b"\0" * 3), batch(2, ["s3", "s4"], good)]
    acks = []
    with pytest.raises(grpc.RpcError) as ei:
        for ack in stub.UpsertStream(iter(reqs), timeout=10):
            acks.append(ack.batch_id)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert acks == [0]
    assert [p.id for p in client.get("ref", ["s0", "s1", "s2", "s3", "s4"])] == ["s0", "s1"]
    client.delete("ref", ["s0", "s1"])


def test_sdk_reports_acknowledged_points_on_stream_failure(server, ref):
    ids = [f"t{i}" for i in range(300)]
    payloads = [{"i": i} for i in range(300)]
    payloads[250] = {"big": "x" * 70_000}  # refused by the engine: RESOURCE_EXHAUSTED
    with server.client(chunk_bytes=2048, max_retries=0) as c:
        with pytest.raises(ResourceExhaustedError) as ei:
            c.upsert("ref", ids, rand(300, DIM), payloads=payloads)
        done = ei.value.acknowledged
        assert 0 < done <= 250
        assert len(c.get("ref", ids)) == done  # exactly the acknowledged prefix is stored
        c.delete("ref", ids)


def test_search_with_zero_queries_returns_no_results(client, ref):
    assert client.search("ref", vectors=np.zeros((0, DIM), np.float32)) == []


def test_errors_are_typed_and_printable(client, ref):
    with pytest.raises(VecdbClientError) as ei:
        client.count("nope")
    text = str(ei.value)
    assert text.startswith("NOT_FOUND: ") and ei.value.request_id in text
    assert ei.value.field == "collection"
