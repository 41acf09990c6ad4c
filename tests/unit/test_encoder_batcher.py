"""The micro-batcher and the encoder registry (no model needed: the batched function
is a plain deterministic one)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vecdb.encoders import parse_spec
from vecdb.encoders.batcher import MicroBatcher
from vecdb.errors import InvalidArgument
from vecdb.reembed import target_name


def _fn(calls: list):
    def fn(texts, kind):
        calls.append((list(texts), kind))
        time.sleep(0.01)  # a model call takes a while: others pile up meanwhile
        return np.array([[len(t), 1.0 if kind == "query" else 0.0] for t in texts], np.float32)
    return fn


def test_concurrent_calls_are_merged_and_rows_go_back_to_their_callers():
    calls: list = []
    b = MicroBatcher(_fn(calls), max_batch=64, max_wait_s=0.02)
    out: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(20)

    def one(i):
        barrier.wait()
        out[i] = b.submit(["x" * i, "y" * (i + 100)], "query")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.close()
    assert len(calls) < 20
    assert sum(len(t) for t, _ in calls) == 40 and all(len(t) <= 64 for t, _ in calls)
    for i in range(20):
        np.testing.assert_array_equal(out[i], [[i, 1.0], [i + 100, 1.0]])


def test_kinds_are_never_mixed_and_big_requests_go_alone():
    calls: list = []
    b = MicroBatcher(_fn(calls), max_batch=8, max_wait_s=0.02)
    res = {}
    ts = [threading.Thread(target=lambda k=k, i=i: res.__setitem__((k, i), b.submit(["ab"], k)))
          for i in range(6) for k in ("query", "document")]
    ts.append(threading.Thread(target=lambda: res.__setitem__("big", b.submit(["z"] * 20, "document"))))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    b.close()
    assert all(len(t) <= 8 or len(t) == 20 for t, _ in calls)
    assert res["big"].shape == (20, 2)
    assert all(res[("query", i)][0, 1] == 1.0 and res[("document", i)][0, 1] == 0.0 for i in range(6))


def test_a_lone_call_waits_at_most_max_wait_and_errors_reach_every_caller():
    b = MicroBatcher(lambda texts, kind: np.zeros((len(texts), 1), np.float32), max_wait_s=0.05)
    t0 = time.monotonic()
    assert b.submit(["a"], "query").shape == (1, 1)
    assert time.monotonic() - t0 < 2.0  # max_wait 0.05 s: proves it does not hang
    b.close()

    def boom(texts, kind):
        raise RuntimeError("model exploded")
    b = MicroBatcher(boom, max_wait_s=0.01)
    with pytest.raises(RuntimeError, match="exploded"):
        b.submit(["a"], "query")
    b.close()


def test_specs():
    assert parse_spec("minilm") == ("minilm", "")
    assert parse_spec("openai:text-embedding-3-small") == ("openai", "text-embedding-3-small")
    assert parse_spec("sentence-transformers:/models/e5") == ("sentence-transformers", "/models/e5")
    for bad in ("nope", "minilm:x", "openai:", "sentence-transformers"):
        with pytest.raises(InvalidArgument) as e:
            parse_spec(bad)
        assert e.value.field == "encoder"
    assert target_name("docs", "openai:text-embedding-3-small") == "docs__text-embedding-3-small"
    assert target_name("docs", "sentence-transformers:/m/e5-base/") == "docs__e5-base"
    assert len(target_name("d" * 60, "minilm")) == 64
