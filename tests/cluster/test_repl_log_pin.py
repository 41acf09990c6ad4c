"""The replication log's pin (catchup.ReplLog.pin): a full copy made while writes go on
keeps the entries after the position it started from past ``retain``, until unpinned;
a reset of the copy's history drops the pin (the copy must start again)."""
from __future__ import annotations

from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb_server.cluster.catchup import ReplLog


def _write(log: ReplLog, local: str, n: int) -> None:
    for _ in range(n):
        key = log.next_key(local, 1)
        log.append(local, key, "Delete", ppb.DeleteRequest(collection=local, ids=[f"x{key[1]}"]),
                   key[1])


def test_a_pin_keeps_the_entries_after_it_until_unpinned(tmp_path):
    log = ReplLog(str(tmp_path), retain=3)
    try:
        _write(log, "c", 5)
        start = log.position("c")[0]
        assert start == (1, 5) and log.entries_after("c", (1, 1), 10) is None  # pruned
        token = log.pin("c", start)
        _write(log, "c", 10)  # far past retain: all kept while pinned
        after = log.entries_after("c", start, 100)
        assert [e.key for e in after] == [(1, n) for n in range(6, 16)]
        assert [e.request.ids[0] for e in after] == [f"x{n}" for n in range(6, 16)]
        assert log.pinned("c", token)
        log.unpin("c", token)
        _write(log, "c", 1)  # pruning resumes: the last ``retain`` entries stay
        assert log.entries_after("c", start, 100) is None
        assert [e.key for e in log.entries_after("c", (1, 13), 100)] == [(1, 14), (1, 15),
                                                                          (1, 16)]
        # a reset (history starts over, e.g. a write while the shard had no other copy)
        token = log.pin("c", log.position("c")[0])
        log.reset("c", (1, 1 << 62))
        assert not log.pinned("c", token)
    finally:
        log.close()
