"""A real etcd and 2 real nodes in this process (so a test can hold a shard's write lock
as a full copy does): a write waits for that lock a bounded time, then UNAVAILABLE naming
the shard; a batch whose shard's primary moved while it waited for the locks is routed."""
from __future__ import annotations

import threading
import time

import pytest

from cluster_harness import SECRET, Etcd
from test_cluster import rand
from test_local_writes import _primaries_to
from vecdb import DatabaseOptions
from vecdb.topk import shard_of
from vecdb_client import Client, UnavailableError
from vecdb_server.app import ServerApp
from vecdb_server.config import ServerConfig

DIM = 8


class InProcessCluster:
    def __init__(self, tmp_path, n: int):
        self.etcd = Etcd(tmp_path)
        self.apps = []
        for i in range(n):
            app = ServerApp(ServerConfig(
                host="127.0.0.1", port=0, data_dir=str(tmp_path / f"n{i}"), max_workers=8,
                grace_period_s=2.0, engine=DatabaseOptions(), metrics_port=-1,
                recall_sample_rate=0.0, cluster_etcd=self.etcd.url, node_id=f"n{i}",
                node_ttl_s=2, cluster_secret=SECRET))
            app.start()
            app.open_in_background()
            assert app.ready.wait(30) and app.engine.open_error is None
            app.id, app.target = f"n{i}", f"127.0.0.1:{app.port}"
            self.apps.append(app)
        with self.client() as c:
            c.wait_ready(30)

    def client(self, nodes=None, **kw) -> Client:
        kw.setdefault("timeout", 20)
        return Client([a.target for a in nodes or self.apps], **kw)

    def close(self) -> None:
        for app in self.apps:
            app.stop(grace=1)
        self.etcd.close()


@pytest.fixture
def two(tmp_path):
    c = InProcessCluster(tmp_path, 2)
    yield c
    c.close()


def _ready(c: InProcessCluster, name: str) -> tuple[ServerApp, list[str], object]:
    """A 2-shard, 2-copy collection whose primaries are all on n0, in sync; n0, ids, vectors."""
    with c.client() as cl:
        cl.create_collection(name, dim=DIM, shards=2, replication_factor=2, index="flat")
    lead = c.apps[0]
    _primaries_to(c, name, lead)
    deadline = time.monotonic() + 30
    while any(len(lead.cluster.node.shard(name, i).in_sync) < 2 for i in range(2)):
        assert time.monotonic() < deadline, "replicas not in sync"
        time.sleep(0.1)
    ids = [f"p{i}" for i in range(20)]
    assert {shard_of(x, 2) for x in ids} == {0, 1}
    return lead, ids, rand(len(ids), 3)


def test_a_write_waits_for_a_held_shard_lock_a_bounded_time(two):
    """Shard 0's write lock held (as a full copy holds it): a one-shard write and a batch
    applied in one engine write both answer UNAVAILABLE naming the shard, nothing written,
    and so does a write sent to the other node (forwarded: the primary's words, not
    "node n0 is unreachable"); once the lock is free the same writes succeed."""
    name = "busy"
    lead, ids, vecs = _ready(two, name)
    lead.cluster.router.lock_wait_s = 0.3
    one = [x for x in ids if shard_of(x, 2) == 0][:1]
    with two.client([lead], max_retries=0) as cl, \
            two.client([two.apps[1]], max_retries=0) as via:
        with lead.cluster.node.write_lock(name, 0):
            for batch in (one, ids):
                with pytest.raises(UnavailableError, match=f"shard {name}/0 is busy"):
                    cl.upsert(name, batch, vecs[:len(batch)])
            with pytest.raises(UnavailableError, match=f"node n0: shard {name}/0 is busy"):
                via.upsert(name, one, vecs[:1])
            assert cl.count(name) == 0
        cl.upsert(name, ids, vecs)
        assert cl.count(name) == len(ids)


def test_a_batch_whose_shards_primary_moved_while_it_waited_is_routed(two):
    """n0 leads both shards; the batch takes shard 0's lock and waits for shard 1's (held
    here) while shard 1's primary moves to n1 (term + 1): it is routed shard by shard
    (nothing was written yet) and acknowledged, both copies holding every point."""
    name = "moved"
    lead, ids, vecs = _ready(two, name)
    other = two.apps[1]
    errors, done = [], []

    def write() -> None:
        try:
            with two.client([lead], max_retries=0) as cl:
                done.append(cl.upsert(name, ids, vecs))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    with lead.cluster.node.write_lock(name, 1):
        t = threading.Thread(target=write)
        t.start()
        time.sleep(0.5)  # the batch passed its check and waits for shard 1's lock
        assert not done and not errors
        s = lead.cluster.node.shard(name, 1)
        assert lead.cluster.node.change_shard(name, 1, s, s.with_(primary=other.id,
                                                                  term=s.term + 1))
        deadline = time.monotonic() + 10
        while other.cluster.node.shard(name, 1).term != s.term + 1:
            assert time.monotonic() < deadline, "n1 never saw the move"
            time.sleep(0.05)
    t.join(30)
    assert not errors, errors
    assert done
    for app in two.apps:  # each node reads its own copy of every shard
        with two.client([app]) as cl:
            assert [p.id for p in cl.get(name, ids)] == ids


def test_a_collection_made_again_after_failovers_takes_writes(two):
    """Terms accepted for a collection's shards are kept per shard copy (its uid), not per
    name: a collection dropped after its primaries moved back and forth (terms > 1) and
    made again under the same name starts at term 1 and must take writes on every node
    and sync its copies (keyed by name, n0 refused to lead it: 'term 1 is superseded')."""
    name = "again"
    lead, ids, vecs = _ready(two, name)
    other = two.apps[1]
    _primaries_to(two, name, other)  # n1 leads at a higher term and replicates to n0
    deadline = time.monotonic() + 30
    while any(len(other.cluster.node.shard(name, i).in_sync) < 2 for i in range(2)):
        assert time.monotonic() < deadline, "replicas not in sync"
        time.sleep(0.1)
    with two.client([other]) as cl:
        cl.upsert(name, ids, vecs)
    assert any(t > 1 for t in lead.cluster.router.promised.values())
    with two.client() as cl:
        cl.drop_collection(name)
    lead, ids, vecs = _ready(two, name)  # made again: in sync on both, primaries on n0
    with two.client([lead], max_retries=0) as cl:
        cl.upsert(name, ids, vecs)
        assert cl.count(name) == len(ids)
