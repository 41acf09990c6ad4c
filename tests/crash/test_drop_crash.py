"""kill -9 during collection create/drop churn: the catalog stays consistent.

After each kill the directory must reopen cleanly with "keep" intact, every
listed collection must be usable, and nothing of a dropped collection may be
left: no drop marker, no RocksDB key in its key range, no directory.
"""
from __future__ import annotations

import os
import random

import numpy as np

from vecdb import Database, DatabaseOptions

from .harness import run_child_and_kill
ROUNDS = 6


def test_catalog_is_consistent_after_sigkill_during_create_and_drop(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    data = str(tmp_path / "data")
    for rnd in range(ROUNDS):
        run_child_and_kill("drop_child.py", [data], rng, 0.1, 1.0)
        where = f"seed={seed} round={rnd}"
        db = Database.open(data, DatabaseOptions(background=False))
        try:
            names = {c.name for c in db.list_collections()}
            assert "keep" in names and names <= {"keep"} | {n for n in names if n.startswith("churn-")}, where
            assert len(names) <= 2, f"{where}: more than one churn collection survived: {names}"
            assert db.count("keep") == 100, where
            for name in names - {"keep"}:  # the create that was in flight: complete and usable
                assert db.count(name) in (0, 200), where
                db.search(name, np.zeros((1, 8), np.float32), k=3)
            live = {c.uid for c in db.list_collections()}
            assert not list(db.store.scan(b"D", b"E")), f"{where}: a drop marker was left behind"
            key_uids = {int.from_bytes(k[1:5], "big") for k, _ in db.store.scan(b"S", b"T")}
            assert key_uids <= live, f"{where}: keys of dropped collections {key_uids - live} remain"
            root = os.path.join(data, "collections")
            dirs = set(os.listdir(root)) if os.path.isdir(root) else set()
            assert dirs <= {str(u) for u in live}, f"{where}: directories {dirs} vs live {live}"
        finally:
            db.close()
