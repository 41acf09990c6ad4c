"""Every RPC through AsyncClient against a real in-process server (asyncio.run per test).
test_embedded.py runs these tests again with ``open_async`` = the embedded face."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from harness import rand
from vecdb_client import (AlreadyExistsError, AsyncClient, Hit, InvalidArgumentError,
                          NotFoundError)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def open_async(server):
    """open_async(**settings) -> a new AsyncClient (call it inside the event loop)."""
    return lambda **kw: AsyncClient(server.target, **kw)


def test_every_rpc_async(open_async, coll_name):
    async def scenario():
        async with open_async(timeout=20) as c:
            assert await c.health() == "SERVING"
            await c.wait_ready(5)
            info = await c.create_collection(coll_name, dim=8, index="flat")
            assert info.name == coll_name and info.points == 0
            with pytest.raises(AlreadyExistsError):
                await c.create_collection(coll_name, dim=8)
            assert coll_name in [x.name for x in await c.list_collections()]
            await c.create_alias("a_" + coll_name, coll_name)
            await c.set_alias("b_" + coll_name, coll_name)
            assert await c.list_aliases(coll_name) == {"a_" + coll_name: coll_name,
                                                      "b_" + coll_name: coll_name}
            await c.delete_alias("b_" + coll_name)
            desc = await c.describe_collection("a_" + coll_name)
            assert desc.aliases == ("a_" + coll_name,)

            vecs = rand(30, 8, seed=5)
            ids = [f"p{i}" for i in range(30)]
            res = await c.upsert(coll_name, ids, vecs, payloads=[{"i": i} for i in range(30)],
                                 texts=["t"] * 30)
            assert res.count == 30 and await c.count(coll_name) == 30
            got = await c.get(coll_name, ["p2", "nope", "p1"], with_vectors=True)
            assert [p.id for p in got] == ["p2", "p1"] and got[0].text == "t"
            np.testing.assert_array_equal(got[1].vector, vecs[1])
            page = await c.scroll(coll_name, limit=10)
            assert len(page.points) == 10 and page.next_cursor
            assert sorted([p.id async for p in c.iter_points(coll_name, batch_size=8)]) == sorted(ids)
            hits = await c.search(coll_name, vector=vecs[4], k=3)
            assert isinstance(hits[0], Hit) and hits[0].id == "p4" and hits[0].payload == {"i": 4}
            batch = await c.search(coll_name, vectors=vecs[:2], k=2)
            assert [r[0].id for r in batch] == ["p0", "p1"]
            assert (await c.delete(coll_name, ["p0", "p1", "zz"])).count == 2
            assert await c.count(coll_name) == 28
            with pytest.raises(InvalidArgumentError) as ei:
                await c.search(coll_name, vector=[1.0, 2.0], k=3)
            assert "dimension" in ei.value.message and ei.value.request_id
            await c.drop_collection(coll_name)
            with pytest.raises(NotFoundError):
                await c.count(coll_name)
    run(scenario())


def test_async_streaming_upsert_and_concurrency(open_async, coll_name):
    async def scenario():
        async with open_async(chunk_bytes=4096) as c:
            await c.create_collection(coll_name, dim=8)
            seen = []
            res = await c.upsert(coll_name, [f"s{i}" for i in range(600)], rand(600, 8, seed=6),
                                 progress=lambda d, t: seen.append(d))
            assert res.count == 600 and len(seen) > 3 and seen[-1] == 600
            q = rand(20, 8, seed=7)
            results = await asyncio.gather(*(c.search(coll_name, vector=v, k=5) for v in q))
            assert all(len(r) == 5 for r in results)
            await c.drop_collection(coll_name)
    run(scenario())
