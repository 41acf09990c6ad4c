"""A node's view of the cluster map against a real etcd: a snapshot read before a change
never rolls the change back, deletions are not resurrected, and a won compare-and-swap
is in the view at once (no second read that could fail)."""
from __future__ import annotations

import pytest

from cluster_harness import Etcd
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import KV, Etcd as EtcdClient, Event, delete
from vecdb_server.cluster.node import ClusterNode
from vecdb_server.cluster.state import Node, ShardState
from vecdb_server.engine import EngineHolder
from vecdb import DatabaseOptions


@pytest.fixture
def view(tmp_path):
    server = Etcd(tmp_path)
    etcd = EtcdClient(server.url)
    node = ClusterNode(etcd, Node("n1", "127.0.0.1:1"), 5,
                       EngineHolder(str(tmp_path / "data"), DatabaseOptions()))
    yield node, etcd
    server.close()


def test_an_older_snapshot_does_not_roll_back_a_newer_change(view):
    node, etcd = view
    key = st.shard_key("c", 0)
    etcd.put(key, ShardState("n1", ("n1", "n2"), ("n1",), 1).to_json())
    node._load()
    before = node.shard("c", 0)
    old_snapshot = etcd.range(st.ROOT)  # read before the change, installed after it
    assert node.change_shard("c", 0, before, before.with_(in_sync=("n1", "n2")))
    assert node.shard("c", 0).in_sync == ("n1", "n2")  # in the view at once
    node._merge(*old_snapshot)
    assert node.shard("c", 0).in_sync == ("n1", "n2"), "rolled back by an older snapshot"
    node._load()  # a fresh read agrees
    assert node.shard("c", 0).in_sync == ("n1", "n2")


def test_a_deletion_is_not_resurrected_by_an_older_snapshot(view):
    node, etcd = view
    etcd.put(st.alias_key("a"), "c")
    node._load()
    old_snapshot = etcd.range(st.ROOT)
    assert etcd.txn([], [delete(st.alias_key("a"))])
    _, rev = etcd.range(st.ROOT)
    with node._lock:  # what the watch delivers for the delete
        node._apply(Event("DELETE", KV(st.alias_key("a"), "", rev, 0)))
    assert "a" not in node.aliases
    node._merge(*old_snapshot)
    assert "a" not in node.aliases, "a deleted alias came back from an older snapshot"
    etcd.put(st.alias_key("a"), "d")  # a later re-creation is taken
    node._load()
    assert node.aliases["a"] == "d"


def test_a_lost_compare_and_swap_changes_nothing(view):
    node, etcd = view
    key = st.shard_key("c", 1)
    etcd.put(key, ShardState("n1", ("n1",), ("n1",), 1).to_json())
    node._load()
    stale = node.shard("c", 1)
    etcd.put(key, ShardState("n2", ("n1", "n2"), ("n2",), 2).to_json())  # someone else won
    assert not node.change_shard("c", 1, stale, stale.with_(term=5))
    assert node.refresh_shard("c", 1).term == 2
