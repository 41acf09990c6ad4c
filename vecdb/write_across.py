"""One upsert batch written across several collections of one configuration in ONE
RocksDB write (Database.upsert_across): a cluster node that is the primary of several
shards of a collection (each shard copy is a collection of its own) applies a client's
batch over them with one WAL sync instead of one per shard.

The batch is checked once (ids, vectors or texts embedded, payloads, TTLs) by the first
collection; each collection then prepares its rows under its write lock, and one commit
writes and applies them all: all-or-nothing, as a single collection's multi-shard batch is.

Lock order: the write locks are all held, taken in creation order (``config.uid``, never
reused), so two such writes cannot deadlock, nor one with a re-embed: it holds its
source's lock while it takes its target's, and the target is always created after the
source (its name may sort either way: reembed(target=...)). A collection named twice
(directly and through an alias) is refused: its lock cannot be taken twice."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from .collection import Collection, commit
from .errors import InvalidArgument
from .types import WriteResult


def _alike(colls: list[Collection]) -> None:
    def shape(c: Collection) -> tuple:
        return c.config.dim, c.config.metric, c.config.encoder, c.config.sparse_dim
    if not colls:
        raise InvalidArgument("collections: name at least one", "collections")
    names = [c.config.name for c in colls]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise InvalidArgument(f"collections: {twice!r} is named twice (directly or through "
                              "an alias)", "collections")
    if any(shape(c) != shape(colls[0]) for c in colls):
        raise InvalidArgument("collections: all must have one dimension, metric, encoder and "
                              "sparse_dim", "collections")


def upsert(colls: list[Collection], rows: list[Sequence[int]], ids, vectors=None,
           payloads=None, texts=None, ttl=None, before_write=None) -> list[WriteResult]:
    """Points ``rows[c]`` (positions in ``ids``) of the batch go to ``colls[c]``; every
    position belongs to one collection. Returns each collection's WriteResult.
    ``before_write()`` runs once the whole batch passed its checks (bad input raises
    before it) and before anything is written: a cluster primary logs its replication
    entries there, so a batch refused for its input never reaches a log or a replica."""
    _alike(colls)
    flat, n = np.fromiter((j for r in rows for j in r), np.int64), len(ids)
    if len(flat) != n or n and (flat.min() < 0 or flat.max() >= n
                                or np.bincount(flat).max() > 1):
        raise InvalidArgument("every point must go to exactly one collection", "ids")
    with contextlib.ExitStack() as held:
        for c in colls:
            c.count_writer(1)
            held.callback(c.count_writer, -1)
        ids, vecs, pays, txts, expire, _ = colls[0].checked_upsert(ids, vectors, payloads,
                                                                   texts, ttl)
        if not ids:
            return [WriteResult(0, {}) for _ in colls]
        if before_write is not None:
            before_write()
        for c in colls:
            c.await_builds()
        for c in sorted(colls, key=lambda c: c.config.uid):  # creation order: see above
            held.enter_context(c.write_lock)
        store = colls[0].store
        wb, parts = store.batch(), []
        for c, r in zip(colls, rows):
            r = list(r)
            ops = c.prepare_upsert(wb, [ids[j] for j in r], vecs[r], [pays[j] for j in r],
                                   [txts[j] for j in r],
                                   None if expire is None else [expire[j] for j in r])
            parts.append((c, ops, len(r)))
        return commit(store, wb, parts)
