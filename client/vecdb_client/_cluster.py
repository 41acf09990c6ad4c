"""Client side of two cluster-mode features (docs/cluster.md): ``allow_partial`` reads
(their results say whether a shard was missing) and idempotency keys on writes (one per
call, the same on every retry, so a retried write is applied once)."""
from __future__ import annotations

import uuid
from typing import Any

IDEMPOTENCY_KEY = "x-vecdb-idempotency-key"


def consistency(value: str) -> str:
    """A read's ``consistency=`` checked: "any" (any in-sync replica) or "primary"."""
    if value not in ("any", "primary"):
        from .errors import InvalidArgumentError
        raise InvalidArgumentError(f"consistency must be any or primary, got {value!r}",
                                   field="consistency")
    return value


class PartialHits(list):
    """The hits (or a list per query) of a search made with ``allow_partial=True``.
    ``partial``: some shard had no reachable replica and is missing from them."""

    partial: bool = False


class PartialCount(int):
    """A count made with ``allow_partial=True``; ``partial`` as for PartialHits."""

    partial: bool = False


def with_partial(value: Any, msg: Any) -> Any:
    """``value`` (hits, hits per query, (hits, plan) or a count) carrying msg.partial."""
    if isinstance(value, tuple):  # explain: (hits, plan)
        return (with_partial(value[0], msg), *value[1:])
    out = PartialCount(value) if isinstance(value, int) else PartialHits(value)
    out.partial = bool(msg.partial)
    return out


def write_metadata(md: tuple) -> tuple:
    """The call's metadata plus a fresh idempotency key (make it once per call)."""
    return (*md, (IDEMPOTENCY_KEY, uuid.uuid4().hex))
