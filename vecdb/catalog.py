"""The catalog: collection configs and aliases, stored in RocksDB.

Create writes the config and bumps the uid counter in one synced batch.
Drop is crash-safe in two steps: (1) one batch removes the config and its
aliases and records a drop marker D<uid>; (2) the data key range and the
files are deleted, then the marker. ``finish_drops`` redoes step 2 for any
marker found at open, and ``stray_dirs`` finds collection directories the
catalog does not know (a crash during create), so the catalog is always
consistent after a restart.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import replace

from .errors import AlreadyExists, NotFound
from .storage import U32, Store, collection_range
from .types import CollectionConfig


class Catalog:
    def __init__(self, store: Store, root: str):
        self.store, self.root = store, root
        self.lock = threading.RLock()
        self.configs: dict[str, CollectionConfig] = {}
        self.aliases: dict[str, str] = {}
        for key, raw in store.scan(b"C", b"D"):
            cfg = CollectionConfig.from_dict(json.loads(raw))
            self.configs[cfg.name] = cfg
        for key, raw in store.scan(b"A", b"B"):
            self.aliases[key[1:].decode()] = raw.decode()
        raw = store.get(b"U")
        self.next_uid = U32.unpack(raw)[0] if raw else 1

    def dir_of(self, uid: int) -> str:
        return os.path.join(self.root, str(uid))

    def resolve(self, name: str) -> CollectionConfig:
        cfg = self.configs.get(self.aliases.get(name, name))
        if cfg is None:
            raise NotFound(f"collection {name!r} does not exist", "collection")
        return cfg

    def _check_free(self, name: str) -> None:
        if name in self.configs:
            raise AlreadyExists(f"collection {name!r} already exists", "name")
        if name in self.aliases:
            raise AlreadyExists(f"{name!r} is already an alias of collection {self.aliases[name]!r}", "name")

    def create(self, config: CollectionConfig) -> CollectionConfig:
        with self.lock:
            self._check_free(config.name)
            cfg = replace(config, uid=self.next_uid)
            wb = self.store.batch()
            wb.put(b"C" + cfg.name.encode(), json.dumps(cfg.to_dict()).encode())
            wb.put(b"U", U32.pack(cfg.uid + 1))
            self.store.write(wb, sync=True)
            self.next_uid = cfg.uid + 1
            self.configs[cfg.name] = cfg
            return cfg

    def reserve_uid(self, name: str) -> int:
        """A fresh uid for a collection being restored, behind a drop marker: if the
        process dies before ``commit_restore``, the next open purges what was written."""
        with self.lock:
            self._check_free(name)
            uid = self.next_uid
            wb = self.store.batch()
            wb.put(b"U", U32.pack(uid + 1))
            wb.put(b"D" + U32.pack(uid), name.encode())
            self.store.write(wb, sync=True)
            self.next_uid = uid + 1
            return uid

    def commit_restore(self, config: CollectionConfig) -> None:
        with self.lock:
            self._check_free(config.name)
            wb = self.store.batch()
            wb.put(b"C" + config.name.encode(), json.dumps(config.to_dict()).encode())
            wb.delete(b"D" + U32.pack(config.uid))
            self.store.write(wb, sync=True)
            self.configs[config.name] = config

    def update(self, config: CollectionConfig) -> CollectionConfig:
        """Persist a changed config of an existing collection (same name and uid)."""
        with self.lock:
            wb = self.store.batch()
            wb.put(b"C" + config.name.encode(), json.dumps(config.to_dict()).encode())
            self.store.write(wb, sync=True)
            self.configs[config.name] = config
            return config

    def drop(self, name: str) -> CollectionConfig:
        with self.lock:
            cfg = self.configs.get(name)
            if cfg is None:
                hint = f" ({name!r} is an alias; drop {self.aliases[name]!r})" if name in self.aliases else ""
                raise NotFound(f"collection {name!r} does not exist{hint}", "name")
            wb = self.store.batch()
            wb.delete(b"C" + name.encode())
            gone = [a for a, c in self.aliases.items() if c == name]
            for a in gone:
                wb.delete(b"A" + a.encode())
            wb.put(b"D" + U32.pack(cfg.uid), name.encode())
            self.store.write(wb, sync=True)
            del self.configs[name]
            for a in gone:
                del self.aliases[a]
        return cfg

    def purge(self, uid: int) -> None:
        """Delete a dropped collection's keys and files, then its drop marker (idempotent)."""
        self.store.delete_range(*collection_range(uid))
        shutil.rmtree(self.dir_of(uid), ignore_errors=True)
        wb = self.store.batch()
        wb.delete(b"D" + U32.pack(uid))
        self.store.write(wb, sync=True)

    def finish_drops(self) -> int:
        pending = [U32.unpack(k[1:5])[0] for k, _ in self.store.scan(b"D", b"E")]
        for uid in pending:
            self.purge(uid)
        return len(pending)

    def stray_dirs(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        live = {str(c.uid) for c in self.configs.values()}
        return [os.path.join(self.root, d) for d in os.listdir(self.root) if d not in live]

    # ---- aliases ------------------------------------------------------------
    def set_alias(self, alias: str, collection: str, create_only: bool) -> None:
        with self.lock:
            if collection not in self.configs:
                raise NotFound(f"collection {collection!r} does not exist", "collection")
            if alias in self.configs:
                raise AlreadyExists(f"{alias!r} is a collection name; aliases must differ", "alias")
            if create_only and alias in self.aliases:
                raise AlreadyExists(f"alias {alias!r} already exists (points to {self.aliases[alias]!r})",
                                    "alias")
            wb = self.store.batch()
            wb.put(b"A" + alias.encode(), collection.encode())
            self.store.write(wb, sync=True)
            self.aliases[alias] = collection

    def delete_alias(self, alias: str) -> None:
        with self.lock:
            if alias not in self.aliases:
                raise NotFound(f"alias {alias!r} does not exist", "alias")
            wb = self.store.batch()
            wb.delete(b"A" + alias.encode())
            self.store.write(wb, sync=True)
            del self.aliases[alias]
