#!/usr/bin/env python3
"""What an idempotency key costs a cluster write (docs/cluster.md "Retries and
idempotency keys"): the same upsert batches with and without a key, alternating in one
run, through a real etcd and real nodes. Not a test.

Keyed, the primary hashes its part of the request, looks the key up and records it;
every in-sync replica records it too (one RocksDB put without fsync each).

    python bench/cluster_keys_bench.py                  # 1 node R=1 and 3 nodes R=3
    python bench/cluster_keys_bench.py --batches 300 --batch 1000 --dim 384
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for sub in ("", "server", "client", "tests/cluster"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

import grpc  # noqa: E402
from cluster_harness import Etcd, Node  # noqa: E402
from vecdb_client import Client  # noqa: E402
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb  # noqa: E402
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc  # noqa: E402
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb  # noqa: E402

KEY = "x-vecdb-idempotency-key"


def run(nodes: list[Node], rf: int, a: argparse.Namespace) -> dict[str, list[float]]:
    name = f"keys{rf}"
    with Client([n.target for n in nodes], timeout=60) as c:
        c.create_collection(name, dim=a.dim, shards=1, replication_factor=rf, index="flat")
    stub = pgrpc.PointServiceStub(grpc.insecure_channel(nodes[0].target))
    rng = np.random.default_rng(1)
    lat: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
    for b in range(a.batches * 2):
        mode = ("unkeyed", "keyed")[b % 2]
        vecs = rng.standard_normal((a.batch, a.dim)).astype(np.float32)
        req = ppb.UpsertRequest(collection=name, points=tpb.PointBatch(
            ids=[f"p{b}-{i}" for i in range(a.batch)],
            vectors=tpb.Vectors(count=a.batch, dim=a.dim, data=vecs.tobytes()),
            payloads="[" + ",".join(f'{{"i": {i}}}' for i in range(a.batch)) + "]"))
        md = ((KEY, uuid.uuid4().hex),) if mode == "keyed" else ()
        t = time.perf_counter()
        stub.Upsert(req, metadata=md, timeout=60)
        lat[mode].append(time.perf_counter() - t)
    return lat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=150, help="batches per mode")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--dim", type=int, default=128)
    a = ap.parse_args(argv)
    print(f"{os.cpu_count()} cores; {a.batches} batches x {a.batch} points x dim {a.dim} "
          "per mode, alternating\n")
    print("| cluster | unkeyed p50 ms | keyed p50 ms | keyed/unkeyed p50 | "
          "unkeyed p99 ms | keyed p99 ms |")
    print("|---|---|---|---|---|---|")
    for count, rf in ((1, 1), (3, 3)):
        with tempfile.TemporaryDirectory() as tmp:
            etcd = Etcd(Path(tmp))
            nodes = [Node(Path(tmp), f"n{i}", etcd.url) for i in range(count)]
            try:
                lat = run(nodes, rf, a)
            finally:
                for n in nodes:
                    n.close()
                etcd.close()
        p = {m: (np.percentile(v, 50) * 1000, np.percentile(v, 99) * 1000)
             for m, v in lat.items()}
        print(f"| {count} node(s), R={rf} | {p['unkeyed'][0]:.2f} | {p['keyed'][0]:.2f} | "
              f"{p['keyed'][0] / p['unkeyed'][0]:.2f} | {p['unkeyed'][1]:.2f} | "
              f"{p['keyed'][1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
