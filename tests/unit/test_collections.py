import os
import subprocess
import sys

import numpy as np
import pytest

from vecdb import Database, DatabaseOptions, FailedPrecondition, NotFound


def test_create_list_describe_drop(db, tmp_path):
    db.create_collection("b", 4, metric="l2", index="hnsw", index_params={"M": 16}, shards=2)
    desc = db.create_collection("a", 8)
    assert desc.config.metric == "cosine" and desc.config.index.type == "auto"
    assert desc.points == 0 and desc.index_state == "exact" and len(desc.shards) == 1
    assert [c.name for c in db.list_collections()] == ["a", "b"]
    b = db.describe_collection("b")
    assert (b.config.dim, b.config.shards, b.config.index.params) == (4, 2, {"M": 16})
    db.upsert("b", ["x", "y", "z"], np.ones((3, 4)), [{"n": 1}] * 3)
    b = db.describe_collection("b")
    assert b.points == 3 and sum(s.points for s in b.shards) == 3 and b.bytes_on_disk > 0
    db.checkpoint()
    coll_dir = os.path.join(db.path, "collections", str(b.config.uid))
    assert os.path.isdir(coll_dir)
    db.drop_collection("b")
    assert [c.name for c in db.list_collections()] == ["a"]
    assert not os.path.exists(coll_dir)
    with pytest.raises(NotFound):
        db.count("b")
    # the same name again is a fresh, empty collection (uids are never reused)
    db.create_collection("b", 4)
    assert db.count("b") == 0 and db.get("b", ["x"]) == []


def test_catalog_survives_reopen(db, reopen):
    db.create_collection("c", 3, metric="ip", index="ivf_flat", index_params={"nlist": 4}, shards=4)
    db.create_alias("live", "c")
    db = reopen(db)
    try:
        d = db.describe_collection("live")
        assert d.config.name == "c" and d.config.index.params == {"nlist": 4} and d.aliases == ("live",)
    finally:
        db.close()


def test_aliases_repoint_atomically(db):
    db.create_collection("v1", 2)
    db.create_collection("v2", 2)
    db.upsert("v1", ["a"], [[1, 0]])
    db.upsert("v2", ["b"], [[0, 1]])
    db.create_alias("prod", "v1")
    assert db.get("prod", ["a"])[0].id == "a"
    db.set_alias("prod", "v2")
    assert db.search("prod", [[0, 1]], k=1)[0].ids == ["b"]
    db.upsert("prod", ["c"], [[1, 1]])
    assert db.count("v2") == 2 and db.count("v1") == 1
    assert db.list_aliases() == {"prod": "v2"} and db.list_aliases("v1") == {}
    with pytest.raises(NotFound, match="alias"):
        db.drop_collection("prod")
    db.drop_collection("v2")  # aliases of a dropped collection go with it
    assert db.list_aliases() == {}
    with pytest.raises(NotFound):
        db.count("prod")
    db.set_alias("prod", "v1")
    db.delete_alias("prod")
    assert db.list_aliases() == {}


def test_second_process_is_refused(tmp_path):
    path = str(tmp_path / "d")
    with Database.open(path, DatabaseOptions(background=False)):
        code = ("import sys\nfrom vecdb import Database, FailedPrecondition\n"
                f"try:\n    Database.open({path!r})\nexcept FailedPrecondition as e:\n"
                "    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 3, out.stderr
        assert "already open by another process" in out.stdout and str(os.getpid()) in out.stdout
    # after close, the directory opens again
    Database.open(path, DatabaseOptions(background=False)).close()


def test_closed_database_refuses_calls(tmp_path):
    db = Database.open(str(tmp_path / "d"), DatabaseOptions(background=False))
    db.create_collection("c", 2)
    db.close()
    db.close()  # idempotent
    with pytest.raises(FailedPrecondition, match="closed"):
        db.count("c")
