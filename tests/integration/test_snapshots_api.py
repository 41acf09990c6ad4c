"""Snapshots through the server: create under concurrent writes, list, restore on a
second server (snapshot copied into its snapshot dir) with identical search results,
damaged snapshot refused, delete. Sync and async SDK."""
from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time

import numpy as np
import pytest

from harness import InProcessServer, rand
from vecdb_client import AsyncClient, FailedPreconditionError, NotFoundError


def search_all(c, name, q):
    return [[(h.id, h.score, h.payload) for h in hits]
            for exact in (False, True)
            for hits in c.search(name, vectors=q, k=10, exact=exact)]


def test_snapshot_restore_on_another_server(tmp_path):
    a = InProcessServer(tmp_path / "a")
    b = InProcessServer(tmp_path / "b")
    try:
        with a.client() as ca, b.client() as cb:
            ca.create_collection("docs", dim=16, metric="cosine", index="hnsw", shards=2,
                                 build_threshold=300, payload_indexes={"g": "integer"})
            vecs = rand(2000, 16)
            ca.upsert("docs", [f"d{i}" for i in range(2000)], vecs, [{"g": i % 7} for i in range(2000)])
            stop = threading.Event()

            def writer():  # a different collection keeps writing during the snapshot
                i = 0
                while not stop.is_set():
                    ca.upsert("other", [f"o{i}"], rand(1, 16, seed=i))
                    i += 1
            ca.create_collection("other", dim=16)
            # snapshot the built HNSW index: a build swapped in between the snapshot and the
            # reference search would change scores in the last bit
            deadline = time.monotonic() + 60
            while ca.describe_collection("docs").index_state != "built":
                assert time.monotonic() < deadline, "the HNSW index was never built"
                time.sleep(0.05)
            t = threading.Thread(target=writer)
            t.start()
            try:
                info = ca.create_snapshot("docs", "nightly", tarball=True)
            finally:
                stop.set()
                t.join()
            assert (info.name, info.collection, info.points) == ("nightly", "docs", 2000)
            assert [s.name for s in ca.list_snapshots()] == ["nightly"]
            q = rand(10, 16, seed=5)
            before = search_all(ca, "docs", q)
            os.makedirs(tmp_path / "b" / "snapshots")
            shutil.copy(info.path, tmp_path / "b" / "snapshots")
            restored = cb.restore_snapshot("nightly")
            assert restored.points == 2000 and restored.payload_indexes["g"].state == "ready"
            assert search_all(cb, "docs", q) == before
            assert cb.count("docs", filter={"key": "g", "match": 3}) == \
                ca.count("docs", filter={"key": "g", "match": 3})
            # damaged: flip a byte inside the tarball's payload area -> refused, nothing written
            bad = tmp_path / "b" / "snapshots" / "broken.tar"
            data = bytearray((tmp_path / "b" / "snapshots" / "nightly.tar").read_bytes())
            data[len(data) // 3] ^= 0xFF
            bad.write_bytes(bytes(data))
            with pytest.raises(FailedPreconditionError):
                cb.restore_snapshot("broken", "x")
            assert "x" not in {c.name for c in cb.list_collections()}
            ca.delete_snapshot("nightly")
            assert ca.list_snapshots() == []
            with pytest.raises(NotFoundError):
                ca.delete_snapshot("nightly")
    finally:
        a.stop()
        b.stop()


def test_snapshots_async(tmp_path):
    srv = InProcessServer(tmp_path / "d")

    async def run():
        async with AsyncClient(srv.target, timeout=20) as c:
            await c.create_collection("s", dim=4)
            await c.upsert("s", ["a", "b"], np.eye(2, 4, dtype=np.float32))
            info = await c.create_snapshot("s")
            assert info.name.startswith("s-") and info.points == 2
            assert [s.name for s in await c.list_snapshots()] == [info.name]
            got = await c.restore_snapshot(info.name, "s2")
            assert got.points == 2 and await c.count("s2") == 2
            await c.delete_snapshot(info.name)
    try:
        asyncio.run(run())
    finally:
        srv.stop()
