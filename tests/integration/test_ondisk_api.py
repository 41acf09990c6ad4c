"""On-disk collections through the real servers: the option over gRPC (sync and aio SDK)
and vecdbctl, and SIGKILL of a real server process while it ingests and merges (every
acknowledged point present and found after restart)."""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time

import pytest

from harness import InProcessServer
from test_cli import cli
from test_quantization_api import wait_built
from tests.quant_data import embeddings
from vecdb_client import AsyncClient, InvalidArgumentError, UnavailableError

DIM = 32


@pytest.fixture(scope="module")
def dsrv(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("ondisk") / "data")
    yield srv
    srv.stop()


def test_on_disk_collection_over_grpc_aio_and_cli(dsrv):
    base, queries = embeddings(3000, DIM, seed=0, latent=8), embeddings(30, DIM, seed=1, latent=8)
    with dsrv.client() as c:
        info = c.create_collection("d", DIM, on_disk=True, build_threshold=500)
        assert info.config.on_disk and info.config.index == "ivf_flat"
        c.upsert("d", [f"p{i}" for i in range(len(base))], base)
        wait_built(c, "d")
        exact = c.search("d", vectors=queries, k=10, exact=True, with_payload=False)
        approx = c.search("d", vectors=queries, k=10, with_payload=False)
        hits = [len({h.id for h in a} & {h.id for h in e}) for a, e in zip(approx, exact)]
        assert sum(hits) / (10 * len(queries)) >= 0.95
        assert not c.create_collection("m", DIM).config.on_disk
        with pytest.raises(InvalidArgumentError) as ei:
            c.create_collection("bad", DIM, index="hnsw", on_disk=True)
        assert ei.value.field == "on_disk" and "bad" not in [x.name for x in c.list_collections()]

    async def run():
        async with AsyncClient(dsrv.target) as ac:
            return await ac.create_collection("ad", DIM, on_disk=True)
    assert asyncio.run(run()).config.on_disk
    out = cli("collections", "create", "cd", "--dim", "16", "--on-disk", "-o", "json",
              host=dsrv.target)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["on_disk"] is True


def test_sigkill_during_ingest_and_merges(spawn):
    """Batches are acknowledged one by one while the first build, delta merges
    (ondisk_delta_mb 0) and checkpoints run; the server is SIGKILLed at a random moment;
    after a restart every acknowledged point is stored and found by its own vector."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    srv = spawn("--checkpoint-interval-s", "0.3", "--checkpoint-every-ops", "3",
                "--ondisk-delta-mb", "0")
    n, batch = 8000, 250
    vecs = embeddings(n, DIM, seed=7, latent=8)
    acked: list[int] = []
    with srv.client(max_retries=0) as c:
        c.create_collection("crash", DIM, on_disk=True, build_threshold=1000)

        def ingest():
            try:
                for lo in range(0, n, batch):
                    c.upsert("crash", [f"k{i}" for i in range(lo, lo + batch)], vecs[lo:lo + batch])
                    acked.append(lo + batch)
            except UnavailableError:
                pass
        t = threading.Thread(target=ingest)
        t.start()
        while len(acked) < 5 + rng.randrange(20):  # past the build threshold, at a random batch
            assert t.is_alive() or len(acked) * batch >= n, srv.log()
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        srv.kill()
        t.join()
    durable = acked[-1]
    again = spawn(data_dir=srv.data_dir)
    with again.client() as c:
        assert c.describe_collection("crash").config.on_disk
        assert c.count("crash") >= durable, f"seed={seed}"
        ids = [f"k{i}" for i in range(0, durable, 37)]
        assert len(c.get("crash", ids)) == len(ids), f"seed={seed}"
        wait_built(c, "crash")
        res = c.search("crash", vectors=vecs[0:durable:37], k=1, with_payload=False)
        assert [r[0].id for r in res] == ids, f"seed={seed}"
