"""Crash-test child for create/drop: churns collections until SIGKILLed.

usage: python drop_child.py DATA_DIR

Keeps one collection "keep" (created once, 100 points), drops what the
previous run left in flight, then loops:
create "churn-<n>" with 3 shards, write 200 points, checkpoint it, drop it.
"""
import sys

import numpy as np

from vecdb import Database, DatabaseOptions
from vecdb.errors import AlreadyExists


def main() -> None:
    db = Database.open(sys.argv[1], DatabaseOptions(background=False))
    rng = np.random.default_rng()
    try:
        db.create_collection("keep", 8, metric="l2")
        db.upsert("keep", [f"k{i}" for i in range(100)], np.ones((100, 8), np.float32))
    except AlreadyExists:
        pass
    for c in db.list_collections():  # the previous run's in-flight collection
        if c.name.startswith("churn-"):
            db.drop_collection(c.name)
    print("ready", flush=True)
    n = 0
    while True:
        name = f"churn-{n}"
        db.create_collection(name, 8, metric="l2", shards=3)
        db.upsert(name, [f"p{i}" for i in range(200)], rng.standard_normal((200, 8)).astype(np.float32))
        db.checkpoint()  # puts FAISS files on disk, so the drop has files to remove
        db.drop_collection(name)
        n += 1


if __name__ == "__main__":
    main()
