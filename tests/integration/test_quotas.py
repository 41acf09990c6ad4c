"""Server limits (max_batch_points, max_k, max_collections, rate_limit_rps) answer
RESOURCE_EXHAUSTED, with retry information for the rate limit; JSON logs."""
from __future__ import annotations

import json
import time

import grpc
import pytest

from harness import InProcessServer, rand
from vecdb_client import NotFoundError, ResourceExhaustedError
from vecdb_client._channel import ClientSettings
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_server.config import ConfigError, ServerConfig
from vecdb_server.guard import TokenBuckets

DIM = 4


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("lim") / "data", max_batch_points=50,
                          max_k=20, max_collections=3)
    yield srv
    srv.stop()


def test_sdk_chunking_default_matches_the_server_batch_limit():
    assert ClientSettings().chunk_points == ServerConfig().max_batch_points


def test_batch_too_big(limited):
    with limited.client(chunk_points=100) as c:
        c.create_collection("b", dim=DIM)
        with pytest.raises(ResourceExhaustedError) as ei:
            c.upsert("b", [f"p{i}" for i in range(60)], rand(60, DIM))
        assert "max_batch_points=50" in ei.value.message and ei.value.retry_after is None
        with pytest.raises(ResourceExhaustedError):
            c.get("b", [f"p{i}" for i in range(60)])
        with pytest.raises(ResourceExhaustedError):
            c.delete("b", [f"p{i}" for i in range(51)])
        with pytest.raises(ResourceExhaustedError):
            c.search("b", vectors=rand(51, DIM), k=1)
        assert c.count("b") == 0
    with limited.client(chunk_points=50) as c:  # chunks at the limit pass
        assert c.upsert("b", [f"p{i}" for i in range(120)], rand(120, DIM)).count == 120
    with limited.client() as c:
        c.drop_collection("b")


def test_k_too_big(limited):
    with limited.client() as c:
        c.create_collection("k", dim=DIM)
        c.upsert("k", [f"p{i}" for i in range(30)], rand(30, DIM))
        assert len(c.search("k", vector=rand(1, DIM)[0], k=20)) == 20
        with pytest.raises(ResourceExhaustedError, match="max_k=20"):
            c.search("k", vector=rand(1, DIM)[0], k=21)
        c.drop_collection("k")


def test_too_many_collections(limited):
    with limited.client() as c:
        for name in ("c1", "c2", "c3"):
            c.create_collection(name, dim=DIM)
        with pytest.raises(ResourceExhaustedError, match="max_collections=3"):
            c.create_collection("c4", dim=DIM)
        c.drop_collection("c3")
        c.create_collection("c4", dim=DIM)
        for name in ("c1", "c2", "c4"):
            c.drop_collection(name)


def test_rate_limit_per_key_with_retry_after(tmp_path):
    keys = [{"key": "rate-key-one-0123456789", "role": "admin"},
            {"key": "rate-key-two-0123456789", "role": "admin"}]
    srv = InProcessServer(tmp_path / "data", api_keys=keys, rate_limit_rps=5)
    try:
        with srv.client(api_key=keys[0]["key"]) as one, \
                srv.client(api_key=keys[1]["key"]) as two:
            with pytest.raises(ResourceExhaustedError) as ei:
                for _ in range(50):
                    one.list_collections()
            err = ei.value
            assert err.retry_after is not None and 0 < err.retry_after <= 0.25
            assert "rate limit" in err.message
            assert two.list_collections() == []  # another key has its own bucket
            assert one.health() == "SERVING"  # probes are never limited
            time.sleep(err.retry_after + 0.05)
            assert one.list_collections() == []
        # the raw status carries a google.rpc.RetryInfo in grpc-status-details-bin
        with grpc.insecure_channel(srv.target) as ch:
            stub = cgrpc.CollectionServiceStub(ch)
            md = (("x-api-key", keys[0]["key"]),)
            with pytest.raises(grpc.RpcError) as ei:
                for _ in range(50):
                    stub.ListCollections(cpb.ListCollectionsRequest(), metadata=md)
            trailing = dict(ei.value.trailing_metadata())
            assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert int(trailing["retry-after-ms"]) > 0
            assert b"type.googleapis.com/google.rpc.RetryInfo" in trailing[
                "grpc-status-details-bin"]
    finally:
        srv.stop()


def test_rate_limit_without_keys_is_per_client_address(tmp_path):
    srv = InProcessServer(tmp_path / "data", rate_limit_rps=2)
    try:
        with srv.client() as c, pytest.raises(ResourceExhaustedError) as ei:
            for _ in range(20):
                c.list_collections()
        assert ei.value.retry_after > 0
    finally:
        srv.stop()


def test_token_bucket_refills():
    now = [0.0]
    tb = TokenBuckets(2, clock=lambda: now[0])
    assert tb.take("a") == 0 and tb.take("a") == 0
    assert tb.take("a") == pytest.approx(0.5)
    assert tb.take("b") == 0
    now[0] = 0.5
    assert tb.take("a") == 0 and tb.take("a") > 0


@pytest.mark.parametrize("kw, needle", [
    ({"max_batch_points": 0}, "max_batch_points"), ({"max_k": 0}, "max_k"),
    ({"max_k": 20_000}, "max_k"), ({"max_collections": -1}, "max_collections"),
    ({"rate_limit_rps": -1.0}, "rate_limit_rps"), ({"log_format": "xml"}, "log_format"),
])
def test_bad_limits_name_the_setting(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        ServerConfig(**kw)


@pytest.mark.parametrize("mode", ["threaded", "aio"])
def test_json_logs_carry_the_request_id(spawn, mode):
    srv = spawn("--log-format", "json", "--log-level", "DEBUG", "--server-mode", mode)
    with srv.client() as c:
        c.create_collection("j", dim=DIM)
        with pytest.raises(NotFoundError) as ei:
            c.describe_collection("missing")
    request_id = ei.value.request_id
    assert request_id
    assert srv.terminate() == 0
    lines = [json.loads(line) for line in srv.log().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    mine = [x for x in lines if x.get("request_id") == request_id]
    assert mine and "NOT_FOUND" in mine[0]["message"]
    assert any("listening on" in x["message"] for x in lines)
