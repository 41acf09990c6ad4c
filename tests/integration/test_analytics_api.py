"""AnalyticsService through real gRPC servers (threaded in-process; aio in a subprocess):
k-means vs faiss.Kmeans, outliers vs numpy, streamed duplicates vs all pairs, filters,
error codes naming the field, describe progress, both clients."""
from __future__ import annotations

import asyncio

import faiss
import numpy as np
import pytest

from vecdb.topk import shard_of
from vecdb_client import (AsyncClient, FailedPreconditionError, InvalidArgumentError,
                          NotFoundError)

DIM = 12


def data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((5, DIM)).astype(np.float32) * 3
    vecs = (centers[rng.integers(0, 5, n)] + rng.standard_normal((n, DIM))).astype(np.float32)
    ids = [f"p{i:04d}" for i in range(n)]
    pays = [{"half": "x" if i % 2 else "y", "text_len": i} for i in range(n)]
    return ids, vecs, pays


def fill(c, name, metric="l2", shards=2, n=400):
    ids, vecs, pays = data(n)
    c.create_collection(name, dim=DIM, metric=metric, index="flat", shards=shards)
    c.upsert(name, ids, vecs, payloads=pays, texts=[f"text {i}" for i in range(n)])
    return ids, vecs, pays


def order(ids, vecs, shards, keep=None):
    rows = sorted((i for i in range(len(ids)) if keep is None or keep[i]),
                  key=lambda i: (shard_of(ids[i], shards), i))
    return [ids[i] for i in rows], vecs[rows]


def test_cluster_over_grpc_matches_faiss(client, coll_name):
    ids, vecs, _ = fill(client, coll_name)
    job = client.cluster(coll_name, 5, iterations=12, seed=99, write_label="topic", typical=3,
                         wait=True)
    assert job.state == "done" and job.result is not None
    oids, x = order(ids, vecs, 2)
    ref = faiss.Kmeans(DIM, 5, niter=12, seed=99,
                       init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)  # the default
    ref.train(x)
    _, want = ref.assign(x)
    np.testing.assert_allclose(job.result.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
    assert job.result.sizes == np.bincount(want, minlength=5).tolist()
    inertia = float(((x - ref.centroids[want]) ** 2).sum(dtype=np.float64))
    assert job.result.inertia == pytest.approx(inertia, rel=1e-5)
    got = {p.id: p.payload["topic"] for p in client.get(coll_name, oids)}
    assert [got[i] for i in oids] == want.tolist()
    # label by cluster: count and filter work on it
    assert client.count(coll_name, filter={"key": "topic", "match": 2}) == job.result.sizes[2]
    typical = job.result.nearest_points_to_centroids()
    assert [len(t) for t in typical] == [min(3, s) for s in job.result.sizes]
    assert typical[0][0].text.startswith("text ") and "half" in typical[0][0].payload
    assert client.cluster_job(coll_name, job.id).result.sizes == job.result.sizes
    info = client.describe_collection(coll_name)
    assert info.clustering.job_id == job.id and info.clustering.state == "done"
    assert info.clustering.phase == "done" and info.clustering.write_label == "topic"


def test_cluster_errors_name_the_field(client, coll_name):
    fill(client, coll_name, n=30)
    with pytest.raises(InvalidArgumentError) as e:
        client.cluster(coll_name, 31)
    assert e.value.field == "k"
    with pytest.raises(InvalidArgumentError) as e:
        client.cluster(coll_name, 5, sample=4)
    assert e.value.field == "k"
    with pytest.raises(InvalidArgumentError) as e:
        client.cluster(coll_name, 2, iterations=0)
    assert e.value.field == "iterations"
    with pytest.raises(InvalidArgumentError) as e:
        client.cluster(coll_name, 2, init="forgy")
    assert e.value.field == "init"
    with pytest.raises(FailedPreconditionError) as e:
        client.cluster(coll_name, 2, filter={"key": "half", "match": "nobody"})
    assert e.value.field == "filter"
    with pytest.raises(NotFoundError):
        client.cluster("no_such_collection", 2)
    with pytest.raises(NotFoundError) as e:
        client.cluster_job(coll_name, "feedfeed")
    assert e.value.field == "job_id"


def test_outliers_over_grpc_equal_numpy(client, coll_name):
    ids, vecs, pays = fill(client, coll_name, metric="cosine")
    keep = [p["half"] == "x" for p in pays]
    oids, x = order(ids, vecs, 2, keep)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)
    d = 1 - x @ x.T
    np.fill_diagonal(d, np.inf)
    ref = np.sort(d, axis=1)[:, :6].mean(1)
    got = client.outliers(coll_name, 15, k=6, filter={"key": "half", "match": "x"})
    want = np.argsort(-ref, kind="stable")[:15]
    assert [o.id for o in got] == [oids[j] for j in want]
    np.testing.assert_allclose([o.score for o in got], ref[want], rtol=1e-4, atol=1e-5)
    assert got.population == sum(keep) and got.outliers[0].payload["half"] == "x"
    assert got.outliers[0].text.startswith("text ")
    job = client.cluster(coll_name, 4, wait=True)
    by_centroid = client.outliers(coll_name, 5, method="centroid", centroids=job)
    assert len(by_centroid) == 5 and by_centroid.outliers[0].score >= by_centroid.outliers[-1].score
    with pytest.raises(InvalidArgumentError) as e:
        client.outliers(coll_name, 5, method="centroid")
    assert e.value.field == "centroids"
    with pytest.raises(InvalidArgumentError) as e:
        client.outliers(coll_name, 5, method="lof")
    assert e.value.field == "method"


def test_duplicates_stream_equals_all_pairs(client, coll_name):
    ids, vecs, pays = fill(client, coll_name)
    oids, x = order(ids, vecs, 2)
    x64 = x.astype(np.float64)
    sq = (x64 * x64).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * x64 @ x64.T
    a, b = np.nonzero(np.triu(d < 7.0, 1))
    ref = {tuple(sorted((oids[i], oids[j]))) for i, j in zip(a.tolist(), b.tolist())}
    assert 20 < len(ref) < 5000
    chunks = list(client.duplicates_stream(coll_name, 7.0, batch=50))
    assert len(chunks) > 2 and chunks[-1].done and not any(ch.done for ch in chunks[:-1])
    got = {tuple(sorted((p.id_a, p.id_b))) for ch in chunks for p in ch.pairs}
    assert got == ref
    whole = client.duplicates(coll_name, 7.0)
    assert {tuple(sorted(p[:2])) for p in whole.pairs} == ref and not whole.truncated
    assert {i for g in whole.groups for i in g} == {i for pair in ref for i in pair}
    half = {i: p["half"] for i, p in zip(ids, pays)}
    flt = client.duplicates(coll_name, 7.0, filter={"key": "half", "match": "y"})
    assert {tuple(sorted(p[:2])) for p in flt.pairs} == {p for p in ref if half[p[0]] == half[p[1]] == "y"}
    cut = client.duplicates(coll_name, 7.0, limit=7)
    assert len(cut.pairs) == 7 and cut.truncated
    with pytest.raises(InvalidArgumentError) as e:
        client.duplicates(coll_name, -1.0)
    assert e.value.field == "threshold"
    with pytest.raises(NotFoundError):
        client.duplicates("no_such_collection", 1.0)


def test_async_client_on_the_aio_server(spawn):
    srv = spawn("--server-mode", "aio")

    async def scenario():
        async with AsyncClient(srv.target, timeout=30) as c:
            ids, vecs, _ = data(200)
            await c.create_collection("an", dim=DIM, metric="l2", index="flat")
            await c.upsert("an", ids, vecs)
            job = await c.cluster("an", 3, seed=5, iterations=8, write_label="grp", init="random",
                                  wait=True)
            ref = faiss.Kmeans(DIM, 3, niter=8, seed=5)  # random init: faiss.Kmeans' default
            ref.train(vecs)
            _, want = ref.assign(vecs)
            assert job.result.sizes == np.bincount(want, minlength=3).tolist()
            assert (await c.count("an", filter={"key": "grp", "match": 1})) == job.result.sizes[1]
            assert (await c.describe_collection("an")).clustering.state == "done"
            out = await c.outliers("an", 3, k=4)
            assert len(out) == 3 and out.scored == 200
            chunks = [ch async for ch in c.duplicates_stream("an", 3.0, batch=40)]
            assert chunks[-1].done
            dup = await c.duplicates("an", 3.0)
            assert sorted(dup.pairs) == sorted(p for ch in chunks for p in ch.pairs)
            with pytest.raises(InvalidArgumentError) as e:
                await c.duplicates("an", 0.0)
            assert e.value.field == "threshold"
            with pytest.raises(InvalidArgumentError) as e:
                await c.cluster("an", 500)
            assert e.value.field == "k"
    asyncio.run(scenario())


def test_max_analytics_jobs_over_grpc(spawn):
    """A server with max_analytics_jobs=1: an open duplicates stream holds the slot;
    outliers and cluster are RESOURCE_EXHAUSTED naming the setting, the server stays up,
    and the slot is free again once the stream is cancelled."""
    import time
    from vecdb_client import ResourceExhaustedError
    srv = spawn("--max-analytics-jobs", "1")
    with srv.client() as c:
        fill(c, "cap", n=300)
        stream = c.duplicates_stream("cap", 50.0, batch=8, limit=10_000)
        next(stream)
        for call in (lambda: c.outliers("cap", 3), lambda: c.cluster("cap", 3)):
            with pytest.raises(ResourceExhaustedError) as e:
                call()
            assert e.value.field == "max_analytics_jobs" and "max_analytics_jobs=1" in str(e.value)
        stream.close()  # the RPC is cancelled
        for _ in range(100):  # the server sees the cancel and drops the stream
            try:
                assert c.outliers("cap", 3).scored == 300
                break
            except ResourceExhaustedError:
                time.sleep(0.05)
        else:
            raise AssertionError("the slot never came back after the stream was cancelled")
