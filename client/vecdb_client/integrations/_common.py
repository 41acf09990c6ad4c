"""Shared plumbing of the framework integrations: connections, collection creation, MMR.

No framework imports here (see the package docstring).
"""
from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Sequence

import numpy as np

from ..aio import AsyncClient
from ..client import Client
from ..errors import AlreadyExistsError, NotFoundError
from ..models import CollectionConfig


class Connection:
    """The clients a store talks through.

    ``client``: a :class:`Client` (made from ``target`` when not given).
    ``async_client``: an :class:`AsyncClient`; when not given and ``target`` is
    known, one is made per event loop (a grpc.aio channel belongs to the loop
    that created it) and dropped once that loop is closed. Without either, the
    async methods run the sync ones in a thread.
    """

    def __init__(self, client: Client | None = None, async_client: AsyncClient | None = None,
                 target: str | None = None, client_kwargs: dict | None = None):
        if client is None and target is None and async_client is None:
            raise ValueError("pass client=, async_client= or target= (e.g. '127.0.0.1:50051')")
        self.target = target
        self.client_kwargs = dict(client_kwargs or {})
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        self._per_loop: dict[int, tuple[asyncio.AbstractEventLoop, AsyncClient]] = {}
        self._lock = threading.Lock()

    @property
    def sync(self) -> Client:
        if self._client is None:
            if self.target is None:
                raise ValueError("this store has only an async client: use the async methods "
                                 "or pass client= / target=")
            with self._lock:
                if self._client is None:
                    self._client = Client(self.target, **self.client_kwargs)
        return self._client

    @property
    def has_async(self) -> bool:
        return self._async_client is not None or self.target is not None

    def aclient(self) -> AsyncClient:
        """The AsyncClient for the running loop (call from a coroutine)."""
        if self._async_client is not None:
            return self._async_client
        if self.target is None:
            raise ValueError("no async client: pass async_client= or target=")
        loop = asyncio.get_running_loop()
        with self._lock:
            for key, (lp, _) in list(self._per_loop.items()):
                if lp.is_closed():  # its channel closes when the client is collected
                    del self._per_loop[key]
            entry = self._per_loop.get(id(loop))
            if entry is None or entry[0] is not loop:
                entry = (loop, AsyncClient(self.target, **self.client_kwargs))
                self._per_loop[id(loop)] = entry
            return entry[1]

    def close(self) -> None:
        """Close the sync client if this object made it (async clients close with
        their loops; ``aclose`` closes the running loop's one now)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._per_loop.pop(id(loop), None)
        if entry is not None:
            await entry[1].close()


class CollectionState:
    """Creates the collection on first write when it does not exist: with ``dim``
    from the first vectors (client-side embeddings), or from ``encoder``."""

    def __init__(self, name: str, metric: str = "cosine", encoder: str | None = None,
                 create_kwargs: dict | None = None):
        self.name = name
        self.metric = metric
        self.encoder = encoder
        self.create_kwargs = dict(create_kwargs or {})
        self.config: CollectionConfig | None = None

    def _create_args(self, dim: int | None) -> dict:
        if dim is None and self.encoder is None:
            raise ValueError(f"collection {self.name!r} does not exist; give the store "
                             "an embedding or encoder= to create it")
        return dict(dim=None if self.encoder else dim, metric=self.metric,
                    encoder=self.encoder, **self.create_kwargs)

    def ensure(self, client: Client, dim: int | None) -> CollectionConfig:
        if self.config is None:
            try:
                self.config = client.describe_collection(self.name).config
            except NotFoundError:
                try:
                    client.create_collection(self.name, **self._create_args(dim))
                except AlreadyExistsError:
                    pass
                self.config = client.describe_collection(self.name).config
        return self.config

    async def aensure(self, client: AsyncClient, dim: int | None) -> CollectionConfig:
        if self.config is None:
            try:
                self.config = (await client.describe_collection(self.name)).config
            except NotFoundError:
                try:
                    await client.create_collection(self.name, **self._create_args(dim))
                except AlreadyExistsError:
                    pass
                self.config = (await client.describe_collection(self.name)).config
        return self.config


def new_ids(ids: Sequence[str | None] | None, n: int) -> list[str]:
    """The given ids with None/"" replaced by uuid4 strings (all of them when ids is None)."""
    if ids is None:
        return [str(uuid.uuid4()) for _ in range(n)]
    ids = list(ids)
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} texts")
    return [str(uuid.uuid4()) if not i else str(i) for i in ids]


def last_wins(ids: Sequence[str]) -> list[int]:
    """Positions to upsert so that a repeated id keeps its last value (the server
    refuses duplicate ids within one batch)."""
    last = {pid: i for i, pid in enumerate(ids)}
    return sorted(last.values()) if len(last) != len(ids) else list(range(len(ids)))


def unique(ids: Sequence[str]) -> list[str]:
    """Distinct non-empty ids in first-seen order (empty ids cannot exist)."""
    return list(dict.fromkeys(i for i in ids if i))


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def query_similarities(metric: str, scores: Sequence[float]) -> np.ndarray:
    """Server scores -> similarity to the query, for MMR when the query vector is not
    known on the client (server-side encoder): cosine/ip scores are similarities; an
    l2 squared distance d between unit vectors is 2 - 2 cos."""
    s = np.asarray(scores, dtype=np.float64)
    return 1.0 - s / 2.0 if metric == "l2" else s


def mmr_select(query_sims: np.ndarray, doc_vectors: np.ndarray, k: int,
               lambda_mult: float = 0.5) -> list[int]:
    """Maximal marginal relevance: pick k of the candidates, each maximizing
    ``lambda_mult * sim(query, d) - (1 - lambda_mult) * max sim(d, picked)``
    (cosine between candidates). Same rule as langchain-core's
    ``maximal_marginal_relevance``; the first pick is the most similar."""
    n = len(query_sims)
    if n == 0 or k <= 0:
        return []
    docs = _unit_rows(np.asarray(doc_vectors, dtype=np.float64))
    pair = docs @ docs.T
    q = np.asarray(query_sims, dtype=np.float64)
    picked = [int(np.argmax(q))]
    while len(picked) < min(k, n):
        redundancy = pair[:, picked].max(axis=1)
        score = lambda_mult * q - (1.0 - lambda_mult) * redundancy
        score[picked] = -np.inf
        picked.append(int(np.argmax(score)))
    return picked


def cosine_to(query: Sequence[float], doc_vectors: np.ndarray) -> np.ndarray:
    qv = np.asarray(query, dtype=np.float64)
    qn = np.linalg.norm(qv)
    return _unit_rows(np.asarray(doc_vectors, dtype=np.float64)) @ (qv / (qn if qn else 1.0))
