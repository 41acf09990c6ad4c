"""The on-disk text index and its checkpoint (vecdb/fulltext.py): a reopen reuses it
(the BM25 statistics it kept, deleted texts included, show it is the same index) and
applies only the WAL entries after it; a missing, torn or damaged marker or index, or
a WAL gap after it, falls back to a rebuild whose scores equal the reference over the
live texts. The SIGKILL test is tests/crash/test_kill9_fulltext.py."""
import glob
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_fulltext import corpus, make, reference_bm25

from vecdb import Database, DatabaseOptions
from vecdb.topk import shard_of

pytest.importorskip("tantivy")
QUERIES = ("w1 beta", "alpha", "gamma w3 w17")


def scores(db):
    out = {}
    for q in QUERIES:
        res = db.search("c", keywords=q, k=500)[0]
        out[q] = dict(zip(res.ids, res.scores.tolist()))
    return out


@pytest.fixture
def written(tmp_path):
    """A closed database: texts written, some deleted (the index still counts them),
    then (after the close's checkpoint) reopened and more written: the WAL holds
    entries after the text index's checkpoint. Yields (path, live texts, scores)."""
    path = str(tmp_path / "data")
    opts = DatabaseOptions(background=False, wal_retain=0)
    db = Database.open(path, opts)
    docs = corpus(200, seed=2)
    make(db, "c", docs, shards=2)
    db.delete("c", ["d1", "d2", "d3"])
    db.close()
    db = Database.open(path, opts)
    rng = np.random.default_rng(3)
    db.upsert("c", ["d4", "n1"], rng.standard_normal((2, 8)).astype(np.float32),
              texts=["alpha alpha beta", "w1 gamma"])
    db.delete("c", ["d5"])
    for pid in ("d1", "d2", "d3", "d5"):
        docs.pop(pid)
    docs.update({"d4": "alpha alpha beta", "n1": "w1 gamma"})
    before = scores(db)
    db.checkpoint()
    db.close()
    return path, docs, before


def reopen(path, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vecdb.fulltext"):
        return Database.open(path, DatabaseOptions(background=False))


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "vecdb.fulltext"]


def assert_shard0_is_reference(db, docs):
    """BM25 statistics are per shard: shard 0's hits score as the reference over its texts."""
    mine = {p: t for p, t in docs.items() if shard_of(p, 2) == 0}
    for q in QUERIES:
        ref = reference_bm25(mine, q)
        got = db.search("c", keywords=q, k=500)[0]
        hits = [(pid, s) for pid, s in zip(got.ids, got.scores.tolist()) if pid in mine]
        assert {pid for pid, _ in hits} == set(ref), q
        np.testing.assert_allclose([s for _, s in hits], [ref[p] for p, _ in hits], rtol=1e-4)


def test_reopen_reuses_the_index_and_replays_the_tail(written, caplog, tmp_path):
    path, docs, before = written
    db = reopen(path, caplog)
    try:
        assert scores(db) == before  # the same index: its statistics count the deleted texts
        assert any("checkpoint" in m for m in messages(caplog))
        assert not any("rebuilt" in m for m in messages(caplog))
        # writes after the checkpoint, no search (nothing commits the text index), then
        # the image a crash leaves: RocksDB at this instant (a RocksDB checkpoint) and
        # the shards' files as they are (the text index at its checkpoint)
        db.upsert("c", ["n2"], np.ones((1, 8), np.float32), texts=["zebra alpha"])
        db.delete("c", ["n1"])
        docs["n2"] = "zebra alpha"
        docs.pop("n1")
        crash = str(tmp_path / "crash")
        shutil.copytree(os.path.join(path, "collections"), os.path.join(crash, "collections"),
                        ignore=shutil.ignore_patterns(".tmp*"))  # tantivy's scratch files
        # come and go meanwhile (one vanished mid-copy in a CI run); no index reads them
        db.store.checkpoint_to(os.path.join(crash, "rocksdb"))
    finally:
        db.close()
    db = reopen(crash, caplog)
    try:
        replayed = [m for m in messages(caplog) if "WAL entries after it" in m]
        assert any(" 1 WAL entries" in m or " 2 WAL entries" in m for m in replayed), replayed
        assert not any("rebuilt" in m for m in messages(caplog))
        for q in QUERIES + ("zebra",):
            assert set(db.search("c", keywords=q, k=500)[0].ids) == set(reference_bm25(docs, q)), q
    finally:
        db.close()


@pytest.mark.parametrize("damage", ["no marker", "torn marker", "other language", "truncated segment",
                                    "no tantivy meta", "wal gap"])
def test_damage_falls_back_to_a_rebuild(written, caplog, damage):
    path, docs, before = written
    shard_dirs = sorted(glob.glob(os.path.join(path, "**", "shard-0"), recursive=True))
    assert len(shard_dirs) == 1
    marker, text = os.path.join(shard_dirs[0], "text.json"), os.path.join(shard_dirs[0], "text")
    meta = json.loads(Path(marker).read_text())
    if damage == "no marker":
        os.remove(marker)
    elif damage == "torn marker":
        Path(marker).write_text('{"format": 1, "seq"')
    elif damage == "other language":
        Path(marker).write_text(json.dumps({**meta, "language": "english"}))
    elif damage == "truncated segment":
        seg = min(glob.glob(os.path.join(text, "*.idx")))
        os.truncate(seg, os.path.getsize(seg) // 2)
    elif damage == "no tantivy meta":
        os.remove(os.path.join(text, "meta.json"))
    else:  # the marker claims an older sequence number: the WAL after it is truncated
        Path(marker).write_text(json.dumps({**meta, "seq": 1}))
    db = reopen(path, caplog)
    try:
        assert any("rebuilt" in m for m in messages(caplog)), damage
        if damage != "no marker":
            assert any(r.levelno == logging.WARNING for r in caplog.records
                       if r.name == "vecdb.fulltext"), damage
        assert_shard0_is_reference(db, docs)
        assert scores(db) != before  # not the kept index: that one counts the deleted texts
    finally:
        db.close()
