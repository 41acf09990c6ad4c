"""Quantized collections through the real servers: the option over gRPC (sync and aio SDK),
vecdbctl, describe and /metrics; and SIGKILL of a real server process while it ingests into
a quantized collection (every acknowledged point present and searchable after restart)."""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time

import numpy as np
import pytest

from harness import InProcessServer
from test_cli import cli
from test_metrics import scrape, value
from tests.quant_data import embeddings
from vecdb_client import AsyncClient, InvalidArgumentError, UnavailableError

DIM = 64


@pytest.fixture(scope="module")
def qsrv(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("quant") / "data")
    yield srv
    srv.stop()


def wait_built(c, name: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while (info := c.describe_collection(name)).index_state != "built":
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
    return info


def test_quantized_collection_over_grpc(qsrv):
    base, queries = embeddings(4000, DIM, seed=0), embeddings(50, DIM, seed=1)
    with qsrv.client() as c:
        info = c.create_collection("q", DIM, index="hnsw", quantization="sq8", rescore=3,
                                   build_threshold=500)
        assert (info.config.quantization, info.config.rescore) == ("sq8", 3)
        c.upsert("q", [f"p{i}" for i in range(len(base))], base,
                 payloads=[{"odd": i % 2} for i in range(len(base))])
        info = wait_built(c, "q")
        assert info.shards[0].index_type == "hnsw"
        # codes + graph in RAM: the same data at full precision holds the float32 vectors
        # (once: its exact store is the graph's storage), sq8 one byte a dimension
        # instead of four
        c.create_collection("fq", DIM, index="hnsw", build_threshold=500)
        c.upsert("fq", [f"p{i}" for i in range(len(base))], base)
        full_bytes = wait_built(c, "fq").memory_bytes
        assert 0 < info.memory_bytes < full_bytes - len(base) * DIM * 2
        exact = c.search("q", vectors=queries, k=10, exact=True, with_payload=False)
        approx = c.search("q", vectors=queries, k=10, with_payload=False)
        hits = [len({h.id for h in a} & {h.id for h in e}) for a, e in zip(approx, exact)]
        assert sum(hits) / (10 * len(queries)) >= 0.95
        odd = c.search("q", vectors=queries[:5], k=10, filter={"must": [{"key": "odd", "match": 1}]})
        assert all(h.payload["odd"] == 1 for r in odd for h in r) and all(len(r) == 10 for r in odd)
        full = c.create_collection("f", DIM)
        assert (full.config.quantization, full.config.rescore) == ("", 0)
        fams = scrape(qsrv.app.metrics_port)
        assert value(fams, "vecdb_collection_memory_bytes", collection="q") == \
            c.describe_collection("q").memory_bytes


@pytest.mark.parametrize("kwargs,field", [({"quantization": "int4"}, "quantization"),
                                          ({"quantization": "sq8", "index": "flat"}, "quantization"),
                                          ({"rescore": 2}, "rescore"),
                                          ({"quantization": "sq8", "rescore": 5000}, "rescore")])
def test_bad_quantization_options_are_invalid_argument(qsrv, kwargs, field):
    with qsrv.client() as c:
        with pytest.raises(InvalidArgumentError) as ei:
            c.create_collection("bad", DIM, **kwargs)
        assert ei.value.field == field and "Traceback" not in str(ei.value)
        assert "bad" not in [x.name for x in c.list_collections()]


def test_async_client_creates_a_quantized_collection(qsrv):
    async def run():
        async with AsyncClient(qsrv.target) as c:
            return await c.create_collection("aq", DIM, quantization="rabitq")
    info = asyncio.run(run())
    assert (info.config.quantization, info.config.index) == ("rabitq", "auto")


def test_vecdbctl_create_and_describe(qsrv):
    out = cli("collections", "create", "cq", "--dim", "32", "--quantization", "binary",
              "--rescore", "12", "-o", "json", host=qsrv.target)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    # binary runs on hnsw: auto becomes hnsw at creation
    assert (d["quantization"], d["rescore"], d["index"]) == ("binary", 12, "hnsw")
    assert "memory_bytes" in d and all("memory_bytes" in s for s in d["shard_stats"])
    bad = cli("collections", "create", "cq2", "--dim", "32", "--quantization", "sq8",
              "--index", "ivf_pq", host=qsrv.target)
    assert bad.returncode != 0 and "quantization" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("mode", ["threaded", "aio"])
def test_sigkill_during_ingest_into_quantized_collection(spawn, mode):
    """Batches are acknowledged one by one while the index builds and checkpoints run;
    the server (threaded or aio) is SIGKILLed at a random moment; after a restart every
    acknowledged point is stored and found by an ANN search for its own vector."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    srv = spawn("--checkpoint-interval-s", "0.5", "--checkpoint-every-ops", "5",
                env={"VECDB_SERVER_MODE": mode})
    n, batch = 12_000, 400
    vecs = embeddings(n, DIM, seed=7)
    acked: list[int] = []
    with srv.client(max_retries=0) as c:
        c.create_collection("crash", DIM, index="hnsw", quantization="sq8", build_threshold=1000)

        def ingest():
            try:
                for lo in range(0, n, batch):
                    c.upsert("crash", [f"k{i}" for i in range(lo, lo + batch)], vecs[lo:lo + batch])
                    acked.append(lo + batch)
            except UnavailableError:
                pass
        t = threading.Thread(target=ingest)
        t.start()
        while len(acked) < 4 + rng.randrange(20):  # past the build threshold, at a random batch
            assert t.is_alive() or len(acked) * batch >= n, srv.log()
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        srv.kill()
        t.join()
    durable = acked[-1]
    assert 0 < durable
    again = spawn(data_dir=srv.data_dir, env={"VECDB_SERVER_MODE": mode})
    with again.client() as c:
        assert c.describe_collection("crash").config.quantization == "sq8"
        assert c.count("crash") >= durable, f"seed={seed}"
        ids = [f"k{i}" for i in range(0, durable, 37)]
        assert len(c.get("crash", ids)) == len(ids), f"seed={seed}"
        wait_built(c, "crash")
        res = c.search("crash", vectors=vecs[0:durable:37], k=1, with_payload=False)
        assert [r[0].id for r in res] == ids, f"seed={seed}"
