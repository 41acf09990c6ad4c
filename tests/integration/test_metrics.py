"""Prometheus /metrics: scraped over HTTP and parsed with prometheus_client's own parser.

RPC counts and latency by status, collection/shard gauges, checkpoint durations, and
the sampled recall gauge (an ANN index with a tiny nprobe, every search sampled)."""
from __future__ import annotations

import re
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import InProcessServer, rand
from vecdb import DatabaseOptions
from vecdb_client import NotFoundError

DIM = 16


def scrape(port: int) -> dict[str, list]:
    """metric family name -> its samples, from GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(fams: dict, sample: str, **labels: str) -> float | None:
    """The value of sample ``sample`` whose labels include ``labels`` (None if absent)."""
    family = re.sub(r"_(total|count|sum|bucket|created)$", "", sample)
    for s in fams.get(family, []) + fams.get(sample, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def wait_for(pred, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def msrv(tmp_path_factory):
    srv = InProcessServer(tmp_path_factory.mktemp("metrics") / "data", recall_sample_rate=1.0,
                          engine=DatabaseOptions(checkpoint_every_ops=5))
    yield srv
    srv.stop()


def test_rpc_counts_latency_and_collection_gauges(msrv):
    port = msrv.app.metrics_port
    assert port
    base = scrape(port)  # counters are server-wide: compare against what was there before

    def delta(fams: dict, sample: str, **labels: str) -> float:
        return (value(fams, sample, **labels) or 0) - (value(base, sample, **labels) or 0)

    with msrv.client() as c:
        c.create_collection("m_gauges", dim=DIM, index="flat", shards=2,
                            payload_indexes={"g": "keyword"})
        for i in range(10):
            c.upsert("m_gauges", [f"p{i}_{j}" for j in range(20)], rand(20, DIM, seed=i),
                     payloads=[{"g": "a"}] * 20)
        c.search("m_gauges", vector=rand(1, DIM)[0], k=3)
        with pytest.raises(NotFoundError):
            c.search("missing", vector=rand(1, DIM)[0], k=3)
        fams = wait_for(lambda: (f := scrape(port)) and
                        value(f, "vecdb_checkpoint_duration_seconds_count",
                              collection="m_gauges") and f)
    assert delta(fams, "vecdb_rpc_requests_total", method="PointService/Upsert", code="OK") == 10
    assert delta(fams, "vecdb_rpc_requests_total", method="PointService/Search",
                 code="NOT_FOUND") == 1
    assert value(fams, "vecdb_rpc_duration_seconds_count", method="PointService/Search",
                 code="OK") >= 1
    assert delta(fams, "vecdb_rpc_duration_seconds_bucket", method="PointService/Upsert",
                 code="OK", le="+Inf") == 10
    assert value(fams, "vecdb_ready") == 1 and value(fams, "vecdb_disk_full") == 0
    assert value(fams, "vecdb_collection_points", collection="m_gauges") == 200
    assert value(fams, "vecdb_collection_bytes_on_disk", collection="m_gauges") > 0
    shard_points = [value(fams, "vecdb_shard_points", collection="m_gauges", shard=s)
                    for s in ("0", "1")]
    assert sum(shard_points) == 200
    assert value(fams, "vecdb_shard_index_state", collection="m_gauges", shard="0",
                 state="exact") == 1
    assert value(fams, "vecdb_shard_index_state", collection="m_gauges", shard="0",
                 state="built") == 0
    applied = value(fams, "vecdb_shard_applied_seq", collection="m_gauges", shard="0")
    ckpt = value(fams, "vecdb_shard_checkpoint_seq", collection="m_gauges", shard="0")
    assert applied >= 1 and 0 <= ckpt <= applied
    assert value(fams, "vecdb_payload_index_ready", collection="m_gauges", field="g",
                 type="keyword") == 1
    assert value(fams, "vecdb_checkpoint_duration_seconds_sum", collection="m_gauges") > 0
    # fed by the encoder stage: no collection here uses an encoder
    assert value(fams, "vecdb_encoder_seconds_count") == 0
    assert "vecdb_gpu_memory_allocated_bytes" not in fams  # no torch/CUDA here


def test_sampled_recall_moves_below_one_with_a_coarse_ann_index(msrv):
    port = msrv.app.metrics_port
    n = 4000
    data = rand(n, DIM, seed=3)
    with msrv.client() as c:
        c.create_collection("m_ann", dim=DIM, metric="l2", index="ivf_flat", nlist=64, nprobe=1,
                            build_threshold=1000)
        c.upsert("m_ann", [f"a{i}" for i in range(n)], data,
                 payloads=[{"half": i % 2} for i in range(n)])
        wait_for(lambda: c.describe_collection("m_ann").index_state == "built", 60)
        before = value(scrape(port), "vecdb_recall_samples_total", collection="m_ann") or 0
        queries = rand(20, DIM, seed=4)
        c.search("m_ann", vectors=queries, k=10)
        c.search("m_ann", vectors=queries[:5], k=10, filter={"key": "half", "match": 1})
        c.search("m_ann", vectors=queries[:5], k=10, exact=True)  # exact: never sampled
        fams = wait_for(lambda: (f := scrape(port)) and
                        (value(f, "vecdb_recall_samples_total", collection="m_ann") or 0)
                        >= before + 25 and f)
    assert value(fams, "vecdb_recall_samples_total", collection="m_ann") == before + 25
    recall = value(fams, "vecdb_sampled_recall", collection="m_ann")
    assert recall is not None and 0 < recall < 1  # nprobe=1 of 64 lists misses neighbours
    assert value(fams, "vecdb_shard_index_state", collection="m_ann", shard="0",
                 state="built") == 1


def test_sampled_recall_is_one_for_exact_indexes(msrv):
    port = msrv.app.metrics_port
    with msrv.client() as c:
        c.create_collection("m_flat", dim=DIM, index="flat")
        c.upsert("m_flat", [f"f{i}" for i in range(300)], rand(300, DIM, seed=5))
        c.search("m_flat", vectors=rand(8, DIM, seed=6), k=5)
        fams = wait_for(lambda: (f := scrape(port)) and
                        value(f, "vecdb_recall_samples_total", collection="m_flat") == 8 and f)
    assert value(fams, "vecdb_sampled_recall", collection="m_flat") == 1.0


def test_metrics_off_and_rate_zero(tmp_path):
    srv = InProcessServer(tmp_path / "data", metrics_port=-1, recall_sample_rate=0.0)
    try:
        assert srv.app.metrics_port is None
        with srv.client() as c:
            c.create_collection("off", dim=DIM)
            c.upsert("off", ["a"], rand(1, DIM))
            assert c.search("off", vector=rand(1, DIM)[0], k=1)[0].id == "a"
        assert srv.app.metrics.sampler._queue.qsize() == 0
    finally:
        srv.stop()


def test_aio_server_subprocess_logs_and_serves_metrics(spawn):
    srv = spawn("--server-mode", "aio", "--recall-sample-rate", "1")
    m = re.search(r"metrics on 127\.0\.0\.1:(\d+)", srv.log())
    assert m, srv.log()
    port = int(m.group(1))
    with srv.client() as c:
        c.create_collection("aio_m", dim=DIM, index="flat")
        c.upsert("aio_m", ["a", "b"], rand(2, DIM))
        c.search("aio_m", vector=rand(1, DIM)[0], k=2)
        with pytest.raises(NotFoundError):
            c.describe_collection("nope")
        # grpc.aio's abort() sends the status before the handler unwinds, so the metrics
        # interceptor may count the NOT_FOUND a moment after the client has it: poll for it
        fams = wait_for(lambda: (f := scrape(port)) and
                        value(f, "vecdb_sampled_recall", collection="aio_m") is not None and
                        value(f, "vecdb_rpc_requests_total",
                              method="CollectionService/DescribeCollection",
                              code="NOT_FOUND") is not None and f)
    assert value(fams, "vecdb_rpc_requests_total", method="PointService/Upsert", code="OK") == 1
    assert value(fams, "vecdb_rpc_requests_total", method="CollectionService/DescribeCollection",
                 code="NOT_FOUND") == 1
    assert value(fams, "vecdb_sampled_recall", collection="aio_m") == 1.0
    assert value(fams, "vecdb_collection_points", collection="aio_m") == 2


def test_metrics_port_taken_exits_1(spawn):
    first = spawn()
    port = int(re.search(r"metrics on 127\.0\.0\.1:(\d+)", first.log()).group(1))
    second = spawn("--metrics-port", str(port), data_dir=first.data_dir.parent / "other",
                   wait_serving=False)
    assert second.proc.wait(30) == 1
    assert "metrics_port" in second.log()


def test_recall_sampler_draws_the_queries_of_a_batch_one_by_one(tmp_path):
    """A batch is sampled per query (not drawn whole: 1,000 exact searches at once), each
    queued query with the ANN ids of its own row."""
    import numpy as np
    from vecdb_server.metrics import RecallSampler
    from vecdb import SearchParams
    got, dropped = [], []
    sampler = RecallSampler(None, 0.01, lambda name, r: got.append(r), lambda: dropped.append(1))
    draws = [len(sampler._rows(1000)) for _ in range(400)]
    assert 6 < np.mean(draws) < 14 and max(draws) < 40  # ~10 of 1,000, never the batch
    assert sampler._rows(1) in ([], [0]) and RecallSampler(None, 1.0, None, None)._rows(3) == [0, 1, 2]

    class Results:
        def __init__(self, ids):
            self.ids = ids
    sampler._thread = object()  # offer() queues only while running; nothing consumes here
    queries = np.arange(2000, dtype=np.float32).reshape(1000, 2)
    args = {"collection": "c", "queries": queries, "params": SearchParams()}
    for _ in range(20):
        sampler.offer(args, [Results([f"p{i}"]) for i in range(1000)])
    queued = []
    while not sampler._queue.empty():
        queued.append(sampler._queue.get_nowait())
    assert queued and all(len(a["queries"]) == len(ann) < 40 for a, ann in queued)
    for a, ann in queued:  # each queued row is the query whose ANN ids came with it
        assert [f"p{int(q[0]) // 2}" for q in a["queries"]] == [next(iter(s)) for s in ann]


def test_recall_sampler_restarts_after_a_stop_during_its_pause(tmp_path):
    """stop() during the pause after a re-run ends the thread before it takes the stop
    marker; a later start() must not find that marker and exit at once."""
    import time
    import numpy as np
    from vecdb import DatabaseOptions, SearchParams
    from vecdb_server.engine import EngineHolder
    from vecdb_server.metrics import RecallSampler
    eh = EngineHolder(str(tmp_path / "data"), DatabaseOptions(background=False))
    db = eh.open()
    try:
        db.create_collection("c", 4, metric="l2", index="flat")
        db.upsert("c", [f"p{i}" for i in range(20)], np.arange(80, dtype=np.float32).reshape(20, 4))
        got = []
        sampler = RecallSampler(eh, 1.0, lambda name, r: got.append(r), lambda: None, share=0.001)
        args = {"collection": "c", "queries": np.zeros((1, 4), np.float32), "k": 3,
                "params": SearchParams()}
        hits = db.search(**args)
        sampler.start()
        sampler.offer(args, hits)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [[1.0]]  # measured; now pausing ~1000x the re-run
        sampler.stop()
        sampler.start()
        sampler.offer(args, hits)
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [[1.0], [1.0]] and sampler._thread.is_alive()
        sampler.stop()
    finally:
        eh.close()
