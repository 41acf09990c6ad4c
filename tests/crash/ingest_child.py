"""Crash-test child: runs the deterministic workload and records each acknowledged write.

usage: python ingest_child.py DATA_DIR ACK_FILE INDEX SHARDS

ACK_FILE gets the step number of each write, appended only after the engine
returned from it. The parent SIGKILLs this process at a random moment; the
next run resumes after the last recorded step.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workload import COLLECTION, DIM, steps  # noqa: E402

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.errors import AlreadyExists  # noqa: E402


def last_ack(path: str) -> int:
    if not os.path.exists(path):
        return -1
    lines = open(path).read().split()
    return int(lines[-1]) if lines else -1


def main() -> None:
    data, ack_path, index, shards = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # Frequent checkpoints and WAL truncation so kills also land inside them.
    db = Database.open(data, DatabaseOptions(durability="sync", checkpoint_every_ops=3,
                                             checkpoint_interval_s=0.5, wal_retain=2))
    try:
        db.create_collection(COLLECTION, DIM, metric="l2", index=index, shards=shards,
                             index_params=None if index == "flat" else {"build_threshold": 400})
    except AlreadyExists:
        pass
    done = last_ack(ack_path)
    ack = open(ack_path, "a")
    print("ready", flush=True)
    for n, (kind, _, ids, vecs, pays) in enumerate(steps()):
        if n <= done:
            continue
        if kind == "upsert":
            db.upsert(COLLECTION, ids, vecs, pays)
        else:
            db.delete(COLLECTION, ids)
        ack.write(f"{n}\n")
        ack.flush()  # the page cache survives SIGKILL of this process


if __name__ == "__main__":
    main()
