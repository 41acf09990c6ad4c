"""Crash-test child for named vectors: the shared workload (workload.py) on a collection
with two named fields, each point carrying the subset primary_of and named_of(batch,
row) give (some points without the primary vector).

usage: python named_child.py DATA_DIR ACK_FILE
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ingest_child import last_ack  # noqa: E402
from workload import COLLECTION, DIM, steps  # noqa: E402

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.errors import AlreadyExists  # noqa: E402

FIELDS = [{"name": "image", "dim": 8, "metric": "l2", "index": "hnsw",
           "index_params": {"build_threshold": 400}},
          {"name": "body", "dim": 8, "metric": "l2", "index": "flat"}]


def named_of(vecs, rows):
    """{field: one vector or None per row}: image on even rows, body on every third."""
    return {"image": [vecs[j][:8] * 2 if r % 2 == 0 else None for j, r in enumerate(rows)],
            "body": [vecs[j][8:] + 1 if r % 3 == 0 else None for j, r in enumerate(rows)]}


def primary_of(vecs, rows):
    """The primary vectors, None (absent) on rows 2 mod 4 (those carry image)."""
    return [None if r % 4 == 2 else vecs[j] for j, r in enumerate(rows)]


def main() -> None:
    data, ack_path = sys.argv[1], sys.argv[2]
    db = Database.open(data, DatabaseOptions(durability="sync", checkpoint_every_ops=3,
                                             checkpoint_interval_s=0.5, wal_retain=2))
    try:
        db.create_collection(COLLECTION, DIM, metric="l2", index="flat", shards=2,
                             vectors=FIELDS)
    except AlreadyExists:
        pass
    done = last_ack(ack_path)
    with open(ack_path, "a") as ack:
        print("ready", flush=True)
        for n, (kind, _, ids, vecs, pays) in enumerate(steps()):
            if n <= done:
                continue
            if kind == "upsert":
                rows = range(len(ids))
                db.upsert(COLLECTION, ids, primary_of(vecs, rows), pays, named=named_of(vecs, rows))
            else:
                db.delete(COLLECTION, ids)
            ack.write(f"{n}\n")
            ack.flush()  # the page cache survives SIGKILL of this process


if __name__ == "__main__":
    main()
