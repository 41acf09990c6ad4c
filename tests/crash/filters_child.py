"""Crash-test child: runs filters_workload step after step, recording each acknowledged one.

usage: python filters_child.py DATA_DIR ACK_FILE
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from filters_workload import COLLECTION, DIM, run  # noqa: E402
from harness import last_ack  # noqa: E402

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.errors import AlreadyExists  # noqa: E402


def main() -> None:
    data, ack_path = sys.argv[1], sys.argv[2]
    db = Database.open(data, DatabaseOptions(durability="sync", checkpoint_every_ops=5,
                                             checkpoint_interval_s=0.5, wal_retain=3))
    try:
        db.create_collection(COLLECTION, DIM, metric="l2", shards=2, payload_indexes={"grp": "integer"})
    except AlreadyExists:
        pass
    n = last_ack(ack_path) + 1
    ack = open(ack_path, "a")
    print("ready", flush=True)
    while True:
        run(db, n)
        ack.write(f"{n}\n")
        ack.flush()
        n += 1


if __name__ == "__main__":
    main()
