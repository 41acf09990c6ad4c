"""A real etcd and 3 real nodes: a node that is the primary of every shard a batch touches
applies it in one engine write (cluster/local_writes.py), replicated as any write."""
from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
import pytest

from cluster_harness import Cluster
from test_cluster import cluster, rand  # noqa: F401 - the same fixture
from test_cluster_queries import keyed
from vecdb_client import InvalidArgumentError
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

DIM = 8


def _primaries_to(cluster, name: str, lead) -> None:
    """Drain the other nodes until ``lead`` is the primary of every shard of ``name``."""
    deadline = time.monotonic() + 60
    with cluster.client() as c:
        while True:
            shards = [s for s in c.cluster_status()["shards"] if s["collection"] == name]
            away = {s["primary"] for s in shards} - {lead.id}
            if not away:
                return
            assert time.monotonic() < deadline, f"primaries still on {away}"
            for node in away:
                c.drain_node(node)
            time.sleep(0.2)


def test_one_nodes_primaries_take_a_batch_at_once_and_replicate_it(cluster):
    """A batch with a bad row writes no shard's part (the routed path writes each shard's
    part on its own); a good batch reaches every replica of every shard equal; the same
    keyed batch sent again, to another node (which routes it shard by shard) and to the
    lead, answers the first sequence numbers and is not applied again."""
    name, n = "atonce", 60
    lead, other = cluster.nodes[0], cluster.nodes[1]
    with cluster.client() as c:
        c.create_collection(name, dim=DIM, shards=3, replication_factor=3, index="flat")
    _primaries_to(cluster, name, lead)
    cluster.wait_in_sync(name)
    ids, vecs = [f"a{i}" for i in range(n)], rand(n, 5)
    bad = vecs.copy()
    bad[7] = 0  # cosine refuses a zero vector
    with cluster.client([lead]) as c:
        with pytest.raises(InvalidArgumentError) as err:
            c.upsert(name, ids, bad)
        assert "vectors[7]" in str(err.value)  # its place in the client's batch
        assert c.count(name) == 0
    batch = ppb.UpsertRequest(collection=name, points=tpb.PointBatch(
        ids=ids, vectors=tpb.Vectors(count=n, dim=DIM, data=vecs.tobytes()),
        payloads=json.dumps([{"i": i} for i in range(n)]), texts=[f"t{i}" for i in range(n)]))
    stubs = [pgrpc.PointServiceStub(grpc.insecure_channel(x.target)) for x in (lead, other)]
    ack = keyed(stubs[0], "Upsert", batch, "at-once-1")
    assert ack.count == n and sorted(ack.shard_seqs) == [0, 1, 2]
    for stub in (stubs[1], stubs[0]):  # routed by another node; the lead itself again
        again = keyed(stub, "Upsert", batch, "at-once-1")
        assert dict(again.shard_seqs) == dict(ack.shard_seqs)
    status = cluster.wait_in_sync(name)
    for s in (s for s in status["shards"] if s["collection"] == name):
        assert s["primary"] == lead.id
        assert [r["applied_seq"] for r in s["replicas"]] == [ack.shard_seqs[s["shard"]]] * 3
    for node in cluster.nodes:  # each node reads its own copy of every shard
        with cluster.client([node]) as c:
            got = c.get(name, ids, with_vectors=True)
            assert [p.id for p in got] == ids
            np.testing.assert_array_equal(np.stack([p.vector for p in got]), vecs)
            assert [(p.payload, p.text) for p in got] == [({"i": i}, f"t{i}") for i in range(n)]
    with cluster.client() as c:
        c.drop_collection(name)


def test_a_batchs_replication_never_waits_behind_writes_blocked_on_its_locks(tmp_path):
    """The lead's router threads (2 here) all taken by multi-shard deletes waiting for the
    shard locks a one-write batch holds: the batch's replication runs on threads of its
    own, so every call is answered (none waits out its deadline) and the copies agree."""
    c = Cluster(tmp_path, n=2, extra=("--cluster-router-threads", "2"))
    try:
        name, n, lead = "nowait", 30, c.nodes[0]
        with c.client() as cl:
            cl.create_collection(name, dim=DIM, shards=3, replication_factor=2, index="flat")
        _primaries_to(c, name, lead)
        c.wait_in_sync(name)
        ids, vecs, errors = [f"w{i}" for i in range(n)], rand(n, 9), []
        stop = time.monotonic() + 3

        def loop(write) -> None:
            try:
                with c.client([lead], timeout=10, max_retries=0) as cl:
                    while time.monotonic() < stop:
                        write(cl)
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        writers = [threading.Thread(target=loop, args=(lambda cl: cl.upsert(name, ids, vecs),))
                   for _ in range(2)]
        writers += [threading.Thread(target=loop, args=(lambda cl: cl.delete(name, ids),))
                    for _ in range(3)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(60)
        assert not errors, errors
        with c.client([lead], timeout=10) as cl:
            cl.upsert(name, ids, vecs)
            assert cl.count(name) == n
        c.wait_in_sync(name)
    finally:
        c.close()
