"""A real etcd and 3 real vecdb-server nodes: recommend, vector arithmetic and grouped
search through the cluster equal a single node's on the same data; allow_partial reads
when a shard has no reachable replica; idempotency keys make a retried write apply once."""
from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from cluster_harness import Cluster
from test_cluster import cluster, rand, single  # noqa: F401 - the same fixtures
from vecdb_client import NotFoundError, UnavailableError
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

DIM = 8


def flat(result) -> list:
    """Hits or groups as comparable plain data (scores to 4 decimals)."""
    if result and hasattr(result[0], "hits"):
        return [(g.key, flat(g.hits)) for g in result]
    if result and isinstance(result[0], list):
        return [flat(r) for r in result]
    return [(h.id, round(h.score, 4), h.payload) for h in result]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_recommend_expression_and_groups_equal_a_single_node(cluster, single, metric):
    n, name = 500, f"beyond_{metric}"
    vecs, ids = rand(n, 21), [f"b{i}" for i in range(n)]
    payloads = [{"cat": i % 23, "tag": ["x", "y", "z", "w"][i % 4], "odd": bool(i % 2)}
                for i in range(n)]
    payloads[3] = {"tag": "x"}  # no cat: skipped by group_by="cat"
    queries = rand(3, 22)
    flt = {"key": "tag", "any": ["x", "y", "z"]}
    with cluster.client() as cc, single.client() as sc:
        cc.create_collection(name, dim=DIM, metric=metric, shards=3, replication_factor=2,
                             index="flat")
        sc.create_collection(name, dim=DIM, metric=metric, shards=3, index="flat")
        for c in (cc, sc):
            c.upsert(name, ids, vecs, payloads=payloads)
        calls = [
            lambda c: c.recommend(name, ["b1", "b2"], k=9),
            lambda c: c.recommend(name, ["b1", {"vector": queries[0].tolist()}], ["b7"], k=12,
                                  filter=flt),
            lambda c: c.recommend(name, ["b1", "b40"], ["b7", "b8"], strategy="best_score",
                                  k=10),
            lambda c: c.recommend(name, ["b5"], include_examples=True, k=5),
            lambda c: c.search(name, expression=[("+", "id:b10"), ("-", "id:b11"),
                                                 (0.5, queries[1].tolist())], k=11),
            lambda c: c.search(name, expression=[("+", "id:b10"), ("+", "id:b12")],
                               include_terms=True, k=6, filter=flt),
            lambda c: c.search(name, vectors=queries, group_by="cat", groups=5, group_size=3),
            lambda c: c.search(name, vector=queries[2], group_by="tag", groups=3,
                               group_size=4, filter={"key": "odd", "match": True}),
            lambda c: c.search(name, expression=[("+", "id:b20"), ("-", "id:b21")],
                               group_by="cat", groups=4, group_size=2),
            lambda c: c.search(name, vector=queries[0], group_by="odd", groups=10,
                               group_size=7),
        ]
        for j, call in enumerate(calls):
            want = flat(call(sc))
            assert want, j
            for node in cluster.nodes:
                with cluster.client([node]) as one:
                    assert flat(call(one)) == want, (j, node.id)
        with pytest.raises(NotFoundError) as err:  # named like one node names it
            cc.recommend(name, ["b1", "nope"])
        assert err.value.field == "positive[1]"
        with pytest.raises(NotFoundError) as err:
            cc.search(name, expression=[("+", "id:b1"), ("-", "id:nope")])
        assert err.value.field == "expression[1]"
        cc.drop_collection(name)


def shard_of_node(cluster: Cluster, name: str) -> dict[str, list[int]]:
    with cluster.client() as c:
        status = c.cluster_status()
    out: dict[str, list[int]] = {}
    for s in status["shards"]:
        if s["collection"] == name:
            out.setdefault(s["primary"], []).append(s["shard"])
    return out


def test_allow_partial_skips_a_shard_with_no_reachable_replica(cluster, single):
    """R = 1: a killed node's shard has no replica left. Without allow_partial the call
    fails naming the shard; with it, the other shards answer and say partial, equal to a
    single node's answer without that shard's points."""
    from vecdb.topk import shard_of
    n, name = 300, "partial"
    vecs, ids = rand(n, 31), [f"r{i}" for i in range(n)]
    payloads = [{"i": i} for i in range(n)]
    queries = rand(2, 32)
    with cluster.client() as cc, single.client() as sc:
        cc.create_collection(name, dim=DIM, metric="l2", shards=3, replication_factor=1,
                             index="flat")
        sc.create_collection(name, dim=DIM, metric="l2", shards=3, index="flat")
        for c in (cc, sc):
            c.upsert(name, ids, vecs, payloads=payloads)
        full = cc.search(name, vectors=queries, k=10, allow_partial=True)
        assert full.partial is False and flat(full) == flat(sc.search(name, vectors=queries,
                                                                      k=10))
        owners = shard_of_node(cluster, name)
        victim = cluster.node(next(iter(owners)))
        lost = set(owners[victim.id])
        gone = [i for i in ids if shard_of(i, 3) in lost]
        assert gone and len(gone) < n
        victim.kill()
        try:
            with cluster.client([x for x in cluster.nodes if x is not victim],
                                max_retries=0) as c:
                with pytest.raises(UnavailableError) as err:
                    c.search(name, vectors=queries, k=10)
                assert f"shard {name}/{min(lost)}" in err.value.message
                with pytest.raises(UnavailableError):
                    c.count(name)
                rest = {"must_not": [{"has_id": gone}]}
                got = c.search(name, vectors=queries, k=10, allow_partial=True)
                assert got.partial is True
                assert flat(got) == flat(sc.search(name, vectors=queries, k=10, filter=rest))
                count = c.count(name, allow_partial=True)
                assert count.partial is True and count == n - len(gone)
                got = c.range_search(name, vector=queries[0], threshold=8.0, allow_partial=True)
                want = sc.range_search(name, vector=queries[0], threshold=8.0, filter=rest)
                assert got.partial is True and [h.id for h in got] == [h.id for h in want]
                grouped = c.search(name, vector=queries[1], group_by="i", groups=4,
                                   allow_partial=True)
                assert grouped.partial is True and len(grouped) == 4
        finally:
            victim.start()
        with cluster.client() as c:
            c.drop_collection(name)


def keyed(stub, method: str, request, key: str, wait: float = 0.0):
    """One write with an idempotency key; UNAVAILABLE (a failover, replicas catching up)
    retried for ``wait`` seconds, like the SDK does."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return getattr(stub, method)(request, timeout=30,
                                         metadata=(("x-vecdb-idempotency-key", key),))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_retried_keyed_write_is_applied_once_even_after_failover(cluster):
    """The same keyed batch sent twice (to other nodes, and after the primary that
    acknowledged it was killed and replaced) is applied once: the retry answers the first
    sequence numbers, the shard's sequence does not move, and a write made in between is
    not overwritten by the retry."""
    name = "keys"
    with cluster.client() as c:
        c.create_collection(name, dim=DIM, shards=1, replication_factor=3, index="flat")
        c.upsert(name, ["a", "b"], rand(2, 41), payloads=[{"v": 0}, {"v": 0}])
    primary = cluster.node(next(iter(shard_of_node(cluster, name))))
    others = [x for x in cluster.nodes if x is not primary]
    stubs = {x.id: pgrpc.PointServiceStub(grpc.insecure_channel(x.target)) for x in cluster.nodes}
    first = ppb.UpsertRequest(collection=name, points=tpb.PointBatch(
        ids=["a"], payloads='[{"v": 1}]',
        vectors=tpb.Vectors(count=1, dim=DIM, data=rand(1, 42).tobytes())))
    ack = keyed(stubs[others[0].id], "Upsert", first, "key-1", wait=10)
    again = keyed(stubs[others[1].id], "Upsert", first, "key-1")
    assert dict(again.shard_seqs) == dict(ack.shard_seqs)
    upd = ppb.UpdatePayloadRequest(collection=name, ids=["b"], set_json='{"n": 1}')
    u1 = keyed(stubs[primary.id], "UpdatePayload", upd, "key-2")
    u2 = keyed(stubs[others[0].id], "UpdatePayload", upd, "key-2")
    assert dict(u1.shard_seqs) == dict(u2.shard_seqs)
    with cluster.client() as c:  # an unkeyed write moves the sequence by exactly one
        nxt = c.upsert(name, ["a"], rand(1, 43), payloads=[{"v": 2}])
        assert list(nxt.shard_seqs.values())[0] == list(u1.shard_seqs.values())[0] + 1
    with pytest.raises(grpc.RpcError) as err:  # a key names one request only
        keyed(stubs[others[0].id], "UpdatePayload",
              ppb.UpdatePayloadRequest(collection=name, ids=["b"], set_json='{"n": 2}'),
              "key-2")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency" in err.value.details()
    primary.kill()  # the node that applied and acknowledged key-1 is gone
    try:
        late = keyed(stubs[others[1].id], "Upsert", first, "key-1", wait=20)
        assert dict(late.shard_seqs) == dict(ack.shard_seqs)
        with cluster.client(others) as c:
            assert c.get(name, ["a"])[0].payload == {"v": 2}  # the retry did not re-apply
            fresh = keyed(stubs[others[0].id], "Upsert", first, "key-3", wait=30)
            assert c.get(name, ["a"])[0].payload == {"v": 1}  # a new key does
            assert dict(fresh.shard_seqs) != dict(ack.shard_seqs)
    finally:
        primary.start()
    cluster.wait_in_sync(name)
    with cluster.client() as c:
        c.drop_collection(name)


def test_outliers_and_duplicates_equal_a_single_node(cluster, single):
    """Outliers (knn and centroid, with a filter) and near-duplicate pairs through the
    cluster (gathered copy, cluster/scratch_analytics.py) equal a single node's; k-means
    finds the same clusters, its job is readable from every node, write_label
    labels every point of the collection."""
    n, name = 400, "analytics"
    vecs, ids = rand(n, 51), [f"a{i}" for i in range(n)]
    vecs[10:20] = vecs[0] + 0.001 * rand(10, 52)  # near-duplicates of a0, across shards
    vecs[30] *= 25  # far away
    vecs[200:] += np.repeat(np.arange(4), 50)[:, None].astype(np.float32) * 40  # 4 blobs
    payloads = [{"i": i, "half": i % 2} for i in range(n)]
    flt = {"key": "half", "match": 0}
    with cluster.client() as cc, single.client() as sc:
        cc.create_collection(name, dim=DIM, metric="l2", shards=3, replication_factor=2,
                             index="flat")
        sc.create_collection(name, dim=DIM, metric="l2", shards=3, index="flat")
        for c in (cc, sc):
            c.upsert(name, ids, vecs, payloads=payloads, texts=[f"t{i}" for i in range(n)])

        def outl(c, **kw):
            got = c.outliers(name, n=7, **kw)
            return ([(o.id, round(o.score, 3), o.payload, o.text) for o in got],
                    got.scored, got.population)

        def dups(c, **kw):
            got = c.duplicates(name, 0.01, **kw)
            return (sorted((*sorted((p.id_a, p.id_b)), round(p.distance, 5)) for p in got.pairs),
                    sorted(sorted(g) for g in got.groups), got.population)
        centroids = rand(4, 53)
        for kw in ({}, {"filter": flt, "k": 3}, {"method": "centroid", "centroids": centroids}):
            want = outl(sc, **kw)
            assert want[0] and outl(cc, **kw) == want, kw
        want = dups(sc)
        assert len(want[0]) >= 45 and dups(cc) == want
        assert dups(cc, filter=flt) == dups(sc, filter=flt)
        blobs = {"key": "i", "range": {"gte": 200}}
        want = sc.cluster(name, k=4, filter=blobs, wait=True).result
        job = cc.cluster(name, k=4, filter=blobs, wait=True)
        assert job.id.rpartition("@")[2] in {x.id for x in cluster.nodes}  # who ran it
        assert job.state == "done"
        assert sorted(job.result.sizes) == sorted(want.sizes) == [50] * 4
        assert (job.result.points, job.result.trained_on) == (want.points, want.trained_on)
        assert abs(job.result.inertia - want.inertia) <= 1e-3 * want.inertia
        for node in cluster.nodes:  # any node answers for the job (the one that ran it)
            with cluster.client([node]) as one:
                assert one.cluster_job(name, job.id).result.sizes == job.result.sizes
        labelled = cc.cluster(name, k=4, filter=blobs, write_label="topic", wait=True).result
        assert labelled.labelled == 200
        for c, size in enumerate(labelled.sizes):  # written to every shard's copies
            assert cc.count(name, filter={"key": "topic", "match": c}) == size
        assert cc.count(name, filter={"must_not": [{"key": "topic", "exists": True}]}) == 200
        cc.drop_collection(name)
