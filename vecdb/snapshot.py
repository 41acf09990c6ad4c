"""Online, consistent snapshots of one collection, and their restore.

A snapshot is a directory (optionally packed as ``<name>.tar``) holding::

    manifest.json          format, vecdb version, time, the collection config,
                           per shard the FAISS checkpoint sequence, the tenant
                           quotas, and the size + SHA-256 of every other file
    shard-<n>/records.bin  every RocksDB key of the shard (records, vectors,
                           ids, TTLs, meta, retained WAL), prefix stripped:
                           repeated (u32 key length, u32 value length, key, value)
    shard-<n>/ckpt/        the shard's FAISS checkpoint at that sequence

Taking one holds the collection's write lock only while every shard is
checkpointed and a RocksDB checkpoint (hard links) pins the instant (writes
to the collection wait that long; reads never do); the records are then
dumped from that pinned copy while writes continue. So the records, the WAL sequence and the
FAISS state all describe the same instant, and a restore (on this server or
another) answers searches exactly as the source did at that instant.

Restore verifies every checksum first (a damaged snapshot is refused with a
clear error and nothing is written), writes the records under a fresh
collection uid behind a drop marker, copies the FAISS checkpoints, then adds
the catalog entry and removes the marker in one batch: a crash in between
leaves no trace after the next open.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tarfile
import tempfile
import time
from dataclasses import dataclass

from . import __version__
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

FORMAT = 1
MANIFEST = "manifest.json"
_KV = struct.Struct("<II")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_CHUNK = 4 << 20


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    collection: str
    created_at: float  # seconds since the epoch
    points: int
    bytes: int
    path: str


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise InvalidArgument(f"snapshot name must be 1-128 of letters, digits, '_', '-', '.', "
                              f"not starting with '.', got {name!r}", "snapshot")
    return name


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def take(coll, store, root: str, name: str, tarball: bool) -> SnapshotInfo:
    """Write a snapshot of ``coll`` to ``root/name`` (or ``root/name.tar``)."""
    check_name(name)
    final = os.path.join(root, name + (".tar" if tarball else ""))
    if os.path.exists(final) or os.path.exists(os.path.join(root, name)):
        raise AlreadyExists(f"snapshot {name!r} already exists", "snapshot")
    os.makedirs(root, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{name}.", dir=root)
    try:
        shard_meta = []
        with coll.write_lock:  # a quiet instant: no write to this collection in flight
            for shard in coll.shards:
                shard.checkpoint()
            store.checkpoint_to(os.path.join(work, ".rocksdb"))  # pins this instant
            for shard in coll.shards:
                os.makedirs(os.path.join(work, f"shard-{shard.number}"))
                with shard.checkpoint_files() as (seq, ckpt_dir):
                    if ckpt_dir is not None:  # None: an empty shard never checkpointed
                        dst = os.path.join(work, f"shard-{shard.number}", "ckpt")
                        os.makedirs(dst)
                        for f in os.listdir(ckpt_dir):
                            _link_or_copy(os.path.join(ckpt_dir, f), os.path.join(dst, f))
                shard_meta.append({"number": shard.number, "seq": seq})
            config = coll.config.to_dict()
            points = coll.count()
            quotas = [] if coll.tenants is None else coll.tenants.quota_list()
        for shard, meta in zip(coll.shards, shard_meta):
            meta["records"] = _dump(store, os.path.join(work, ".rocksdb"), shard.prefix,
                                    os.path.join(work, f"shard-{shard.number}", "records.bin"))
        shutil.rmtree(os.path.join(work, ".rocksdb"))
        files = {}
        for dirpath, _, names in os.walk(work):
            for f in names:
                path = os.path.join(dirpath, f)
                files[os.path.relpath(path, work)] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
        config.pop("uid", None)
        manifest = {"format": FORMAT, "vecdb": __version__, "created_at": time.time(), "name": name,
                    "collection": config, "points": points, "shards": shard_meta, "files": files,
                    "tenant_quotas": quotas}
        with open(os.path.join(work, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if tarball:
            with tarfile.open(final + ".tmp", "w") as tar:
                tar.add(work, arcname=name)
            os.replace(final + ".tmp", final)
            shutil.rmtree(work)
        else:
            os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info(final)


def _dump(store, pinned: str, prefix: bytes, path: str) -> int:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    n = 0
    with open(path, "wb") as f:
        for key, value in store.scan_copy(pinned, prefix, end):
            k = key[len(prefix):]
            f.write(_KV.pack(len(k), len(value)))
            f.write(k)
            f.write(value)
            n += 1
        f.flush()
        os.fsync(f.fileno())
    return n


def records(path: str):
    """(key without prefix, value) pairs of a records.bin file."""
    with open(path, "rb") as f:
        while head := f.read(_KV.size):
            nk, nv = _KV.unpack(head)
            yield f.read(nk), f.read(nv)


def info(path: str) -> SnapshotInfo:
    manifest = read_manifest(path)
    size = os.path.getsize(path) if os.path.isfile(path) else sum(
        s["size"] for s in manifest["files"].values())
    return SnapshotInfo(manifest["name"], manifest["collection"]["name"], manifest["created_at"],
                        manifest["points"], size, path)


def read_manifest(path: str) -> dict:
    try:
        if os.path.isfile(path):
            with tarfile.open(path) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("/" + MANIFEST))
                return json.load(tar.extractfile(member))
        with open(os.path.join(path, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError, StopIteration, tarfile.TarError) as exc:
        raise FailedPrecondition(f"snapshot {os.path.basename(path)!r} is unreadable: {exc}",
                                 "snapshot") from None


def locate(root: str, name: str) -> str:
    check_name(name)
    for candidate in (os.path.join(root, name), os.path.join(root, name + ".tar")):
        if os.path.exists(candidate):
            return candidate
    raise NotFound(f"snapshot {name!r} does not exist in {root}", "snapshot")


def list_all(root: str) -> list[SnapshotInfo]:
    if not os.path.isdir(root):
        return []
    out = []
    for entry in sorted(os.listdir(root)):
        if entry.startswith("."):
            continue
        try:
            out.append(info(os.path.join(root, entry)))
        except FailedPrecondition:
            continue  # not a snapshot (or a damaged one): listed nowhere, restore explains
    return out


def unpack(path: str, scratch: str) -> str:
    """A verified snapshot directory for ``path`` (a .tar is extracted into scratch)."""
    src = path
    if os.path.isfile(path):
        try:
            with tarfile.open(path) as tar:
                tar.extractall(scratch, filter="data")
            [src] = [os.path.join(scratch, d) for d in os.listdir(scratch)]
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise FailedPrecondition(f"snapshot {os.path.basename(path)!r} is damaged ({exc}); "
                                     "nothing was restored", "snapshot") from None
    manifest = read_manifest(src)
    if manifest.get("format") != FORMAT:
        raise FailedPrecondition(f"snapshot format {manifest.get('format')} is not supported "
                                 f"(this server reads {FORMAT})", "snapshot")
    for rel, spec in manifest["files"].items():
        p = os.path.join(src, rel)
        if not os.path.isfile(p) or os.path.getsize(p) != spec["size"] or _sha256(p) != spec["sha256"]:
            raise FailedPrecondition(f"snapshot {manifest['name']!r} is damaged: {rel} is missing or "
                                     "fails its checksum; nothing was restored", "snapshot")
    return src
