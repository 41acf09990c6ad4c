"""The graceful-stop drain (server/vecdb_server/drain.py): threads, real clock."""
from __future__ import annotations

import threading
import time

from vecdb_server.drain import Drain


def test_drain_refuses_new_calls_and_waits_for_counted_ones_only():
    d = Drain()
    assert d.enter() and d.enter(counted=False)  # a search and an open upsert stream
    assert d.active == 1
    result = {}

    def stop():
        t0 = time.monotonic()
        result["done"] = d.drain(timeout=10)
        result["s"] = time.monotonic() - t0

    t = threading.Thread(target=stop)
    t.start()
    deadline = time.monotonic() + 5
    while d.enter():  # until drain() has started: new calls are refused from then on
        d.leave()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not d.enter(counted=False)
    time.sleep(0.3)
    assert t.is_alive()  # still waiting for the counted call, not for the stream
    d.leave()
    t.join(5)
    assert result["done"] and 0.3 <= result["s"] < 5
    assert d.active == 0


def test_drain_gives_up_after_the_grace_period():
    d = Drain()
    assert d.enter()
    t0 = time.monotonic()
    assert d.drain(timeout=0.2) is False
    assert 0.2 <= time.monotonic() - t0 < 3
    assert d.drain(timeout=0) is False and not d.enter()
