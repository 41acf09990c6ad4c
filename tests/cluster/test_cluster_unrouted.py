"""A real etcd and 3 real nodes: what the cluster does not route yet (snapshots,
re-embedding) is refused with FAILED_PRECONDITION naming the RPC and cluster mode, writes
nothing, and the cluster keeps serving (docs/cluster.md "What the cluster does not do
yet")."""
from __future__ import annotations

import pytest

from test_cluster import cluster, rand  # noqa: F401 - the same fixture
from vecdb_client import FailedPreconditionError

DIM = 8


def test_snapshots_and_reembed_are_refused_naming_cluster_mode(cluster):
    name = "unrouted"
    with cluster.client() as c:
        c.create_collection(name, dim=DIM, shards=2, replication_factor=2, index="flat")
        c.upsert(name, ["a", "b"], rand(2, 3), texts=["one", "two"])
        calls = {"CreateSnapshot": lambda: c.create_snapshot(name, "snap"),
                 "ListSnapshots": c.list_snapshots,
                 "DeleteSnapshot": lambda: c.delete_snapshot("snap"),
                 "RestoreSnapshot": lambda: c.restore_snapshot("snap", "restored"),
                 "ReembedCollection": lambda: c.reembed(name, "hash-64", alias="live")}
        for rpc, call in calls.items():
            with pytest.raises(FailedPreconditionError) as err:
                call()
            assert rpc in err.value.message and "cluster mode" in err.value.message
        assert sorted(x.name for x in c.list_collections()) == [name]
        assert c.list_aliases() == {} and c.count(name) == 2
        c.drop_collection(name)
