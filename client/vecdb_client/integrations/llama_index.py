"""LlamaIndex vector store over the vecdb SDK (``pip install 'vecdb-client[llamaindex]'``).

    from vecdb_client.integrations.llama_index import VecdbVectorStore
    from llama_index.core.vector_stores import VectorStoreQuery

    store = VecdbVectorStore("nodes", target="127.0.0.1:50051")
    store.add(nodes)                      # nodes with embeddings; collection created lazily
    res = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=5,
                                       filters=MetadataFilters(filters=[...])))
    store.delete(ref_doc_id)              # every node of that source document

A node is one point: its id is ``node_id``, its text the point's text, and the
payload holds the node's metadata plus LlamaIndex's serialized node
(``_node_content``, ``_node_type``, ``doc_id``/``ref_doc_id``/``document_id``), so
``query`` and ``get_nodes`` return full nodes. With ``encoder=`` (e.g. "minilm")
nodes may come without embeddings (the server embeds their text) and queries
may carry only ``query_str``. ``MetadataFilters`` map to vecdb filters
(``==  !=  >  >=  <  <=  in  nin  any  all  contains  is_empty  text_match``, and/or/not,
nested). Similarities: cosine/ip score; l2 as 1 / (1 + squared distance).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, MetadataFilters,
                                                  VectorStoreQuery, VectorStoreQueryMode,
                                                  VectorStoreQueryResult)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ..aio import AsyncClient
from ..client import Client
from ..errors import NotFoundError
from ..models import Hit
from ._common import (CollectionState, Connection, cosine_to, mmr_select, query_similarities,
                      unique)
from ._filters import from_llama_index

ID_CHUNK = 4096
# keyword (BM25) and hybrid search: collections created with full_text
_KEYWORD_MODES = (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH)
# Matches every point (a key is either present or not): delete-all keeps the collection.
MATCH_ALL = {"should": [{"key": "_node_type", "exists": True},
                        {"key": "_node_type", "exists": False}], "min_should": 1}


class VecdbVectorStore(BasePydanticVectorStore):
    """A vecdb collection as a LlamaIndex vector store.

    Args:
        collection_name: collection (or alias); created on the first ``add`` when
            missing, with the first node's embedding size (or ``encoder``'s).
        client / async_client / target / client_kwargs: how to reach the server
            (a :class:`vecdb_client.Client`, an :class:`AsyncClient`, or
            ``"host:port"`` plus Client keyword arguments).
        metric, encoder, collection_kwargs: used only when creating the collection.
        batch_size: nodes per upsert call.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str
    metric: str = "cosine"
    encoder: Optional[str] = None
    collection_kwargs: dict = Field(default_factory=dict)
    batch_size: int = 256

    _conn: Connection = PrivateAttr()
    _state: CollectionState = PrivateAttr()

    def __init__(self, collection_name: str, *, client: Client | None = None,
                 async_client: AsyncClient | None = None, target: str | None = None,
                 client_kwargs: dict | None = None, metric: str = "cosine",
                 encoder: str | None = None, collection_kwargs: dict | None = None,
                 batch_size: int = 256, **kwargs: Any):
        kwargs.setdefault("is_embedding_query", encoder is None)
        super().__init__(collection_name=collection_name, metric=metric, encoder=encoder,
                         collection_kwargs=dict(collection_kwargs or {}),
                         batch_size=batch_size, **kwargs)
        self._conn = Connection(client, async_client, target, client_kwargs)
        self._state = CollectionState(collection_name, metric, encoder, collection_kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "VecdbVectorStore"

    @property
    def client(self) -> Client:
        return self._conn.sync

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------ conversions
    def _rows(self, nodes: Sequence[BaseNode]) -> tuple[list[str], Any, list[dict], list[str]]:
        ids = [n.node_id for n in nodes]
        embs = [n.embedding for n in nodes]
        if all(e is None for e in embs):
            vectors = None  # the collection's encoder embeds the texts
        elif any(e is None for e in embs):
            raise ValueError("either every node has an embedding or none has (server-side "
                             "encoder)")
        else:
            vectors = np.asarray(embs, dtype=np.float32)
        payloads = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata)
                    for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        return ids, vectors, payloads, texts

    @staticmethod
    def _node(pid: str, payload: dict | None, text: str | None) -> BaseNode:
        payload = payload or {}
        if "_node_content" in payload:
            node = metadata_dict_to_node(payload, text=text)
        else:  # a point written without LlamaIndex
            node = TextNode(id_=pid, text=text or "", metadata=payload)
        return node

    def _similarity(self, score: float) -> float:
        metric = self._state.config.metric if self._state.config else self.metric
        return 1.0 / (1.0 + max(score, 0.0)) if metric == "l2" else float(score)

    def _query_filter(self, query: VectorStoreQuery) -> dict | None:
        parts = []
        flt = from_llama_index(query.filters)
        if flt is not None:
            parts.append(flt)
        if query.doc_ids:
            parts.append({"key": "doc_id", "any": list(query.doc_ids)})
        if query.node_ids:
            parts.append({"has_id": list(query.node_ids)})
        return None if not parts else parts[0] if len(parts) == 1 else {"must": parts}

    def _search_args(self, query: VectorStoreQuery, kwargs: dict) -> tuple[dict, bool]:
        mode = query.mode
        if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR) + _KEYWORD_MODES:
            raise ValueError(f"query mode {mode.value!r} is not supported (default, mmr, "
                             "hybrid, text_search)")
        mmr = mode == VectorStoreQueryMode.MMR
        k = query.similarity_top_k
        if mmr:
            k = kwargs.get("mmr_prefetch_k") or k * int(kwargs.get("mmr_prefetch_factor", 4))
        args: dict = dict(k=k, filter=self._query_filter(query), with_vectors=mmr)
        if mode in _KEYWORD_MODES:  # a collection created with full_text (collection_kwargs)
            if not query.query_str:
                raise ValueError(f"query mode {mode.value!r} needs query_str (the keywords)")
            args["keywords"] = query.query_str
            if mode == VectorStoreQueryMode.TEXT_SEARCH:
                return args, False
            if query.alpha is not None:  # LlamaIndex: 1 = dense only, 0 = keywords only
                args.update(fusion="weighted", weights=[query.alpha, 1 - query.alpha])
        if query.query_embedding is not None:
            args["vector"] = query.query_embedding
        elif query.query_str:
            args["text"] = query.query_str  # server-side encoder
        else:
            raise ValueError("the query needs query_embedding (or query_str with a "
                             "server-side encoder)")
        return args, mmr

    def _result(self, query: VectorStoreQuery, hits: list[Hit], mmr: bool,
                kwargs: dict) -> VectorStoreQueryResult:
        if mmr and hits:
            vecs = np.stack([h.vector for h in hits])
            sims = (cosine_to(query.query_embedding, vecs) if query.query_embedding is not None
                    else query_similarities(self._state.config.metric if self._state.config
                                            else self.metric, [h.score for h in hits]))
            lam = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get(
                "mmr_threshold", 0.5)
            hits = [hits[i] for i in mmr_select(sims, vecs, query.similarity_top_k, lam)]
        fused = query.mode in _KEYWORD_MODES  # BM25 or fused scores: higher is better
        return VectorStoreQueryResult(
            nodes=[self._node(h.id, h.payload, h.text) for h in hits],
            similarities=[float(h.score) if fused else self._similarity(h.score) for h in hits],
            ids=[h.id for h in hits])

    @staticmethod
    def _nodes_filters(node_ids: Optional[List[str]], filters: Optional[MetadataFilters]
                       ) -> list[dict]:
        """The filters selecting these nodes: one per ID_CHUNK ids (the server caps a
        has_id list), [] when neither ids nor filters are given."""
        flt = from_llama_index(filters)
        if node_ids is None:
            return [] if flt is None else [flt]
        ids = unique(node_ids)
        chunks = [{"has_id": ids[a:a + ID_CHUNK]} for a in range(0, len(ids), ID_CHUNK)]
        return chunks if flt is None else [{"must": [c, flt]} for c in chunks]

    # ------------------------------------------------------------ sync
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert nodes (same node_id = replaced). Returns their ids."""
        c = self._conn.sync
        for a in range(0, len(nodes), self.batch_size):
            ids, vectors, payloads, texts = self._rows(nodes[a:a + self.batch_size])
            self._state.ensure(c, None if vectors is None else vectors.shape[1])
            c.upsert(self.collection_name, ids, vectors, payloads=payloads, texts=texts)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose source document is ``ref_doc_id``."""
        try:
            self._conn.sync.delete(self.collection_name,
                                   filter={"key": "doc_id", "match": ref_doc_id})
        except NotFoundError:
            pass

    def delete_nodes(self, node_ids: Optional[List[str]] = None,
                     filters: Optional[MetadataFilters] = None, **delete_kwargs: Any) -> None:
        """Delete nodes by id and/or filters (both given: those matching both)."""
        if node_ids is not None and not unique(node_ids):
            return None
        flts = self._nodes_filters(node_ids, filters)
        if not flts:
            raise ValueError("delete_nodes needs node_ids or filters (clear() deletes all)")
        try:
            for flt in flts:
                self._conn.sync.delete(self.collection_name, filter=flt)
        except NotFoundError:
            pass

    def clear(self) -> None:
        """Delete every node; the collection and its settings stay."""
        try:
            self._conn.sync.delete(self.collection_name, filter=MATCH_ALL)
        except NotFoundError:
            pass

    def get_nodes(self, node_ids: Optional[List[str]] = None,
                  filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """Nodes by id (request order) and/or matching filters; neither: every node."""
        if node_ids is not None and not unique(node_ids):
            return []
        c = self._conn.sync
        try:
            if node_ids is not None and filters is None:
                ids = unique(node_ids)
                pts = [p for a in range(0, len(ids), ID_CHUNK)
                       for p in c.get(self.collection_name, ids[a:a + ID_CHUNK])]
            else:
                pts = [p for flt in self._nodes_filters(node_ids, filters) or [None]
                       for p in c.iter_points(self.collection_name, filter=flt)]
        except NotFoundError:
            return []
        return [self._node(p.id, p.payload, p.text) for p in pts]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Nearest nodes to ``query_embedding`` (or ``query_str`` with a server-side
        encoder), filtered by ``filters``, ``doc_ids`` and ``node_ids``; mode default or mmr;
        on a collection created with ``collection_kwargs={"full_text": ...}`` also
        text_search (BM25 over ``query_str``) and hybrid (``query_str`` as the keywords,
        fused by RRF, or weighted (alpha, 1 - alpha) when ``alpha`` is set)."""
        args, mmr = self._search_args(query, kwargs)
        c = self._conn.sync
        if mmr and self._state.config is None and "text" in args:
            try:
                self._state.config = c.describe_collection(self.collection_name).config
            except NotFoundError:
                pass
        try:
            hits = c.search(self.collection_name, **args)
        except NotFoundError:
            hits = []
        return self._result(query, hits, mmr, kwargs)

    # ------------------------------------------------------------ async
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        if not self._conn.has_async:
            return self.add(nodes, **kwargs)
        c = self._conn.aclient()
        for a in range(0, len(nodes), self.batch_size):
            ids, vectors, payloads, texts = self._rows(nodes[a:a + self.batch_size])
            await self._state.aensure(c, None if vectors is None else vectors.shape[1])
            await c.upsert(self.collection_name, ids, vectors, payloads=payloads, texts=texts)
        return [n.node_id for n in nodes]

    async def _adelete_filter(self, flt: dict) -> None:
        try:
            await self._conn.aclient().delete(self.collection_name, filter=flt)
        except NotFoundError:
            pass

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        if not self._conn.has_async:
            return self.delete(ref_doc_id, **delete_kwargs)
        await self._adelete_filter({"key": "doc_id", "match": ref_doc_id})

    async def adelete_nodes(self, node_ids: Optional[List[str]] = None,
                            filters: Optional[MetadataFilters] = None,
                            **delete_kwargs: Any) -> None:
        if not self._conn.has_async:
            return self.delete_nodes(node_ids, filters, **delete_kwargs)
        if node_ids is not None and not unique(node_ids):
            return None
        flts = self._nodes_filters(node_ids, filters)
        if not flts:
            raise ValueError("delete_nodes needs node_ids or filters (clear() deletes all)")
        for flt in flts:
            await self._adelete_filter(flt)

    async def aclear(self) -> None:
        if not self._conn.has_async:
            return self.clear()
        await self._adelete_filter(MATCH_ALL)

    async def aget_nodes(self, node_ids: Optional[List[str]] = None,
                         filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        if not self._conn.has_async:
            return self.get_nodes(node_ids, filters)
        if node_ids is not None and not unique(node_ids):
            return []
        c = self._conn.aclient()
        try:
            if node_ids is not None and filters is None:
                ids = unique(node_ids)
                pts = [p for a in range(0, len(ids), ID_CHUNK)
                       for p in await c.get(self.collection_name, ids[a:a + ID_CHUNK])]
            else:
                pts = [p for flt in self._nodes_filters(node_ids, filters) or [None]
                       async for p in c.iter_points(self.collection_name, filter=flt)]
        except NotFoundError:
            return []
        return [self._node(p.id, p.payload, p.text) for p in pts]

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if not self._conn.has_async:
            return self.query(query, **kwargs)
        args, mmr = self._search_args(query, kwargs)
        c = self._conn.aclient()
        if mmr and self._state.config is None and "text" in args:
            try:
                self._state.config = (await c.describe_collection(self.collection_name)).config
            except NotFoundError:
                pass
        try:
            hits = await c.search(self.collection_name, **args)
        except NotFoundError:
            hits = []
        return self._result(query, hits, mmr, kwargs)


__all__ = ["VecdbVectorStore"]
