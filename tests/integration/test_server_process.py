"""The real ``vecdb-server`` console script in a subprocess: crash safety (SIGKILL),
graceful shutdown (SIGTERM), data-dir locking, configuration sources, aio mode."""
from __future__ import annotations

import queue
import signal
import threading
import time

import grpc
import numpy as np
import pytest

from harness import rand
from vecdb_client import UnavailableError, VecdbClientError
from vecdb_client._codec import point_batch
from vecdb_client._proto.vecdb.v1 import points_pb2, points_pb2_grpc

DIM = 32


def test_sigkill_during_streaming_upsert_loses_no_acknowledged_batch(spawn, tmp_path):
    srv = spawn()
    n = 20_000
    ids = [f"k{i:05d}" for i in range(n)]
    vecs = rand(n, DIM, seed=11)
    acked: list[int] = []

    def progress(done: int, total: int) -> None:
        acked.append(done)
        if len(acked) == 5:
            srv.proc.kill()  # SIGKILL while the stream is in full flight

    with srv.client(chunk_bytes=16 * 1024, max_retries=0) as c:
        c.create_collection("crash", dim=DIM)
        with pytest.raises(UnavailableError) as ei:
            c.upsert("crash", ids, vecs, payloads=[{"i": i} for i in range(n)],
                     progress=progress)
    srv.proc.wait()
    durable = ei.value.acknowledged
    assert durable == acked[-1] and 0 < durable < n

    again = spawn(data_dir=srv.data_dir)
    with again.client() as c:
        stored = sorted(p.id for p in c.iter_points("crash", batch_size=1000))
        # every acknowledged point survived; batches are all-or-nothing and in order,
        # so what is stored is a prefix of the input that covers the acknowledged part
        assert len(stored) >= durable and stored == ids[:len(stored)]
        got = c.get("crash", ids[:durable:97], with_vectors=True)
        np.testing.assert_array_equal(np.stack([p.vector for p in got]), vecs[:durable:97])
        assert [p.payload["i"] for p in got] == list(range(0, durable, 97))


def test_sigterm_finishes_in_flight_calls_checkpoints_and_exits_zero(spawn):
    srv = spawn("--grace-period-s", "8")
    vecs = rand(20_000, 128, seed=12)
    with srv.client() as c:
        c.create_collection("g", dim=128, index="flat")
        c.upsert("g", [str(i) for i in range(20_000)], vecs)
    outcome: dict = {}

    def heavy_search() -> None:
        with srv.client(max_retries=0) as c:
            c.count("g")  # connected before the clock starts
            outcome["start"] = time.monotonic()
            try:
                outcome["hits"] = c.search("g", vectors=vecs[:2000], k=100, with_payload=False)
            except VecdbClientError as exc:  # pragma: no cover - reported below
                outcome["error"] = exc
            outcome["end"] = time.monotonic()

    worker = threading.Thread(target=heavy_search)
    worker.start()
    while "start" not in outcome:
        time.sleep(0.01)
    time.sleep(0.2)  # the search (~1 s here) is running in the server now
    sent = time.monotonic()
    rc = srv.terminate(timeout=8 + 10)
    elapsed = time.monotonic() - sent
    worker.join()
    assert rc == 0, srv.log()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["end"] > sent  # the call was in flight when SIGTERM arrived...
    assert len(outcome["hits"]) == 2000 and outcome["hits"][5][0].id == "5"  # ...and finished
    assert elapsed < 8 + 5
    log = srv.log()
    assert "SIGTERM received" in log and "checkpointed and closed" in log and "stopped" in log
    assert "Traceback" not in log

    again = spawn(data_dir=srv.data_dir)
    with again.client() as c:
        info = c.describe_collection("g")
        assert info.points == 20_000
        assert all(s.checkpoint_seq == s.applied_seq for s in info.shards)  # clean checkpoint


@pytest.mark.parametrize("mode", ["threaded", "aio"])
def test_sigterm_refuses_new_calls_while_an_open_stream_finishes(spawn, mode):
    """Graceful stop: new calls get UNAVAILABLE at once, while an upsert stream that was
    open when SIGTERM arrived keeps being served and acknowledged until its client ends
    it (streams are not waited for by the drain; grpc's own stop gives them the grace)."""
    srv = spawn("--grace-period-s", "30", env={"VECDB_SERVER_MODE": mode})
    vecs = rand(40, 8, seed=13)
    with srv.client() as c:
        c.create_collection("d", dim=8)
    outbox: queue.Queue = queue.Queue()

    def batch(i: int) -> points_pb2.UpsertRequest:
        ids = [f"p{j}" for j in range(20 * i, 20 * i + 20)]
        return points_pb2.UpsertRequest(collection="d", batch_id=i,
                                        points=point_batch(ids, vecs[20 * i:20 * i + 20], [], []))

    with grpc.insecure_channel(srv.target) as channel:
        acks = points_pb2_grpc.PointServiceStub(channel).UpsertStream(iter(outbox.get, None))
        outbox.put(batch(0))
        assert next(acks).batch_id == 0
        srv.proc.send_signal(signal.SIGTERM)
        with srv.client(max_retries=0) as c:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    c.count("d")
                except UnavailableError:  # "shutting down" (drain), then no listener
                    break
                time.sleep(0.02)
            else:
                pytest.fail("no call was refused after SIGTERM")
        outbox.put(batch(1))
        assert next(acks).batch_id == 1  # the stream admitted before SIGTERM is still served
        outbox.put(None)
        assert list(acks) == []
    assert srv.proc.wait(20) == 0
    assert "draining" in srv.log() and "Traceback" not in srv.log()

    again = spawn(data_dir=srv.data_dir)
    with again.client() as c:
        assert c.count("d") == 40


def test_second_server_on_the_same_data_dir_exits_1(spawn):
    first = spawn()
    second = spawn(data_dir=first.data_dir, wait_serving=False)
    assert second.proc.wait(30) == 1
    assert "already open by another process" in second.log()
    with first.client() as c:
        assert c.health() == "SERVING"


def test_bad_configuration_exits_2_naming_the_key(spawn, tmp_path):
    cfg = tmp_path / "vecdb.yaml"
    cfg.write_text("grace_period_s: 1\nno_such_key: 3\n")
    bad = spawn("--config", str(cfg), wait_serving=False)
    assert bad.proc.wait(30) == 2
    assert "no_such_key" in bad.log()


def test_yaml_and_env_configure_an_aio_server(spawn, tmp_path):
    """YAML sets the message limit, the environment picks aio mode, flags set port/dir."""
    cfg = tmp_path / "vecdb.yaml"
    cfg.write_text("max_message_bytes: 262144\nserver_mode: threaded\ngrace_period_s: 3\n")
    srv = spawn("--config", str(cfg), env={"VECDB_SERVER_MODE": "aio"})
    assert "(aio," in srv.log()  # env beat the file
    with srv.client(chunk_bytes=32 * 1024) as c:
        c.create_collection("a", dim=DIM)
        c.create_alias("a_alias", "a")
        vecs = rand(3000, DIM, seed=3)  # 384 KiB: streamed in batches under the limit
        assert c.upsert("a_alias", [f"p{i}" for i in range(3000)], vecs).count == 3000
        assert c.count("a") == 3000 and c.search("a", vector=vecs[9], k=1)[0].id == "p9"
        assert len(c.search("a", vectors=vecs[:3], k=2)) == 3
        assert [p.id for p in c.get("a", ["p1", "zz"])] == ["p1"]
        assert len(list(c.iter_points("a", batch_size=1000))) == 3000
        assert c.delete("a", ["p1"]).count == 1
        with pytest.raises(VecdbClientError) as ei:
            c.search("a", vector=[1.0], k=1)
        assert ei.value.code.name == "INVALID_ARGUMENT" and ei.value.request_id
        with srv.client(chunk_bytes=10 * 2**20) as big:
            with pytest.raises(VecdbClientError) as ei:
                big.upsert("a", [f"q{i}" for i in range(3000)], vecs)
            assert ei.value.code.name == "RESOURCE_EXHAUSTED"
        assert c.list_aliases() == {"a_alias": "a"}
        c.drop_collection("a")
    assert srv.terminate(timeout=15) == 0
    assert "checkpointed and closed" in srv.log() and "Traceback" not in srv.log()
