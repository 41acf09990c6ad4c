"""Crash-test child: texts written in deterministic steps, searched in between (each
search after writes commits the on-disk text index), checkpointed often.

usage: python fulltext_child.py DATA_DIR ACK_FILE

Step s upserts the texts of ``fulltext_steps.step(s)`` and deletes its doomed ids;
ACK_FILE gets s after both returned. The parent SIGKILLs this process at a random
moment; the next run resumes after the last recorded step.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fulltext_steps import COLLECTION, DIM, STEPS, step
from harness import last_ack

from vecdb import Database, DatabaseOptions
from vecdb.errors import AlreadyExists


def main() -> None:
    data, ack_path = sys.argv[1], sys.argv[2]
    # frequent checkpoints and WAL truncation, so kills also land inside them
    db = Database.open(data, DatabaseOptions(durability="sync", checkpoint_every_ops=3,
                                             checkpoint_interval_s=0.2, wal_retain=2))
    try:
        db.create_collection(COLLECTION, DIM, full_text="english", shards=2)
    except AlreadyExists:
        pass
    print("ready", flush=True)
    with open(ack_path, "a") as ack:
        for s in range(last_ack(ack_path) + 1, STEPS):
            ids, vecs, txts, doomed = step(s)
            db.upsert(COLLECTION, ids, vecs, texts=txts)
            db.delete(COLLECTION, doomed)
            db.search(COLLECTION, keywords="motor", k=3)
            ack.write(f"{s}\n")
            ack.flush()
    while True:  # all steps done: wait for the kill
        time.sleep(1)


if __name__ == "__main__":
    main()
