"""Dynamic batching of concurrent searches: merged calls, identical results, errors
kept with their own request, and the real engine under concurrent single queries."""
from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from vecdb import Database, DatabaseOptions, InvalidArgument
from vecdb.coalesce import Coalescer
from vecdb import omp
from vecdb.omp import for_search


class Gate:
    """A search function whose first call blocks until released, so that the
    requests arriving meanwhile must queue behind it."""

    def __init__(self, fail_on: float | None = None):
        self.calls: list[int] = []
        self.first = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, q: np.ndarray) -> list:
        self.calls.append(len(q))
        if len(self.calls) == 1:
            self.first.set()
            assert self.release.wait(10)
        if self.fail_on is not None and (q[:, 0] == self.fail_on).any():
            raise InvalidArgument(f"bad query {self.fail_on}", "queries")
        return [float(x) * 2 for x in q[:, 0]]


def _run_concurrently(co: Coalescer, gate: Gate, values: list[float]) -> dict:
    out: dict = {}

    def one(v: float) -> None:
        try:
            out[v] = co.run("k", np.array([[v]], np.float32), gate)
        except InvalidArgument as exc:
            out[v] = exc
    lead = threading.Thread(target=one, args=(values[0],))
    lead.start()
    assert gate.first.wait(10)
    rest = [threading.Thread(target=one, args=(v,)) for v in values[1:]]
    for t in rest:
        t.start()
    while len(co._queues["k"][1]) < len(rest):  # all queued behind the running search
        threading.Event().wait(0.001)
    gate.release.set()
    for t in [lead, *rest]:
        t.join(10)
    return out


def test_requests_queued_behind_a_running_search_run_as_one_batch():
    co, gate = Coalescer(max_batch=64, max_inflight=1), Gate()
    out = _run_concurrently(co, gate, [float(v) for v in range(9)])
    assert out == {float(v): [2.0 * v] for v in range(9)}
    assert gate.calls == [1, 8]  # the lone first request, then one merged call
    assert co.batches == 1 and co.merged == 7 and not co._queues


def test_max_batch_splits_the_queue():
    co, gate = Coalescer(max_batch=3, max_inflight=1), Gate()
    out = _run_concurrently(co, gate, [float(v) for v in range(8)])
    assert out == {float(v): [2.0 * v] for v in range(8)}
    assert gate.calls == [1, 3, 3, 1]
    big = np.arange(5, dtype=np.float32)[:, None]  # >= max_batch: runs directly
    assert co.run("k", big, gate) == [2.0 * v for v in range(5)]


def test_an_error_stays_with_its_request():
    co, gate = Coalescer(max_batch=64, max_inflight=1), Gate(fail_on=3.0)
    out = _run_concurrently(co, gate, [float(v) for v in range(6)])
    assert isinstance(out[3.0], InvalidArgument)
    assert {v: r for v, r in out.items() if v != 3.0} == {v: [2 * v] for v in (0., 1., 2., 4., 5.)}
    assert gate.calls == [1, 5, 1, 1, 1, 1, 1]  # merged call failed: each re-run alone


def test_up_to_max_inflight_searches_of_a_key_run_side_by_side():
    co, both = Coalescer(max_batch=64, max_inflight=2), threading.Barrier(2, timeout=10)
    out = {}

    def search(q: np.ndarray) -> list:
        both.wait()  # raises BrokenBarrierError unless two searches run at once
        return [float(x) for x in q[:, 0]]
    threads = [threading.Thread(target=lambda v=v: out.setdefault(
        v, co.run("k", np.array([[v]], np.float32), search))) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert out == {1.0: [1.0], 2.0: [2.0]} and not co._queues


def test_wait_lets_concurrent_requests_join_a_gathering_leader():
    co, calls, start = Coalescer(max_batch=64, max_wait_s=0.3, max_inflight=4), [], threading.Barrier(4)
    out = {}

    def search(q: np.ndarray) -> list:
        calls.append(len(q))
        return [float(x) for x in q[:, 0]]

    def one(v: float) -> None:
        start.wait()
        out[v] = co.run("k", np.array([[v]], np.float32), search)
    threads = [threading.Thread(target=one, args=(float(v),)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert out == {float(v): [float(v)] for v in range(4)}
    assert sum(calls) == 4 and calls[0] >= 2, calls  # not four lone searches
    assert not co._queues


def test_a_lone_request_does_not_wait():
    co = Coalescer(max_batch=64, max_wait_s=0.0)
    calls = []
    assert co.run("k", np.ones((1, 1), np.float32), lambda q: calls.append(len(q)) or [1]) == [1]
    assert calls == [1] and co.batches == 0


def test_concurrent_single_queries_equal_solo_searches(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((64, 32)).astype(np.float32)
    opts = DatabaseOptions(background=False)
    with Database.open(str(tmp_path / "db"), opts) as db:
        db.create_collection("c", dim=32, metric="l2", index="flat", shards=2)
        db.upsert("c", [f"p{i}" for i in range(len(data))], data,
                  payloads=[{"i": i} for i in range(len(data))])
        solo = [db.search("c", q[None], k=5)[0] for q in queries]
        got: dict[int, object] = {}

        def worker(j: int) -> None:
            for i in range(j, len(queries), 8):
                got[i] = db.search("c", queries[i][None], k=5)[0]
        threads = [threading.Thread(target=worker, args=(j,)) for j in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, want in enumerate(solo):
            assert got[i].ids == want.ids and got[i].payloads == want.payloads
            np.testing.assert_allclose(got[i].scores, want.scores, rtol=1e-5, atol=1e-4)
        # a bad request among concurrent ones fails alone, with its own field
        with pytest.raises(InvalidArgument) as e:
            db.search("c", np.ones((1, 31), np.float32), k=5)
        assert e.value.field == "queries"


def test_single_query_searches_use_one_openmp_thread():
    seen = {}

    def probe() -> None:
        for_search(1)
        seen["single"] = faiss.omp_get_max_threads()
        for_search(64)
        seen["batch"] = faiss.omp_get_max_threads()
        for_search(64, shards=64)
        seen["many shards"] = faiss.omp_get_max_threads()
        with omp.single_threaded():  # merged batches of concurrent requests
            for_search(64)
            seen["merged"] = faiss.omp_get_max_threads()
    t = threading.Thread(target=probe)  # per thread, as in the server's worker threads
    t.start()
    t.join()
    cores = omp.CORES
    assert seen == {"single": 1, "batch": min(64, max(1, cores)), "many shards": 1, "merged": 1}
