"""LangChain ``VectorStore`` over the vecdb SDK (``pip install 'vecdb-client[langchain]'``).

    from vecdb_client.integrations.langchain import VecdbVectorStore

    # server-side encoder: no client-side embeddings at all
    store = VecdbVectorStore("kb", target="127.0.0.1:50051", encoder="minilm")
    store.add_texts(["a cat naps on the couch"], metadatas=[{"lang": "en"}])
    store.similarity_search("kitten sleeping", k=3, filter={"lang": "en"})

    # any LangChain Embeddings: the collection is created on the first write
    store = VecdbVectorStore("kb2", embedding=my_embeddings, target="127.0.0.1:50051")

A document is one point: ``page_content`` is the point's text, ``metadata`` its
payload, ``Document.id`` its id (uuid4 strings when none is given). Scores are
the server's: cosine/ip similarity (higher is better), l2 squared distance
(lower is better). ``filter=`` takes a vecdb filter dict (``{"must": [...]}``,
``F.must(...)``) or a Mongo-style metadata filter (``{"year": {"$gte": 2020}}``,
``$and``/``$or``/``$not``, ``$eq $ne $gt $gte $lt $lte $in $nin $exists``).

Keyword and hybrid search (a collection created with ``full_text``, e.g.
``collection_kwargs={"full_text": "english"}``): ``search_mode="keyword"`` ranks by
BM25 over the query text, ``"hybrid"`` fuses that with the dense search of the same
text (``fusion`` "rrf" or "weighted", ``weights`` (dense, keywords)); set on the store
or per call (``similarity_search(q, search_mode="hybrid", fusion="weighted",
weights=(0.3, 1))``). Their scores are BM25 or fused scores (higher is better, not
in [0, 1]); relevance scores are those scores. MMR stays dense.

Async methods use :class:`vecdb_client.AsyncClient` (one per event loop when the
store was given ``target=``), not threads.
"""
from __future__ import annotations

import asyncio
import functools
import math
import uuid
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from ..aio import AsyncClient
from ..client import Client
from ..errors import NotFoundError
from ..models import Hit
from ._common import (CollectionState, Connection, cosine_to, last_wins, mmr_select, new_ids,
                      query_similarities, unique)
from ._filters import from_langchain

SEARCH_OPTIONS = frozenset({"exact", "nprobe", "ef_search", "timeout", "search_mode", "fusion",
                            "weights"})
SEARCH_MODES = ("dense", "keyword", "hybrid")
ID_CHUNK = 4096  # ids per get/delete call, well under the server's max_batch_points


class VecdbVectorStore(VectorStore):
    """A vecdb collection as a LangChain vector store.

    Args:
        collection_name: collection (or alias) to use; created on the first write
            when missing.
        embedding: LangChain ``Embeddings``; None = the collection's server-side
            encoder embeds texts and queries (give ``encoder=`` to create one).
        client / async_client / target / client_kwargs: how to reach the server:
            a :class:`Client`, an :class:`AsyncClient`, or ``"host:port"`` plus
            ``Client`` keyword arguments (api_key, tls, timeout, ...).
        metric, encoder, collection_kwargs: used only when creating the
            collection (``collection_kwargs`` go to ``create_collection``, e.g.
            ``{"index": "hnsw", "payload_indexes": {"lang": "keyword"}}``).
        relevance_score_fn: score -> [0, 1] relevance, for
            ``similarity_search_with_relevance_scores``; default by metric
            (cosine/ip: the similarity itself; l2: 1 - distance / sqrt 2).
        batch_size: texts embedded and upserted per call in ``add_texts``.
        search_mode: "dense" (default), "keyword" (BM25 over the query text) or
            "hybrid" (both, fused); the collection needs ``full_text`` for the last two.
        fusion, weights: hybrid defaults: "rrf" (default) or "weighted", and the
            (dense, keywords) weights (default equal).
    """

    def __init__(self, collection_name: str, embedding: Embeddings | None = None, *,
                 client: Client | None = None, async_client: AsyncClient | None = None,
                 target: str | None = None, client_kwargs: dict | None = None,
                 metric: str = "cosine", encoder: str | None = None,
                 collection_kwargs: dict | None = None,
                 relevance_score_fn: Callable[[float], float] | None = None,
                 batch_size: int = 256, search_mode: str = "dense", fusion: str | None = None,
                 weights: Sequence[float] | None = None):
        self.collection_name = collection_name
        self.embedding = embedding
        self._conn = Connection(client, async_client, target, client_kwargs)
        self._state = CollectionState(collection_name, metric, encoder, collection_kwargs)
        self._relevance_score_fn = relevance_score_fn
        self.batch_size = batch_size
        self.search_mode = self._mode(search_mode)
        self.fusion, self.weights = fusion, weights

    # ------------------------------------------------------------ plumbing
    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    @property
    def client(self) -> Client:
        return self._conn.sync

    def close(self) -> None:
        """Close the connection this store opened (a client passed in stays open)."""
        self._conn.close()

    def _check_mode(self, encoder: str | None) -> None:
        if self.embedding is None and not encoder:
            raise ValueError(f"collection {self.collection_name!r} has no server-side encoder; "
                             "give the store an embedding")

    def _payloads(self, metadatas: list[dict] | None, n: int) -> list[dict | None]:
        if metadatas is None:
            return [None] * n
        if len(metadatas) != n:
            raise ValueError(f"got {len(metadatas)} metadatas for {n} texts")
        return [dict(m) if m else None for m in metadatas]

    @staticmethod
    def _doc(hit: Any) -> Document:
        return Document(id=hit.id, page_content=hit.text or "", metadata=hit.payload or {})

    @staticmethod
    def _mode(mode: str) -> str:
        if mode not in SEARCH_MODES:
            raise ValueError(f"search_mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        return mode

    def _search_args(self, k: int, filter: dict | None, kwargs: dict) -> dict:
        unknown = set(kwargs) - SEARCH_OPTIONS
        if unknown:
            raise TypeError(f"unexpected search arguments: {sorted(unknown)}")
        args = dict(k=k, filter=from_langchain(filter), **kwargs)
        mode = self._mode(args.pop("search_mode", self.search_mode))
        fusion, weights = args.pop("fusion", self.fusion), args.pop("weights", self.weights)
        if mode == "hybrid":
            args.update(fusion=fusion, weights=weights)
        return dict(args, search_mode=mode)

    def _mmr_args(self, k: int, fetch_k: int, filter: dict | None, kwargs: dict) -> dict:
        """MMR re-ranks dense candidates: dense search whatever the store's mode."""
        return self._search_args(max(fetch_k, k), filter, dict(kwargs, search_mode="dense"))

    @staticmethod
    def _keyword_args(query: str | None, args: dict) -> tuple[dict, str]:
        """``args`` without search_mode, plus the keywords its mode asks for; the mode."""
        args = dict(args)
        mode = args.pop("search_mode", "dense")
        if mode != "dense":
            if not query:
                raise ValueError(f"search_mode {mode!r} needs a text query (the keywords)")
            args["keywords"] = query
        return args, mode

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self._relevance_score_fn is not None:
            return self._relevance_score_fn
        cfg = self._state.config
        if cfg is None and (self._conn.target is not None or self._conn._client is not None):
            try:
                cfg = self._state.config = self._conn.sync.describe_collection(
                    self.collection_name).config
            except NotFoundError:
                pass
        metric = cfg.metric if cfg else self._state.metric
        if self.search_mode != "dense":  # BM25 or fused scores: higher is better
            return lambda s: s
        if metric == "l2":
            return lambda d: 1.0 - math.sqrt(max(d, 0.0)) / math.sqrt(2)
        return lambda s: s

    async def _in_thread(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(fn, *args, **kwargs))

    # ------------------------------------------------------------ writes
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Upsert texts (re-adding an id replaces it). Returns the ids, generated
        uuid4 strings where ``ids`` is None or holds None."""
        texts = list(texts)
        all_ids = new_ids(ids, len(texts))
        payloads = self._payloads(metadatas, len(texts))
        keep = last_wins(all_ids)
        c = self._conn.sync
        for a in range(0, len(keep), self.batch_size):
            rows = keep[a:a + self.batch_size]
            chunk = [texts[i] for i in rows]
            vectors = self.embedding.embed_documents(chunk) if self.embedding else None
            cfg = self._state.ensure(c, len(vectors[0]) if vectors else None)
            self._check_mode(cfg.encoder)
            c.upsert(self.collection_name, [all_ids[i] for i in rows], vectors,
                     payloads=[payloads[i] for i in rows], texts=chunk)
        return all_ids

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        if not self._conn.has_async:
            return await self._in_thread(self.add_texts, texts, metadatas, ids=ids, **kwargs)
        texts = list(texts)
        all_ids = new_ids(ids, len(texts))
        payloads = self._payloads(metadatas, len(texts))
        keep = last_wins(all_ids)
        c = self._conn.aclient()
        for a in range(0, len(keep), self.batch_size):
            rows = keep[a:a + self.batch_size]
            chunk = [texts[i] for i in rows]
            vectors = (await self.embedding.aembed_documents(chunk)) if self.embedding else None
            cfg = await self._state.aensure(c, len(vectors[0]) if vectors else None)
            self._check_mode(cfg.encoder)
            await c.upsert(self.collection_name, [all_ids[i] for i in rows], vectors,
                           payloads=[payloads[i] for i in rows], texts=chunk)
        return all_ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert documents; ``ids=`` wins over ``Document.id``."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents],
                              [d.metadata for d in documents], ids=ids, **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return await self.aadd_texts([d.page_content for d in documents],
                                     [d.metadata for d in documents], ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, *, filter: dict | None = None,
               **kwargs: Any) -> bool:
        """Delete by ids (missing ones are fine) and/or every point matching ``filter``."""
        if ids is None and filter is None:
            raise ValueError("delete needs ids or filter= (vecdb does not delete everything "
                             "implicitly; drop the collection instead)")
        c = self._conn.sync
        try:
            ids = unique(ids or [])
            for a in range(0, len(ids), ID_CHUNK):
                c.delete(self.collection_name, ids[a:a + ID_CHUNK])
            if filter is not None:
                c.delete(self.collection_name, filter=from_langchain(filter))
        except NotFoundError:  # no collection yet: nothing to delete
            pass
        return True

    async def adelete(self, ids: list[str] | None = None, *, filter: dict | None = None,
                      **kwargs: Any) -> bool:
        if not self._conn.has_async:
            return await self._in_thread(self.delete, ids, filter=filter, **kwargs)
        if ids is None and filter is None:
            raise ValueError("delete needs ids or filter=")
        c = self._conn.aclient()
        try:
            ids = unique(ids or [])
            for a in range(0, len(ids), ID_CHUNK):
                await c.delete(self.collection_name, ids[a:a + ID_CHUNK])
            if filter is not None:
                await c.delete(self.collection_name, filter=from_langchain(filter))
        except NotFoundError:
            pass
        return True

    # ------------------------------------------------------------ reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in request order; missing ids are skipped."""
        ids = unique(ids)
        out: list[Document] = []
        try:
            for a in range(0, len(ids), ID_CHUNK):
                out += map(self._doc, self._conn.sync.get(self.collection_name, ids[a:a + ID_CHUNK]))
        except NotFoundError:
            return []
        return out

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        if not self._conn.has_async:
            return await self._in_thread(self.get_by_ids, ids)
        ids = unique(ids)
        out: list[Document] = []
        c = self._conn.aclient()
        try:
            for a in range(0, len(ids), ID_CHUNK):
                out += map(self._doc, await c.get(self.collection_name, ids[a:a + ID_CHUNK]))
        except NotFoundError:
            return []
        return out

    def _hits(self, query: str | None, vector: Sequence[float] | None, args: dict,
              with_vectors: bool = False) -> list[Hit]:
        c = self._conn.sync
        args, mode = self._keyword_args(query, args)
        try:
            if mode == "keyword":
                return c.search(self.collection_name, with_vectors=with_vectors, **args)
            if vector is None and self.embedding is not None:
                vector = self.embedding.embed_query(query)
            if vector is not None:
                return c.search(self.collection_name, vector=vector, with_vectors=with_vectors,
                                **args)
            return c.search(self.collection_name, text=query, with_vectors=with_vectors, **args)
        except NotFoundError:  # no collection yet: empty store
            return []

    async def _ahits(self, query: str | None, vector: Sequence[float] | None, args: dict,
                     with_vectors: bool = False) -> list[Hit]:
        c = self._conn.aclient()
        args, mode = self._keyword_args(query, args)
        try:
            if mode == "keyword":
                return await c.search(self.collection_name, with_vectors=with_vectors, **args)
            if vector is None and self.embedding is not None:
                vector = await self.embedding.aembed_query(query)
            if vector is not None:
                return await c.search(self.collection_name, vector=vector,
                                      with_vectors=with_vectors, **args)
            return await c.search(self.collection_name, text=query, with_vectors=with_vectors,
                                  **args)
        except NotFoundError:
            return []

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, server score) pairs, best first. Extra keywords: exact, nprobe,
        ef_search, timeout; search_mode, fusion, weights (keyword and hybrid search)."""
        hits = self._hits(query, None, self._search_args(k, filter, kwargs))
        return [(self._doc(h), h.score) for h in hits]

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            filter: dict | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        if not self._conn.has_async:
            return await self._in_thread(self.similarity_search_with_score, query, k,
                                         filter, **kwargs)
        hits = await self._ahits(query, None, self._search_args(k, filter, kwargs))
        return [(self._doc(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                                 **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter,
                                                                       **kwargs)]

    def similarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict | None = None,
            **kwargs: Any) -> list[tuple[Document, float]]:
        kwargs.setdefault("search_mode", "dense")  # the store's mode needs a text query
        hits = self._hits(None, embedding, self._search_args(k, filter, kwargs))
        return [(self._doc(h), h.score) for h in hits]

    async def asimilarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict | None = None,
            **kwargs: Any) -> list[tuple[Document, float]]:
        if not self._conn.has_async:
            return await self._in_thread(self.similarity_search_with_score_by_vector,
                                         embedding, k, filter, **kwargs)
        kwargs.setdefault("search_mode", "dense")
        hits = await self._ahits(None, embedding, self._search_args(k, filter, kwargs))
        return [(self._doc(h), h.score) for h in hits]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: dict | None = None, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(
            embedding, k, filter, **kwargs)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                           filter: dict | None = None,
                                           **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score_by_vector(
            embedding, k, filter, **kwargs)]

    # ------------------------------------------------------------ MMR
    def _mmr(self, hits: list[Hit], query_vector: Sequence[float] | None, k: int,
             lambda_mult: float) -> list[Document]:
        if not hits:
            return []
        vecs = np.stack([h.vector for h in hits])
        if query_vector is not None:
            sims = cosine_to(query_vector, vecs)
        else:  # server-side encoder: the query vector never reaches the client
            metric = self._state.config.metric if self._state.config else self._state.metric
            sims = query_similarities(metric, [h.score for h in hits])
        return [self._doc(hits[i]) for i in mmr_select(sims, vecs, k, lambda_mult)]

    def max_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20,
            lambda_mult: float = 0.5, filter: dict | None = None,
            **kwargs: Any) -> list[Document]:
        """Fetch ``fetch_k`` nearest points with their vectors, keep ``k`` by maximal
        marginal relevance (``lambda_mult`` 1 = relevance only, 0 = diversity only)."""
        hits = self._hits(None, embedding, self._mmr_args(k, fetch_k, filter, kwargs),
                          with_vectors=True)
        return self._mmr(hits, embedding, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20,
            lambda_mult: float = 0.5, filter: dict | None = None,
            **kwargs: Any) -> list[Document]:
        if not self._conn.has_async:
            return await self._in_thread(self.max_marginal_relevance_search_by_vector,
                                         embedding, k, fetch_k, lambda_mult, filter, **kwargs)
        hits = await self._ahits(None, embedding,
                                 self._mmr_args(k, fetch_k, filter, kwargs),
                                 with_vectors=True)
        return self._mmr(hits, embedding, k, lambda_mult)

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: dict | None = None,
                                      **kwargs: Any) -> list[Document]:
        """MMR by text: with an embedding the query is embedded here; with a server-side
        encoder the server's scores stand in for the query similarities."""
        if self.embedding is not None:
            return self.max_marginal_relevance_search_by_vector(
                self.embedding.embed_query(query), k, fetch_k, lambda_mult, filter, **kwargs)
        if self._state.config is None:
            self._select_relevance_score_fn()  # learns the metric when the collection exists
        hits = self._hits(query, None, self._mmr_args(k, fetch_k, filter, kwargs),
                          with_vectors=True)
        return self._mmr(hits, None, k, lambda_mult)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5,
                                             filter: dict | None = None,
                                             **kwargs: Any) -> list[Document]:
        if not self._conn.has_async:
            return await self._in_thread(self.max_marginal_relevance_search, query, k,
                                         fetch_k, lambda_mult, filter, **kwargs)
        if self.embedding is not None:
            return await self.amax_marginal_relevance_search_by_vector(
                await self.embedding.aembed_query(query), k, fetch_k, lambda_mult, filter,
                **kwargs)
        c = self._conn.aclient()
        if self._state.config is None:
            try:
                self._state.config = (await c.describe_collection(self.collection_name)).config
            except NotFoundError:
                return []
        hits = await self._ahits(query, None,
                                 self._mmr_args(k, fetch_k, filter, kwargs),
                                 with_vectors=True)
        return self._mmr(hits, None, k, lambda_mult)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   collection_name: str | None = None, **kwargs: Any) -> "VecdbVectorStore":
        """A store over ``collection_name`` (default: a new ``langchain_<hex>`` name)
        holding these texts. Other keywords go to the constructor (target=, client=,
        encoder=, metric=, ...)."""
        store = cls(collection_name or f"langchain_{uuid.uuid4().hex[:12]}", embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                          metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                          collection_name: str | None = None,
                          **kwargs: Any) -> "VecdbVectorStore":
        store = cls(collection_name or f"langchain_{uuid.uuid4().hex[:12]}", embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store


__all__ = ["VecdbVectorStore"]
