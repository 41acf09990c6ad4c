"""Chaos with membership changes (issue 15), real etcd and node processes: under a
continuous ingest, VECDB_CHAOS_ROUNDS (default 50) random rounds each SIGKILL a node and
start it again (sometimes at once, sometimes past node_ttl_s: a failover; the next round
may kill it again while it recovers), start a new node (it joins and receives replicas),
or remove a node for good (`cluster remove`: its replicas move off first, then it stops),
or SIGKILL a member of the 3-member etcd (its leader every other time) and start it
again. At the end nothing acknowledged is lost and the map settles: every shard has its R
replicas in sync on live members, none on a removed node, replicas per node within one."""
from __future__ import annotations

import os
import random
import time
from collections import Counter

from cluster_harness import TTL, Cluster
from test_cluster import DIM, Ingest, check_acked
from test_rebalance import settle, wait
from vecdb_client import FailedPreconditionError, NotFoundError
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import Etcd as EtcdClient


def _stop_drained(cl: Cluster, removing: set[str]) -> None:
    """Stops (for good) each node being removed once the map holds nothing on it. A node
    being removed that a round killed for longer than node_ttl_s once it held nothing has
    left for good (its mark goes) and its restart joined as a new node: a member again."""
    if not removing:
        return
    etcd = EtcdClient(cl.etcd.url)
    for node_id in list(removing):
        if not etcd.get(st.removed_key(node_id)):
            removing.discard(node_id)
    try:
        with cl.client(timeout=5) as c:
            nodes = {n["id"]: n for n in c.cluster_status()["nodes"]}
    except Exception:  # noqa: BLE001 - a node restarting answered: ask next round
        return
    for node_id in list(removing):
        n = nodes.get(node_id)
        if n is not None and n["removing"] and n["replicas"] == 0 and n["primaries"] == 0:
            node = cl.node(node_id)
            node.kill()
            cl.nodes.remove(node)
            removing.discard(node_id)


def test_membership_chaos_loses_nothing_and_settles(tmp_path):
    rounds = int(os.environ.get("VECDB_CHAOS_ROUNDS", "50"))
    rng = random.Random(15)
    cl = Cluster(tmp_path, etcd_members=3)
    founders = {n.id for n in cl.nodes}  # the ingest's client talks to these
    removing: set[str] = set()
    done: Counter = Counter()
    try:
        with cl.client() as c:
            c.create_collection("chaos", dim=DIM, shards=3, replication_factor=3,
                                write_concern="majority", index="flat")
        load = Ingest(cl, "chaos", batch=10)
        for r in range(rounds):
            _stop_drained(cl, removing)
            members = [n for n in cl.nodes if n.id not in removing]
            joined = [n for n in members if n.id not in founders]
            pick = rng.random()
            if pick < 0.2 and len(members) < 5:
                cl.add_node(f"j{r}", ready=False)
                done["join"] += 1
            elif pick < 0.4 and joined:
                victim = rng.choice(joined)
                try:
                    with cl.client(timeout=10) as c:
                        c.remove_node(victim.id)
                except (NotFoundError, FailedPreconditionError):
                    continue  # not registered yet, or too few live nodes left for R=3 now
                removing.add(victim.id)
                done["remove"] += 1
            elif pick < 0.5:
                member = cl.etcd.leader() if done["etcd"] % 2 == 0 else \
                    rng.choice(cl.etcd.members)
                member.kill()
                time.sleep(rng.uniform(0.0, 2.0))
                cl.etcd.start()
                done["etcd"] += 1
            else:
                victim = rng.choice(cl.nodes)
                victim.kill()
                time.sleep(TTL + rng.uniform(0.2, 1.0) if rng.random() < 0.2
                           else rng.uniform(0.0, 0.5))
                victim.start(ready=False)
                done["kill"] += 1
            time.sleep(rng.uniform(0.05, 0.5))
        load.stop()
        wait(lambda: (_stop_drained(cl, removing), not removing)[1], 120,
             f"removed nodes drained ({sorted(removing)})")
        settle(cl, {"chaos": 3}, {n.id for n in cl.nodes}, timeout=120)
        assert done["kill"] >= rounds // 3 and done["join"] and done["remove"] and \
            done["etcd"], done
        assert len(load.acked) > 20 * rounds ** 0.5, (len(load.acked), load.errors)
        print(f"{done}: {len(load.acked)} points acknowledged, {load.errors} writes failed")
        check_acked(cl, "chaos", load.acked)
    finally:
        cl.close()
