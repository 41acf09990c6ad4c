"""LlamaIndex vector store over a real in-process server: add, query with metadata
filters, delete by source document, get/delete nodes, async, a VectorStoreIndex on top.
Embeddings are deterministic numpy vectors; nothing is downloaded."""
from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator,
                                                  MetadataFilter, MetadataFilters,
                                                  VectorStoreQuery, VectorStoreQueryMode)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from vecdb_client import NotFoundError
from vecdb_client.integrations._filters import from_llama_index
from vecdb_client.integrations.llama_index import VecdbVectorStore

DIM = 8
META = [
    {"author": "ann", "year": 2019, "score": 0.5, "lang": "en", "title": "Error budgets explained"},
    {"author": "bob", "year": 2021, "score": 0.25, "lang": "de", "title": "Budget planning"},
    {"author": "ann", "year": 2023, "score": 0.75, "lang": "en", "title": "On call rotations"},
    {"author": "cid", "year": 2024, "score": 1.0, "lang": "fr", "title": ""},
    {"author": "bob", "year": 2020, "score": 0.5, "title": "error handling in Go"},
    {"author": "dee", "year": 2022, "score": 0.125, "lang": "en", "title": "Budget error review"},
]
TAGS = [["sre", "ops"], ["finance"], ["sre"], [], ["go", "ops"], ["finance", "sre"]]


def embeddings(n: int = len(META), seed: int = 7) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_nodes() -> list[TextNode]:
    vecs = embeddings()
    nodes = []
    for i, meta in enumerate(META):
        node = TextNode(id_=f"n{i}", text=f"text of node {i}", metadata=dict(meta),
                        embedding=vecs[i].tolist())
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 3}")
        nodes.append(node)
    return nodes


@pytest.fixture
def store(server, client, coll_name):
    s = VecdbVectorStore(coll_name, target=server.target)
    yield s
    s.close()
    try:
        client.drop_collection(coll_name)
    except NotFoundError:
        pass


def query(store: VecdbVectorStore, filters=None, k: int = 10, **kw):
    q = VectorStoreQuery(query_embedding=embeddings()[0].tolist(), similarity_top_k=k,
                         filters=filters, **kw)
    return store.query(q)


def test_round_trip(store, client, coll_name):
    assert query(store).ids == []  # no collection yet: empty
    nodes = make_nodes()
    assert store.add(nodes) == [n.node_id for n in nodes]
    assert client.describe_collection(coll_name).config.dim == DIM
    res = query(store, k=3)
    assert res.ids[0] == "n0" and res.similarities[0] == pytest.approx(1.0, abs=1e-5)
    top = res.nodes[0]
    assert top.node_id == "n0" and top.get_content() == "text of node 0"
    assert top.metadata == META[0] and top.ref_doc_id == "doc0"
    assert client.get(coll_name, ["n0"])[0].text == "text of node 0"  # node text = point text

    # doc_ids / node_ids restrict the candidates
    assert set(query(store, doc_ids=["doc1"]).ids) == {"n1", "n4"}
    assert set(query(store, node_ids=["n2", "n3"]).ids) == {"n2", "n3"}

    # get_nodes / delete by source document / delete_nodes / clear
    assert [n.node_id for n in store.get_nodes(["n5", "zz", "n1"])] == ["n5", "n1"]
    by_filter = store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="author", value="bob")]))
    assert {n.node_id for n in by_filter} == {"n1", "n4"}
    store.delete("doc0")
    assert sorted(query(store).ids) == ["n1", "n2", "n4", "n5"]
    store.delete_nodes(["n1"], filters=MetadataFilters(filters=[MetadataFilter(key="year", value=1999)]))
    assert client.count(coll_name) == 4  # id AND filter: nothing matched both
    store.delete_nodes(["n1", "n2"])
    assert sorted(query(store).ids) == ["n4", "n5"]
    store.add(make_nodes()[:1])  # re-adding the same node id replaces it
    store.clear()
    assert client.count(coll_name) == 0 and client.describe_collection(coll_name).config.dim == DIM


F_ = MetadataFilter
OP = FilterOperator
FLAT_CASES = [
    [F_(key="author", value="ann")],
    [F_(key="author", value="ann", operator=OP.NE)],
    [F_(key="year", value=2021, operator=OP.GT)],
    [F_(key="year", value=2021, operator=OP.GTE)],
    [F_(key="year", value=2021, operator=OP.LT)],
    [F_(key="year", value=2021, operator=OP.LTE)],
    [F_(key="score", value=0.5)],
    [F_(key="score", value=0.3, operator=OP.LT)],
    [F_(key="lang", value=["de", "fr"], operator=OP.IN)],
    [F_(key="lang", value=["de", "fr"], operator=OP.NIN)],
    [F_(key="score", value=[0.25, 1.0], operator=OP.IN)],
    [F_(key="lang", value=None, operator=OP.IS_EMPTY)],
    [F_(key="title", value=None, operator=OP.IS_EMPTY)],
    [F_(key="author", value="ann"), F_(key="year", value=2020, operator=OP.GT)],
]


@pytest.mark.parametrize("condition", [FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT])
def test_filters_match_llama_index_semantics(store, condition):
    """Every flat filter gives the ids LlamaIndex's own in-memory filter function gives."""
    store.add(make_nodes())
    meta = {f"n{i}": m for i, m in enumerate(META)}
    for flt in FLAT_CASES:
        filters = MetadataFilters(filters=flt, condition=condition)
        oracle = build_metadata_filter_fn(lambda nid: meta[nid], filters)
        expected = {nid for nid in meta if oracle(nid)}
        assert set(query(store, filters).ids) == expected, (filters, from_llama_index(filters))


def test_array_text_and_nested_filters(server, client, coll_name):
    store = VecdbVectorStore(coll_name, target=server.target, flat_metadata=False)
    nodes = make_nodes()
    for node, tags in zip(nodes, TAGS):
        node.metadata["tags"] = tags
    store.add(nodes)

    def ids(*filters, condition=FilterCondition.AND):
        return set(query(store, MetadataFilters(filters=list(filters), condition=condition)).ids)
    assert ids(F_(key="tags", value="sre", operator=OP.CONTAINS)) == {"n0", "n2", "n5"}
    assert ids(F_(key="tags", value=["go", "finance"], operator=OP.ANY)) == {"n1", "n4", "n5"}
    assert ids(F_(key="tags", value=["sre", "ops"], operator=OP.ALL)) == {"n0"}
    assert ids(F_(key="tags", value=None, operator=OP.IS_EMPTY)) == {"n3"}
    # text_match is vecdb's word match (every word occurs, case-insensitive), not a substring
    assert ids(F_(key="title", value="error budgets", operator=OP.TEXT_MATCH_INSENSITIVE)) == {"n0"}
    assert ids(F_(key="title", value="Budget", operator=OP.TEXT_MATCH)) == {"n1", "n5"}
    assert ids(F_(key="title", value="budget error", operator=OP.TEXT_MATCH)) == {"n5"}
    nested = MetadataFilters(filters=[
        F_(key="lang", value="en"),
        MetadataFilters(filters=[F_(key="author", value="dee"), F_(key="year", value=2019)],
                        condition=FilterCondition.OR)])
    assert set(query(store, nested).ids) == {"n0", "n5"}
    assert from_llama_index(nested) == {"must": [
        {"key": "lang", "match": "en"},
        {"should": [{"key": "author", "match": "dee"}, {"key": "year", "match": 2019}],
         "min_should": 1}]}
    store.close()
    client.drop_collection(coll_name)


def test_mmr_query(store):
    vecs = embeddings()
    nodes = make_nodes()
    q = vecs[0]
    # n1 becomes a near-copy of the query's best match n0: MMR skips it for k=2
    nodes[1].embedding = (vecs[0] + 0.01 * vecs[1]).tolist()
    store.add(nodes)
    plain = store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=2))
    assert plain.ids == ["n0", "n1"]
    mmr = store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=2,
                                       mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3))
    assert mmr.ids[0] == "n0" and mmr.ids[1] != "n1" and len(mmr.nodes) == 2
    with pytest.raises(ValueError, match="not supported"):
        store.query(VectorStoreQuery(query_embedding=q.tolist(), mode=VectorStoreQueryMode.SPARSE))


async def test_async_round_trip(store, client, coll_name):
    nodes = make_nodes()
    assert await store.async_add(nodes) == [n.node_id for n in nodes]
    res = await store.aquery(VectorStoreQuery(
        query_embedding=embeddings()[2].tolist(), similarity_top_k=2,
        filters=MetadataFilters(filters=[F_(key="author", value="ann")])))
    assert res.ids == ["n2", "n0"] and res.nodes[0].metadata["title"] == "On call rotations"
    assert [n.node_id for n in await store.aget_nodes(["n3"])] == ["n3"]
    await store.adelete("doc1")
    await store.adelete_nodes(filters=MetadataFilters(filters=[F_(key="lang", value="fr")]))
    assert sorted(p.id for p in client.iter_points(coll_name)) == ["n0", "n2", "n5"]
    await store.aclear()
    assert client.count(coll_name) == 0


def test_vector_store_index_on_top(store):
    """The store behind LlamaIndex's own VectorStoreIndex and retriever."""
    embed = MockEmbedding(embed_dim=DIM)
    nodes = [TextNode(id_=f"m{i}", text=f"note {i}", metadata={"n": i}) for i in range(5)]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=3, filters=MetadataFilters(
        filters=[F_(key="n", value=2, operator=OP.GTE)]))
    got = retriever.retrieve("anything")
    assert sorted(r.node.node_id for r in got) == ["m2", "m3", "m4"]
    assert {r.node.get_content() for r in got} == {"note 2", "note 3", "note 4"}


def test_server_side_encoder(server, client, coll_name):
    store = VecdbVectorStore(coll_name, target=server.target, encoder="minilm")
    assert store.is_embedding_query is False
    texts = ["a cat naps on the couch", "interest rates rose again", "the kitten sleeps on a sofa"]
    store.add([TextNode(id_=f"e{i}", text=t, metadata={"i": i}) for i, t in enumerate(texts)])
    assert client.describe_collection(coll_name).config.encoder == "minilm"
    res = store.query(VectorStoreQuery(query_str="a sleeping kitty", similarity_top_k=2))
    assert set(res.ids) == {"e0", "e2"}
    res = store.query(VectorStoreQuery(query_str="a sleeping kitty", similarity_top_k=1,
                                       filters=MetadataFilters(filters=[F_(key="i", value=2)])))
    assert res.ids == ["e2"] and res.nodes[0].get_content() == texts[2]
    store.close()
    client.drop_collection(coll_name)


def test_text_search_and_hybrid_modes(server, client, coll_name):
    """collection_kwargs full_text: text_search ranks by BM25 over query_str; hybrid
    fuses it with the embedding (alpha 0 = the keyword order, alpha 1 = the dense order)."""
    pytest.importorskip("tantivy")
    s = VecdbVectorStore(coll_name, target=server.target, collection_kwargs={"full_text": "english"})
    try:
        nodes = make_nodes()
        nodes[4].text = "the Zorvex pump manual"
        s.add(nodes)
        q = VectorStoreQuery(query_str="zorvex", similarity_top_k=3,
                             mode=VectorStoreQueryMode.TEXT_SEARCH)
        assert s.query(q).ids == ["n4"]
        base = dict(query_embedding=embeddings()[0].tolist(), query_str="zorvex",
                    similarity_top_k=6, mode=VectorStoreQueryMode.HYBRID)
        dense = query(s, k=6).ids
        assert s.query(VectorStoreQuery(**base, alpha=0.0)).ids[0] == "n4"
        assert s.query(VectorStoreQuery(**base, alpha=1.0)).ids == dense
        got = s.query(VectorStoreQuery(**base))  # rrf: n4 (in both lists) first
        assert got.ids[0] == "n4" and set(got.ids) == set(dense)
        with pytest.raises(ValueError, match="query_str"):
            s.query(VectorStoreQuery(query_embedding=base["query_embedding"],
                                     mode=VectorStoreQueryMode.HYBRID))
    finally:
        s.close()
        client.drop_collection(coll_name)
