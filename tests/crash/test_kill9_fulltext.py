"""kill -9 while texts are written, searched and checkpointed: after each restart the
on-disk text index (its checkpoint plus the WAL entries after it, vecdb/fulltext.py)
holds exactly the stored texts: every point is found by its unique code, replaced and
deleted texts by none, and a common word finds exactly the stored texts holding it."""
from __future__ import annotations

import logging
import os
import random

import pytest

from vecdb import Database, DatabaseOptions

from .fulltext_steps import COLLECTION, model
from .harness import last_ack, run_child_and_kill

pytest.importorskip("tantivy")
ROUNDS = 4


def test_text_index_is_exact_after_sigkill(tmp_path, caplog):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data, ack = str(tmp_path / "data"), str(tmp_path / "ack")
    from_checkpoint = 0
    for rnd in range(ROUNDS):
        run_child_and_kill("fulltext_child.py", [data, ack], rng, 0.3, 1.5)
        where = f"seed={seed} round={rnd}"
        done = last_ack(ack) + 1
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="vecdb.fulltext"):
            db = Database.open(data, DatabaseOptions(background=False))
        try:
            from_checkpoint += sum("checkpoint" in r.getMessage() and "WAL entries" in r.getMessage()
                                   for r in caplog.records)
            assert not [r for r in caplog.records if r.name == "vecdb.fulltext"
                        and r.levelno >= logging.WARNING], where
            want = model(done)
            stored = {p.id: p.text for p in db.get(COLLECTION, [f"p{i}" for i in range(300)])}
            # the step in flight may have landed: nothing, its upsert, or both writes
            assert stored in (want, model(done, upserted=True), model(done + 1)), where
            for pid, txt in stored.items():
                code = txt.split()[-1]
                assert db.search(COLLECTION, keywords=code, k=3)[0].ids == [pid], (where, pid)
            gone = {t.split()[-1] for t in model(done, upserted=True).values()} - \
                {t.split()[-1] for t in stored.values()}  # replaced or deleted texts
            for code in sorted(gone)[:40]:
                assert db.search(COLLECTION, keywords=code, k=3)[0].ids == [], (where, code)
            motor = {pid for pid, txt in stored.items() if "motor" in txt.split()}
            got = db.search(COLLECTION, keywords="motors", k=1000)[0].ids
            assert set(got) == motor and len(got) == len(motor), where
        finally:
            db.close()
        if os.path.exists(ack) and last_ack(ack) + 1 >= 400:
            break
    assert from_checkpoint, f"seed={seed}: every open rebuilt the text index"
