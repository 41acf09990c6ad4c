"""The replication log's bounds (catchup.ReplLog): a pin pruned past by MAX_BYTES is no
longer held (a full copy stops early instead of finishing a copy it cannot catch up), a
rewritten entry counts its new size, and the backlog after a position is counted."""
from __future__ import annotations

from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb_server.cluster.catchup import ReplLog


def _write(log: ReplLog, local: str, n: int, id_bytes: int = 10) -> None:
    for _ in range(n):
        key = log.next_key(local, 1)
        log.append(local, key, "Delete", ppb.DeleteRequest(
            collection=local, ids=[f"x{key[1]}".ljust(id_bytes, "x")]), key[1])


def test_a_pin_pruned_past_by_the_byte_bound_is_lost(tmp_path):
    log = ReplLog(str(tmp_path), retain=3, max_bytes=4000)
    try:
        _write(log, "c", 2)
        start = log.position("c")[0]
        token = log.pin("c", start)
        _write(log, "c", 5, id_bytes=500)  # within max_bytes: kept past retain
        assert log.pinned("c", token) and log.backlog("c", start) == 5
        _write(log, "c", 10, id_bytes=500)  # past max_bytes: the oldest after start go
        assert log.entries_after("c", start, 100) is None
        assert log.backlog("c", start) is None
        assert not log.pinned("c", token)
    finally:
        log.close()


def test_a_rewritten_entry_counts_its_new_size(tmp_path):
    log = ReplLog(str(tmp_path), retain=100, max_bytes=2700)  # entries: 61 B, this 2.5 kB
    try:
        _write(log, "c", 3)
        key = log.position("c")[0]
        big = ppb.DeleteRequest(collection="c", ids=["y" * 500] * 5)  # ~2.5 kB
        log.rewrite("c", key, "Delete", big, 0, 0.0)
        assert log.entries_after("c", (1, 2), 10)[0].request == big
        _write(log, "c", 1)  # over max_bytes with the rewritten size: the oldest goes
        assert log.entries_after("c", (0, 0), 10) is None
        assert [e.key for e in log.entries_after("c", (1, 1), 10)] == [(1, 2), (1, 3), (1, 4)]
        assert log.backlog("c", (1, 3)) == 1 and log.backlog("c", (1, 4)) == 0
    finally:
        log.close()
