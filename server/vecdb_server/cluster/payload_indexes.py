"""A local copy's payload indexes kept in line with its collection's spec in etcd.

CreatePayloadIndex/DropPayloadIndex change the spec first (the source of truth), then
each copy best effort; a copy that missed it (its node down, a replica catching up
from the replication log, which carries writes only) is brought in line here by its
own node's maintenance: missing indexes created, extra ones dropped. A copy is looked
at again only when its spec changed (and once per process)."""
from __future__ import annotations

import base64
import contextlib
import logging
from typing import Any

from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb

from vecdb.errors import AlreadyExists, NotFound

from .state import CollectionSpec

log = logging.getLogger("vecdb_server.cluster")


class Aligner:
    def __init__(self) -> None:
        self._seen: dict[str, str] = {}  # local copy -> the spec request it was aligned to

    def align(self, db: Any, local: str, spec: CollectionSpec) -> None:
        if self._seen.get(local) == spec.request:
            return
        want = dict(cpb.CreateCollectionRequest.FromString(
            base64.b64decode(spec.request)).payload_indexes)
        try:
            have = dict(db.describe_collection(local).config.payload_indexes)
        except NotFound:
            return  # not made yet: it is made from the spec, with its indexes
        # (a CreatePayloadIndex/Drop applying the same meanwhile is no error)
        for field, kind in want.items():
            if have.get(field) != kind:
                log.info("copy %s: payload index on %r (%s) from the spec", local, field, kind)
                with contextlib.suppress(NotFound):
                    if field in have:
                        db.drop_payload_index(local, field)
                with contextlib.suppress(AlreadyExists):
                    db.create_payload_index(local, field, kind)
        for field in have.keys() - want.keys():
            log.info("copy %s: payload index on %r dropped (not in the spec)", local, field)
            with contextlib.suppress(NotFound):
                db.drop_payload_index(local, field)
        self._seen[local] = spec.request
