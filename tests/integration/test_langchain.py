"""LangChain VectorStore over a real in-process server: the langchain-tests standard
suite (sync and async, unmodified), plus the server-side encoder, filters, MMR and the keyword/hybrid search modes."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from harness import SRC_PATHS
from vecdb.fusion import rrf
from vecdb_client import F, NotFoundError
from vecdb_client.integrations._common import mmr_select
from vecdb_client.integrations._filters import from_langchain
from vecdb_client.integrations.langchain import VecdbVectorStore


def _drop(client, name: str) -> None:
    try:
        client.drop_collection(name)
    except NotFoundError:
        pass


class TestVecdbStandard(VectorStoreIntegrationTests):
    """The standard suite; the only addition is the fixture: an empty store over a
    collection name of its own, created lazily with the suite's embedding size."""

    @pytest.fixture()
    def vectorstore(self, server, client, coll_name):  # type: ignore[override]
        store = VecdbVectorStore(coll_name, self.get_embeddings(), target=server.target,
                                 client_kwargs={"timeout": 20})
        try:
            yield store
        finally:
            store.close()
            _drop(client, coll_name)


class TableEmbeddings(Embeddings):
    """Fixed vectors for known texts (so tests can place documents exactly)."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, self.table[t])) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(map(float, self.table[text]))


@pytest.fixture
def store_factory(server, client):
    made: list[VecdbVectorStore] = []

    def make(name: str, embedding: Embeddings | None = None, **kw) -> VecdbVectorStore:
        store = VecdbVectorStore(name, embedding, target=server.target, **kw)
        made.append(store)
        return store
    yield make
    for s in made:
        s.close()
        _drop(client, s.collection_name)


def test_import_vecdb_client_stays_thin():
    code = ("import sys, vecdb_client, vecdb_client.integrations, vecdb_client.integrations._filters;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('langchain_core', 'langchain', 'llama_index', 'pydantic', 'torch'));"
            "print(bad); sys.exit(1 if bad else 0)")
    env = {"PYTHONPATH": ":".join(SRC_PATHS)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------ server-side encoder
DOCS = ["a cat naps on the couch", "interest rates rose again this quarter",
        "the kitten sleeps on a sofa", "central banks raised rates",
        "a dog chases the ball in the park"]
META = [{"lang": "en", "year": 2019, "topic": "pets"}, {"lang": "en", "year": 2024, "topic": "finance"},
        {"lang": "de", "year": 2021, "topic": "pets"}, {"lang": "de", "year": 2023, "topic": "finance"},
        {"lang": "en", "year": 2022, "topic": "pets"}]


def test_server_side_encoder_no_client_embeddings(store_factory, client, coll_name):
    store = store_factory(coll_name, encoder="minilm")  # created on the first write
    assert store.similarity_search("anything", k=3) == []  # no collection yet: empty store
    ids = store.add_texts(DOCS, META, ids=[f"d{i}" for i in range(5)])
    assert ids == [f"d{i}" for i in range(5)]
    cfg = client.describe_collection(coll_name).config
    assert cfg.encoder == "minilm" and cfg.dim == 384
    assert client.get(coll_name, ["d0"])[0].text == DOCS[0]  # page_content is the point text

    top = store.similarity_search("a sleeping kitty", k=2)
    assert {d.id for d in top} == {"d0", "d2"} and top[0].metadata["topic"] == "pets"
    scored = store.similarity_search_with_score("money and interest", k=5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    assert {d.id for d, _ in scored[:2]} == {"d1", "d3"}

    # filters, Mongo-style and native
    en = store.similarity_search("a sleeping kitty", k=5, filter={"lang": "en"})
    assert [d.id for d in en][:1] == ["d0"] and {d.id for d in en} == {"d0", "d1", "d4"}
    recent = store.similarity_search("pets", k=5, filter={"year": {"$gte": 2022}, "topic": "pets"})
    assert [d.id for d in recent] == ["d4"]
    native = store.similarity_search("pets", k=5, filter=F.must(F.match("lang", "de")))
    assert {d.id for d in native} == {"d2", "d3"}

    # MMR without a client-side query vector uses the server's scores
    mmr = store.max_marginal_relevance_search("a sleeping kitty", k=2, fetch_k=5, lambda_mult=0.5)
    assert len(mmr) == 2 and mmr[0].id in ("d0", "d2")

    rel = store.similarity_search_with_relevance_scores("a sleeping kitty", k=1)
    assert 0 < rel[0][1] <= 1
    store.delete(filter={"lang": "de"})
    assert {d.id for d in store.similarity_search("pets", k=5)} == {"d0", "d1", "d4"}


async def test_server_side_encoder_async(store_factory, coll_name):
    store = store_factory(coll_name, encoder="minilm")
    assert await store.asimilarity_search("x", k=2) == []
    ids = await store.aadd_documents([Document(page_content=t, metadata=m) for t, m in zip(DOCS, META)])
    assert len(set(ids)) == 5
    top = await store.asimilarity_search("a sleeping kitty", k=2, filter={"lang": {"$in": ["en", "de"]}})
    assert {d.page_content for d in top} == {DOCS[0], DOCS[2]}
    mmr = await store.amax_marginal_relevance_search("rates", k=2, fetch_k=4)
    assert len(mmr) == 2
    got = await store.aget_by_ids([ids[1], "missing", ids[1]])
    assert [d.page_content for d in got] == [DOCS[1]]
    await store.adelete([ids[1]])
    assert await store.aget_by_ids([ids[1]]) == []


# ------------------------------------------------------------------ filters
def test_filter_mapping():
    assert from_langchain(None) is None and from_langchain({}) is None
    native = {"must": [{"key": "lang", "match": "en"}]}
    assert from_langchain(native) is native
    assert from_langchain({"key": "lang", "any": ["en"]}) == {"key": "lang", "any": ["en"]}
    assert from_langchain({"lang": "en"}) == {"key": "lang", "match": "en"}
    assert from_langchain({"lang": "en", "year": {"$gte": 2020, "$lt": 2024}}) == {"must": [
        {"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020, "lt": 2024}}]}
    assert from_langchain({"score": 0.5}) == {"key": "score", "range": {"gte": 0.5, "lte": 0.5}}
    assert from_langchain({"lang": {"$ne": "en"}}) == {"must_not": [{"key": "lang", "match": "en"}]}
    assert from_langchain({"lang": {"$nin": ["en", "de"]}}) == {
        "must_not": [{"key": "lang", "any": ["en", "de"]}]}
    assert from_langchain({"$or": [{"lang": "en"}, {"year": {"$lt": 2000}}]}) == {
        "should": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"lt": 2000}}],
        "min_should": 1}
    assert from_langchain({"$not": {"tag": {"$exists": True}}}) == {
        "must_not": [{"key": "tag", "exists": True}]}
    assert from_langchain({"tag": None}) == {"key": "tag", "exists": False}
    for bad in ({"$where": "x"}, {"x": {"$regex": "a"}}, {"x": [1, 2]}):
        with pytest.raises(ValueError):
            from_langchain(bad)


ROWS = [{"lang": "en", "year": 2019, "score": 0.5, "tags": ["a", "b"]},
        {"lang": "de", "year": 2021, "score": 0.25},
        {"lang": "fr", "year": 2024, "score": 0.5, "tags": ["b"]},
        {"lang": "en", "year": 2022, "score": 1.0, "tag": None},
        {"year": 2020}]


@pytest.mark.parametrize("flt, expected", [
    ({"lang": "en"}, {0, 3}),
    ({"lang": {"$eq": "de"}}, {1}),
    ({"lang": {"$ne": "en"}}, {1, 2, 4}),
    ({"year": {"$gt": 2020, "$lte": 2022}}, {1, 3}),
    ({"score": 0.5}, {0, 2}),
    ({"lang": {"$in": ["de", "fr"]}}, {1, 2}),
    ({"lang": {"$nin": ["de", "fr"]}}, {0, 3, 4}),
    ({"tags": "b"}, {0, 2}),
    ({"lang": {"$exists": False}}, {4}),
    ({"$or": [{"lang": "fr"}, {"year": {"$lt": 2020}}]}, {0, 2}),
    ({"$and": [{"lang": "en"}, {"$not": {"year": 2019}}]}, {3}),
    ({"score": {"$in": [0.25, 1.0]}}, {1, 3}),
    ({"lang": {"$in": []}}, set()),
    (F.range("year", gte=2021), {1, 2, 3}),
])
def test_filters_against_server(store_factory, coll_name, flt, expected):
    table = {f"t{i}": [1.0, i + 1.0, 0.5] for i in range(len(ROWS))}
    table["q"] = [1.0, 0.0, 0.0]
    store = store_factory(coll_name, TableEmbeddings(table))
    store.add_texts(list(table)[:len(ROWS)], ROWS, ids=[str(i) for i in range(len(ROWS))])
    got = store.similarity_search("q", k=10, filter=flt)
    assert {int(d.id) for d in got} == expected


# ------------------------------------------------------------------ MMR
def test_mmr_select_matches_langchain():
    rng = np.random.default_rng(3)
    for _ in range(20):
        docs = rng.standard_normal((15, 8))
        q = rng.standard_normal(8)
        for lam in (0.0, 0.3, 0.5, 1.0):
            expect = maximal_marginal_relevance(q, docs.tolist(), lambda_mult=lam, k=5)
            unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
            sims = unit @ (q / np.linalg.norm(q))
            assert mmr_select(sims, docs, 5, lam) == expect


MMR_TABLE = {"near": [1.0, 0.05, 0.0], "near-copy": [1.0, 0.06, 0.0],
             "other": [0.8, -0.6, 0.0], "far": [0.0, 0.0, 1.0], "q": [1.0, 0.0, 0.0]}


def test_mmr_prefers_diversity(store_factory, coll_name):
    store = store_factory(coll_name, TableEmbeddings(MMR_TABLE))
    store.add_texts(["near", "near-copy", "other", "far"], ids=["n", "c", "o", "f"])
    assert [d.id for d in store.similarity_search("q", k=2)] == ["n", "c"]
    assert [d.id for d in store.max_marginal_relevance_search("q", k=2, fetch_k=4)] == ["n", "o"]
    by_vec = store.max_marginal_relevance_search_by_vector([1.0, 0.0, 0.0], k=2, fetch_k=4,
                                                           lambda_mult=1.0)
    assert [d.id for d in by_vec] == ["n", "c"]  # lambda 1: relevance only
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    assert [d.id for d in mmr.invoke("q")] == ["n", "o"]


async def test_mmr_async_and_retrievers(store_factory, coll_name):
    store = store_factory(coll_name, TableEmbeddings(MMR_TABLE))
    await store.aadd_texts(["near", "near-copy", "other", "far"], ids=["n", "c", "o", "f"],
                           metadatas=[{"g": 1}, {"g": 1}, {"g": 2}, {"g": 2}])
    assert [d.id for d in await store.amax_marginal_relevance_search("q", k=2, fetch_k=4)] == ["n", "o"]
    got = await store.amax_marginal_relevance_search_by_vector([1.0, 0.0, 0.0], k=2, filter={"g": 2})
    assert [d.id for d in got] == ["o", "f"]
    sim = store.as_retriever(search_kwargs={"k": 1, "filter": {"g": 2}})
    assert [d.id for d in await sim.ainvoke("q")] == ["o"]
    thr = store.as_retriever(search_type="similarity_score_threshold",
                             search_kwargs={"score_threshold": 0.9, "k": 4})
    assert {d.id for d in await thr.ainvoke("q")} == {"n", "c"}
    scored = await store.asimilarity_search_with_score_by_vector([0.0, 0.0, 1.0], k=1)
    assert scored[0][0].id == "f" and scored[0][1] == pytest.approx(1.0)


def test_from_texts_and_by_vector(server, client):
    store = VecdbVectorStore.from_texts(["near", "far"], TableEmbeddings(MMR_TABLE),
                                        metadatas=[{"k": "v"}, None], target=server.target,
                                        collection_kwargs={"index": "flat"})
    try:
        assert store.collection_name.startswith("langchain_")
        docs = store.similarity_search_by_vector([0.0, 0.1, 1.0], k=1)
        assert docs == [Document(id=docs[0].id, page_content="far", metadata={})]
        near = store.similarity_search_with_score_by_vector([1.0, 0.0, 0.0], k=1)[0]
        assert near[0].metadata == {"k": "v"} and near[1] > 0.99
        with pytest.raises(TypeError):
            store.similarity_search("q", k=1, bogus=1)
        with pytest.raises(ValueError):
            store.delete()
        # an existing collection without an encoder needs client-side embeddings
        bare = VecdbVectorStore(store.collection_name, target=server.target)
        with pytest.raises(ValueError, match="no server-side encoder"):
            bare.add_texts(["x"])
        bare.close()
    finally:
        store.close()
        _drop(client, store.collection_name)


def test_store_over_a_given_client_without_target(server, client, coll_name):
    """Given only a sync Client, async methods run it in a thread."""
    import asyncio
    with server.client() as c:
        store = VecdbVectorStore(coll_name, TableEmbeddings(MMR_TABLE), client=c)
        store.add_texts(["near", "far"], ids=["n", "f"])

        async def go():
            return await store.asimilarity_search("q", k=1)
        assert [d.id for d in asyncio.run(go())] == ["n"]
        store.close()  # does not close a client it was given
        assert c.count(coll_name) == 2
    _drop(client, coll_name)


# ------------------------------------------------------------------ keyword and hybrid modes
def test_keyword_and_hybrid_search_modes(store_factory, client, coll_name):
    """collection_kwargs full_text: search_mode "keyword" ranks by BM25 over the query
    text (the server's keyword search), "hybrid" fuses it with the dense search of the
    same text: RRF equal to a reference over the two lists, weighted (1, 0) = the dense
    order, (0, 1) = the keyword order; per call or on the store; sync and async."""
    pytest.importorskip("tantivy")
    texts = [f"pump part {w} manual" for w in ("alpha", "beta", "gamma", "delta", "zorvex")]
    table = {t: [1.0, 0.1 * i, 0.0] for i, t in enumerate(texts)}
    table["zorvex pump"] = [1.0, 0.0, 0.0]  # the dense order ranks the Zorvex text last
    store = store_factory(coll_name, TableEmbeddings(table),
                          collection_kwargs={"full_text": "english"})
    store.add_texts(texts, [{"i": i} for i in range(5)], ids=[f"d{i}" for i in range(5)])
    dense = [d.id for d in store.similarity_search("zorvex pump", k=5)]
    assert dense[-1] == "d4"
    kw = client.search(coll_name, keywords="zorvex pump", k=100)
    got = store.similarity_search_with_score("zorvex pump", k=5, search_mode="keyword")
    assert [(d.id, s) for d, s in got] == [(h.id, h.score) for h in kw[:5]]
    assert got[0][0].id == "d4" and got[0][0].page_content == texts[4]
    want = rrf([[h.id for h in client.search(coll_name, [1.0, 0.0, 0.0], k=100)],
                [h.id for h in kw]], (1.0, 1.0), 60.0)[:5]
    hy = store.similarity_search_with_score("zorvex pump", k=5, search_mode="hybrid")
    assert [(d.id, pytest.approx(s)) for d, s in hy] == [(i, pytest.approx(s)) for i, s in want]
    assert [d.id for d in store.similarity_search("zorvex pump", k=5, search_mode="hybrid",
                                                  fusion="weighted", weights=(1, 0))] == dense
    only_kw = store.similarity_search("zorvex pump", k=1, search_mode="hybrid",
                                      fusion="weighted", weights=(0, 1))
    assert [d.id for d in only_kw] == ["d4"]
    filtered = store.similarity_search("pump", k=5, search_mode="keyword", filter={"i": {"$lt": 2}})
    assert {d.id for d in filtered} == {"d0", "d1"}
    hstore = store_factory(coll_name, TableEmbeddings(table), search_mode="hybrid")
    assert [d.id for d in hstore.similarity_search("zorvex pump", k=5)] == [i for i, _ in want]
    rel = hstore.similarity_search_with_relevance_scores("zorvex pump", k=1)
    assert rel[0][1] == pytest.approx(want[0][1])
    by_vector = hstore.similarity_search_by_vector([1.0, 0.0, 0.0], k=5)  # no text: dense
    assert [d.id for d in by_vector] == dense
    with pytest.raises(ValueError, match="search_mode"):
        store_factory(coll_name, search_mode="sparse")
    with pytest.raises(ValueError, match="text query"):
        store.similarity_search_by_vector([1.0, 0.0, 0.0], k=2, search_mode="keyword")

    async def run():
        a = await store.asimilarity_search("zorvex pump", k=5, search_mode="hybrid")
        b = await store.asimilarity_search_with_score("zorvex", k=2, search_mode="keyword")
        return [d.id for d in a], [d.id for d, _ in b]
    assert asyncio.run(run()) == ([i for i, _ in want], ["d4"])
