"""A real etcd and 3 real nodes: tenants are single-node only for now (docs/tenants.md),
so a cluster refuses tenant_field and any request naming a tenant with
FAILED_PRECONDITION, writes nothing, and keeps serving."""
from __future__ import annotations

import pytest
from test_cluster import cluster, rand  # noqa: F401 - the same fixture
from vecdb_client import FailedPreconditionError

DIM = 8


def test_tenants_are_refused_in_cluster_mode(cluster):
    with cluster.client() as c:
        with pytest.raises(FailedPreconditionError) as ei:
            c.create_collection("mt", dim=DIM, shards=2, tenant_field="customer")
        assert "tenant_field" in ei.value.message and "cluster mode" in ei.value.message
        assert "mt" not in [x.name for x in c.list_collections()]
        c.create_collection("plain_t", dim=DIM, shards=2, index="flat")
        for call in (lambda: c.upsert("plain_t", ["a"], rand(1, DIM), tenant="acme"),
                     lambda: c.search("plain_t", rand(1, DIM)[0], k=1, tenant="acme"),
                     lambda: c.count("plain_t", tenant="acme")):
            with pytest.raises(FailedPreconditionError) as ei:
                call()
            assert "cluster mode" in ei.value.message
        c.upsert("plain_t", ["b"], rand(1, DIM))
        assert c.count("plain_t") == 1
        c.drop_collection("plain_t")
