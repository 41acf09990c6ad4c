"""Cluster mode (docs/cluster.md): etcd membership and shard map, routing, replication."""
