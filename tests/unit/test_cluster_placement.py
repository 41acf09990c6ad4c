"""Placement of shard replicas over nodes (pure function), against its rules."""
from __future__ import annotations

import itertools
from collections import Counter

import pytest

from vecdb.errors import FailedPrecondition, InvalidArgument
from vecdb_server.cluster.state import (CollectionSpec, Node, ShardState, place,
                                        validate_cluster_args)


def nodes(n: int, zones: int = 0) -> list[Node]:
    return [Node(f"n{i}", f"127.0.0.1:{5000 + i}", f"z{i % zones}" if zones else "")
            for i in range(n)]


@pytest.mark.parametrize("n,shards,rf", list(itertools.product((1, 2, 3, 5), (1, 2, 7, 12),
                                                                 (1, 2, 3))))
def test_distinct_nodes_even_load_and_spread_primaries(n, shards, rf):
    if rf > n:
        with pytest.raises(FailedPrecondition) as err:
            place(shards, rf, nodes(n))
        assert err.value.field == "replication_factor"
        return
    out = place(shards, rf, nodes(n))
    assert len(out) == shards
    for s in out:
        assert len(set(s.replicas)) == rf and s.primary == s.replicas[0]
        assert s.in_sync == (s.primary,) and s.term == 1  # the others join by resync
    load = Counter(r for s in out for r in s.replicas)
    assert max(load.values()) - min(load.get(x.id, 0) for x in nodes(n)) <= 1
    leaders = Counter(s.primary for s in out)
    assert max(leaders.values()) - min(leaders.get(x.id, 0) for x in nodes(n)) <= 1


def test_existing_load_is_balanced_first():
    out = place(2, 1, nodes(3), load={"n0": 5, "n1": 5})
    assert [s.primary for s in out] == ["n2", "n2"]


def test_zones_first():
    ns = nodes(6, zones=3)  # n0,n3 in z0; n1,n4 in z1; n2,n5 in z2
    for s in place(8, 3, ns):
        zones = {next(n.zone for n in ns if n.id == r) for r in s.replicas}
        assert len(zones) == 3, s


def test_cluster_arguments_are_validated():
    for args, field in (((0, 1, "majority"), "shards"), ((1, 0, "majority"), "replication_factor"),
                        ((1, 1, "most"), "write_concern")):
        with pytest.raises(InvalidArgument) as err:
            validate_cluster_args(*args)
        assert err.value.field == field


def test_write_concern_sizes():
    spec = lambda rf, wc: CollectionSpec("c", "u", 1, rf, wc, "")  # noqa: E731
    assert [spec(3, w).required_in_sync() for w in ("majority", "all", "one")] == [2, 3, 1]
    assert spec(2, "majority").required_in_sync() == 2 and spec(1, "majority").required_in_sync() == 1


def test_shard_state_round_trips():
    s = ShardState("n1", ("n1", "n2"), ("n1",), 7, mod_revision=99)
    back = ShardState.from_json(s.to_json(), 99)
    assert back == s and back.mod_revision == 99
