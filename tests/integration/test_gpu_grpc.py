"""The device setting through gRPC, the SDK, the CLI and /metrics, on a server without
a GPU (the GPU paths themselves: tests/unit/test_gpu_*.py and bench/gpu_bench.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from harness import SRC_PATHS, InProcessServer, make_config, rand
from vecdb.gpu import probe
from vecdb_client import Client, FailedPreconditionError
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc

NO_GPU = probe().backend is None


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("gpu") / "data")
    yield srv
    srv.stop()


@pytest.mark.skipif(not NO_GPU, reason="checks a server without a usable GPU")
def test_device_gpu_is_failed_precondition_naming_the_field(gpu_server):
    with grpc.insecure_channel(gpu_server.target) as ch:
        stub = collections_pb2_grpc.CollectionServiceStub(ch)
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateCollection(cpb.CreateCollectionRequest(name="g", dim=8, device="gpu"))
        err = ei.value
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "device" in err.details() and "no usable GPU" in err.details()
        assert ("vecdb-field", "device") in tuple(err.trailing_metadata())
    with gpu_server.client() as c:
        with pytest.raises(FailedPreconditionError) as e2:
            c.create_collection("g", 8, device="gpu")
        assert e2.value.field == "device"
        assert "g" not in [x.name for x in c.list_collections()]


def test_device_cpu_works_and_describe_shows_it(gpu_server):
    with gpu_server.client() as c:
        info = c.create_collection("cpu1", 8, device="cpu", shards=2)
        assert info.config.device == "cpu"
        assert [s.device for s in info.shards] == ["cpu", "cpu"] and info.gpu_memory_bytes == 0
        c.upsert("cpu1", [f"p{i}" for i in range(50)], rand(50, 8))
        assert len(c.search("cpu1", rand(1, 8)[0], k=5)) == 5
        info = c.describe_collection("cpu1")
        assert info.config.device == "cpu" and all(s.gpu_memory_bytes == 0 for s in info.shards)
        assert c.create_collection("auto1", 8).config.device == "auto"
        assert {x.name: x.device for x in c.list_collections()}["cpu1"] == "cpu"
    port = gpu_server.app.metrics_port
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'vecdb_gpu_memory_bytes{collection="cpu1",device="cpu",shard="1"} 0.0' in body


def test_cli_create_with_device(gpu_server):
    env = {"PYTHONPATH": ":".join(SRC_PATHS)}
    base = [sys.executable, "-m", "vecdb_client.cli", "--host", gpu_server.target, "-o", "json"]
    out = subprocess.run(base + ["collections", "create", "clicpu", "--dim", "4", "--device", "cpu"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["device"] == "cpu" and got["shard_stats"][0]["device"] == "cpu"
    if NO_GPU:
        out = subprocess.run(base + ["collections", "create", "cligpu", "--dim", "4", "--device", "gpu"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 1 and "device" in out.stderr


def test_gpu_counters_and_placement_failures_through_describe_and_metrics(tmp_path):
    """A server whose database runs on CPU stand-ins of a FAISS GPU (tests/unit/gpu_standin):
    the per-backend counters and a placement failure reach the SDK's describe and /metrics."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from gpu_standin import StandIn
    from vecdb import DatabaseOptions
    from vecdb_server.app import ServerApp
    app = ServerApp(make_config(tmp_path / "data", engine=DatabaseOptions(background=False)))
    app.engine.gpu = StandIn("faiss", n=1)
    port = app.start()
    app.open_in_background()
    assert app.ready.wait(30) and app.engine.open_error is None
    try:
        with Client(f"127.0.0.1:{port}", timeout=20) as c:
            c.create_collection("f", 8)
            c.create_collection("pq", 8, index="ivf_pq", build_threshold=1000, nlist=4, m=2, nbits=6)
            for name in ("f", "pq"):
                c.upsert(name, [f"p{i}" for i in range(1000)], rand(1000, 8))
            with app.engine.session() as db:
                db.maintain()  # builds IVF-PQ; its GPU copy is refused (nbits 6)
            c.search("f", rand(1, 8)[0], k=3)
            c.search("pq", rand(1, 8)[0], k=3)
            f, pq = c.describe_collection("f").shards[0], c.describe_collection("pq").shards[0]
        assert f.gpu_served == {"faiss_flat": 1} and f.gpu_fallbacks == {} and f.gpu_error == ""
        assert pq.gpu_served == {"cpu": 1} and pq.gpu_ann == "" and pq.gpu_placement_failures == 1
        assert "Bits per code must be 8" in pq.gpu_error and pq.device == "cuda:0"
        body = urllib.request.urlopen(f"http://127.0.0.1:{app.metrics_port}/metrics",
                                      timeout=10).read().decode()
        assert 'vecdb_gpu_searches_total{backend="faiss_flat",collection="f",shard="0"} 1.0' in body
        assert 'vecdb_gpu_searches_total{backend="cpu",collection="pq",shard="0"} 1.0' in body
        assert 'vecdb_gpu_placement_failures_total{collection="pq",shard="0"} 1.0' in body
    finally:
        app.stop(grace=2)
