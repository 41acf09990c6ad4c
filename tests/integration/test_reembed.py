"""Model migration through the server: re-embed a collection with another encoder
while readers search by text through an alias (zero failures) and a writer keeps
writing through it; then the alias points at the new collection."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

from vecdb.encoders.st import minilm_path  # noqa: E402
from vecdb_client.errors import FailedPreconditionError, InvalidArgumentError  # noqa: E402

SUBJECTS = ["a cat", "the old dog", "a small bird", "the chef", "my neighbour", "the pilot",
            "a student", "the farmer", "the band", "a child"]
ACTIONS = ["sleeps on the sofa", "cooks pasta", "reads a novel", "flies to Rome",
           "plants tomatoes", "plays the guitar", "paints the fence", "swims in the lake",
           "fixes the bike", "writes a letter"]
TEXTS = [f"{s} {a}" for s in SUBJECTS for a in ACTIONS]  # 100 sentences


def test_reembed_with_concurrent_searches_and_writes(server, client):
    new_encoder = f"sentence-transformers:{minilm_path()}"
    client.create_collection("kb_v1", encoder="minilm", payload_indexes={"n": "integer"})
    client.upsert("kb_v1", [f"p{i}" for i in range(len(TEXTS))], texts=TEXTS,
                  payloads=[{"n": i} for i in range(len(TEXTS))])
    client.upsert("kb_v1", ["ttl"], texts=["a fleeting thought"], ttl=3600)
    client.create_alias("kb", "kb_v1")

    stop = threading.Event()
    stats = {"searches": 0, "failures": [], "writes": 0}

    def reader() -> None:
        with server.client() as c:
            while not stop.is_set():
                try:
                    hits = c.search("kb", text="a kitten naps on the couch", k=3)
                    assert hits and hits[0].text == "a cat sleeps on the sofa", hits
                    stats["searches"] += 1
                except Exception as exc:  # noqa: BLE001 - counted, asserted below
                    stats["failures"].append(repr(exc))

    def writer() -> None:  # 60 upserts and 6 deletes through the alias, across the swap
        with server.client() as c:
            for i in range(60):
                c.upsert("kb", [f"w{i}"], texts=[f"written during the migration, number {i}"])
                if i % 10 == 9:
                    c.delete("kb", [f"w{i - 5}"])
                stats["writes"] += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        info = client.reembed("kb", new_encoder, batch_size=16)
        assert info.name == "kb_v1" and info.reembed.state in ("running", "done")
        target = info.reembed.target
        seen_progress = set()
        deadline = time.monotonic() + 120
        while True:
            job = client.describe_collection("kb_v1").reembed
            seen_progress.add(job.done)
            if job.state != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert job.state == "done", job
        assert job.total >= len(TEXTS) and job.done >= job.total
        assert job.caught_up > 0  # the writer's points written during the copy were replayed
        time.sleep(0.3)  # searches keep going through the swapped alias
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    assert stats["failures"] == [], stats["failures"][:3]
    assert stats["searches"] > 10
    assert client.list_aliases()["kb"] == target
    assert client.describe_collection(target).config.encoder == new_encoder
    assert client.describe_collection(target).reembed.state == "done"
    # every point (the writer's too, minus its deletes) is in the target, as written
    assert stats["writes"] == 60
    want = {f"p{i}": (t, {"n": i}) for i, t in enumerate(TEXTS)}
    want["ttl"] = ("a fleeting thought", None)
    want.update({f"w{i}": (f"written during the migration, number {i}", None) for i in range(60)
                 if i % 10 != 4})
    got = {p.id: (p.text, p.payload) for p in client.iter_points("kb")}
    assert got == want
    # the target's vectors are the new encoder's embeddings of the stored texts
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(minilm_path(), device="cpu")
    ids = ["p0", "p57", "w3"]
    pts = client.get(target, ids, with_vectors=True)
    np.testing.assert_allclose(np.stack([p.vector for p in pts]),
                               model.encode([p.text for p in pts]), atol=1e-5)
    # the TTL came along (same expiry instant)
    db = server.app.engine._db
    assert sum(len(s.expiry) for s in db.collections[target].shards) == 1
    # payload indexes came along too
    assert client.describe_collection(target).payload_indexes["n"].type == "integer"


def test_reembed_errors(client):
    client.create_collection("re_src", encoder="minilm")
    with pytest.raises(InvalidArgumentError) as e:  # a real name needs an alias to swap
        client.reembed("re_src", "minilm")
    assert e.value.field == "alias"
    with pytest.raises(InvalidArgumentError):
        client.reembed("re_src", "word2vec", alias="re_alias")
    # a point without a text cannot be re-embedded: failed, alias untouched
    client.upsert("re_src", ["v"], np.ones((1, 384), np.float32))
    client.create_alias("re_alias", "re_src")
    with pytest.raises(FailedPreconditionError) as e:
        client.reembed("re_alias", "minilm", target="re_dst", wait=True)
    assert "'v' has no text" in str(e.value)
    assert client.list_aliases()["re_alias"] == "re_src"
