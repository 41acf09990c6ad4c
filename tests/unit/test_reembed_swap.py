"""A write through an alias that resolved to the re-embed's source just before the swap,
then ran after it (its thread preempted in between): it is counted as in flight from the
moment its name resolves, so the swap's drain waits for it and replays it into the
target. Before, the drain did not see it and the point was missing from the target (it
failed so once in CI)."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.collection import Collection  # noqa: E402
from vecdb.encoders.st import minilm_path  # noqa: E402


def test_a_write_resolved_before_the_swap_reaches_the_target(tmp_path, monkeypatch):
    with Database.open(str(tmp_path), DatabaseOptions()) as db:
        db.create_collection("kb_v1", encoder="minilm")
        db.upsert("kb_v1", [f"p{i}" for i in range(20)], texts=[f"text {i}" for i in range(20)])
        db.create_alias("kb", "kb_v1")
        source = db._get("kb_v1")
        release, entered = threading.Event(), threading.Event()
        upsert = Collection.upsert

        def preempted(self, *a, **kw):  # the late write: resolved, then held back
            if self is source and not entered.is_set():
                entered.set()
                release.wait(30)
            return upsert(self, *a, **kw)
        monkeypatch.setattr(Collection, "upsert", preempted)
        late = threading.Thread(target=db.upsert, args=("kb", ["late"]),
                                kwargs={"texts": ["written as the alias swapped"]})
        late.start()
        assert entered.wait(30)
        db.reembed("kb", f"sentence-transformers:{minilm_path()}", target="kb_v2")
        until(lambda: db.catalog.aliases.get("kb") == "kb_v2")  # swapped: the late write
        release.set()                                           # goes on, to the source
        late.join(60)
        until(lambda: db.describe_collection("kb_v1").reembed["state"] != "running")
        assert db.describe_collection("kb_v1").reembed["state"] == "done"
        got = db.get("kb_v2", ["late"])
        assert [p.text for p in got] == ["written as the alias swapped"]


def until(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "not reached"
        time.sleep(0.01)
