"""Checkpoint files of a shard's FAISS state.

<shard dir>/ckpt-<seq:020d>/ holds exact.faiss, optionally ann.faiss and
tombstones.npy, and meta.json (format version, seq, ANN kind, sizes and
CRC32 of every file). A checkpoint is written into a .tmp directory,
fsynced, then renamed into place, so a crash leaves either the old or the
new one complete. Loading walks checkpoints newest first and skips any whose
files are missing or fail their checksum (logged); None means "rebuild".
"""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass

import faiss
import numpy as np

from .index import Ann
from .types import CollectionConfig

log = logging.getLogger("vecdb.checkpoint")
FORMAT = 1
PREFIX = "ckpt-"


@dataclass
class Loaded:
    seq: int
    exact: faiss.Index
    ann: Ann | None


def serialize(exact: faiss.Index, ann: Ann | None) -> tuple[dict[str, bytes], dict]:
    """In-memory copy of the state (taken under the shard's read lock; fast)."""
    blobs = {"exact.faiss": faiss.serialize_index(exact).tobytes()}
    info: dict = {"ann": None}
    if ann is not None:
        blobs["ann.faiss"] = faiss.serialize_index(ann.index).tobytes()
        buf = io.BytesIO()
        np.save(buf, np.array(sorted(ann.tombstones), dtype=np.int64))
        blobs["tombstones.npy"] = buf.getvalue()
        info["ann"] = {"kind": ann.kind, "trained_on": ann.trained_on}
    return blobs, info


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(directory: str, seq: int, state: tuple[dict[str, bytes], dict]) -> None:
    blobs, info = state
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, f"{PREFIX}{seq:020d}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files = {}
    try:
        for name, data in blobs.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            files[name] = {"size": len(data), "crc32": zlib.crc32(data)}
        meta = {"format": FORMAT, "seq": seq, "files": files, **info}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
    except OSError:  # e.g. disk full: give the space back, keep the previous checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _fsync_dir(directory)
    for old in os.listdir(directory):
        if old.startswith(PREFIX) and os.path.join(directory, old) != final:
            shutil.rmtree(os.path.join(directory, old), ignore_errors=True)


def _read(path: str, spec: dict) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != spec["size"] or zlib.crc32(data) != spec["crc32"]:
        raise ValueError(f"{os.path.basename(path)} fails its size/checksum check")
    return data


def _load_one(path: str, config: CollectionConfig) -> Loaded:
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"unsupported checkpoint format {meta.get('format')}")
    files = meta["files"]

    def index(name: str) -> faiss.Index:
        data = _read(os.path.join(path, name), files[name])
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))

    exact = index("exact.faiss")
    if exact.d != config.dim:
        raise ValueError(f"dimension {exact.d} != collection dimension {config.dim}")
    ann = None
    if meta["ann"]:
        tomb = np.load(io.BytesIO(_read(os.path.join(path, "tombstones.npy"), files["tombstones.npy"])))
        ann = Ann(meta["ann"]["kind"], index("ann.faiss"), meta["ann"]["trained_on"],
                  set(tomb.tolist()))
    return Loaded(int(meta["seq"]), exact, ann)


def load(directory: str, config: CollectionConfig) -> Loaded | None:
    if not os.path.isdir(directory):
        return None
    names = sorted((n for n in os.listdir(directory) if n.startswith(PREFIX) and not n.endswith(".tmp")),
                   reverse=True)
    for name in names:
        try:
            return _load_one(os.path.join(directory, name), config)
        except Exception as e:  # any damage means: try older, then rebuild
            log.warning("checkpoint %s unusable (%s); ignoring it", os.path.join(directory, name), e)
    return None


def disk_bytes(directory: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
