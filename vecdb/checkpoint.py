"""Checkpoint files of a shard's FAISS state.

<shard dir>/ckpt-<seq:020d>/ holds exact.faiss, optionally ann.faiss and
tombstones.npy, and meta.json (format version, seq, ANN kind, sizes and
CRC32 of every file). A checkpoint is streamed into a .tmp directory under
the shard's read lock (dump: no in-memory copy of the indexes), then fsynced
and renamed into place outside it (commit), so a crash leaves either the old
or the new one complete. A quantized shard (vecdb/quant.py) has no exact.faiss: its
vectors stay in <shard dir>/vectors-<gen>.f32, fsynced by the dump, and the checkpoint
holds the rows it covers ("vectors": gen, rows) with labels.npy/live.npy; binary codes
are ann.faissb plus center.npy. A full-precision HNSW or IVF-Flat shard has no exact.faiss
either: its exact store is the index's own vectors (vecdb.index.AnnVectors), so they are
written once; checkpoints that still hold both files load as before (with ``share`` the
exact.faiss is not read). A full-precision HNSW shard's checkpoint (``lean``) holds even
those vectors no more: ann.graph is the graph without its float storage, ids.npy the
label of each storage row, dead.npy the vectors of its tombstoned rows (sorted as
tombstones.npy); load refills the storage from the shard's RocksDB records (vecdb/
graph_fill.py). Loading walks checkpoints newest first and skips any whose
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

from . import ondisk
from .graph_fill import attach_storage
from .index import Ann, AnnVectors, HnswVectors, exact_from_ann
from .quant import BinaryCodes
from .quant_store import VectorFile
from .types import CollectionConfig

log = logging.getLogger("vecdb.checkpoint")
FORMAT = 1
PREFIX = "ckpt-"
PENDING = PREFIX + "pending.tmp"  # being written (see _promote_pending for crashes)
CHUNK = 1 << 20


@dataclass
class Loaded:
    seq: int
    exact: faiss.Index
    ann: Ann | None
    rewrite: bool = False  # an exact.faiss was left unread: the next checkpoint drops it


def _write_index(path: str, index: faiss.Index, write=faiss.write_index) -> dict:
    """Stream ``index`` into ``path`` in 1 MiB chunks (no in-memory copy of the index:
    a copy of every index at once was the server's peak RSS); returns size and CRC32.
    An OSError of the file (e.g. disk full) propagates through FAISS unchanged."""
    spec = {"size": 0, "crc32": 0}
    with open(path, "wb") as f:
        def put(chunk: bytes) -> int:
            spec["size"] += len(chunk)
            spec["crc32"] = zlib.crc32(chunk, spec["crc32"])
            return f.write(chunk)
        write(index, faiss.PyCallbackIOWriter(put, CHUNK))
    return spec


def _write_npy(path: str, arr: np.ndarray) -> dict:
    buf = io.BytesIO()
    np.save(buf, arr)
    return _write_bytes(path, buf.getvalue())


def _write_bytes(path: str, data: bytes) -> dict:
    with open(path, "wb") as f:
        f.write(data)
    return {"size": len(data), "crc32": zlib.crc32(data)}


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dump(directory: str, exact: faiss.Index, ann: Ann | None, lean: bool = False) -> dict:
    """Write the state's files into ``directory``/PENDING (under the shard's read lock,
    so they are consistent; not yet durable). Pass the result to :func:`commit`.
    ``lean``: an HNSW graph's float storage is left out (the caller's records hold the
    vectors; :func:`load` takes them back with ``vectors``)."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, PENDING)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files: dict = {}
    info: dict = {"ann": None}
    try:
        if isinstance(exact, VectorFile):
            exact.sync()
            labels, live = exact.columns()
            files["labels.npy"] = _write_npy(os.path.join(tmp, "labels.npy"), labels)
            files["live.npy"] = _write_npy(os.path.join(tmp, "live.npy"), live)
            info["vectors"] = {"gen": exact.gen, "rows": exact.rows}
        elif not isinstance(exact, AnnVectors):  # else ann.faiss holds the vectors
            files["exact.faiss"] = _write_index(os.path.join(tmp, "exact.faiss"), exact)
        if ann is not None:
            if isinstance(ann.index, BinaryCodes):
                files["ann.faissb"] = _write_index(os.path.join(tmp, "ann.faissb"), ann.index.index,
                                                   faiss.write_index_binary)
                files["center.npy"] = _write_npy(os.path.join(tmp, "center.npy"), ann.index.center)
            elif lean and isinstance(exact, HnswVectors):
                _dump_graph(tmp, files, exact, ann)
            elif isinstance(ann, ondisk.DiskIvf):  # links to its base files + its delta
                part, on_disk = ondisk.dump(tmp, ann, _write_index)
                files.update(part)
            else:
                files["ann.faiss"] = _write_index(os.path.join(tmp, "ann.faiss"), ann.index)
            files["tombstones.npy"] = _write_npy(os.path.join(tmp, "tombstones.npy"),
                                                 np.array(sorted(ann.tombstones), dtype=np.int64))
            info["ann"] = {"kind": ann.kind, "trained_on": ann.trained_on}
            if ann.quant:
                info["ann"]["quant"] = ann.quant
            if isinstance(ann, ondisk.DiskIvf):
                info["ann"].update(on_disk)
    except BaseException:  # e.g. disk full: give the space back, keep the previous checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"files": files, **info}


def _dump_graph(tmp: str, files: dict, exact: HnswVectors, ann: Ann) -> None:
    """ann.graph (the HNSW links, no float storage), ids.npy (label per storage row) and
    dead.npy (the tombstoned rows' vectors: their records are gone, the graph still
    walks through them)."""
    inner = faiss.downcast_index(ann.index.index)
    files["ann.graph"] = _write_index(os.path.join(tmp, "ann.graph"), inner,
                                      lambda index, w: faiss.write_index(index, w, faiss.IO_FLAG_SKIP_STORAGE))
    ids = exact._ids()
    files["ids.npy"] = _write_npy(os.path.join(tmp, "ids.npy"), ids)
    dead = np.array(sorted(ann.tombstones), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    rows = order[np.searchsorted(ids, dead, sorter=order)] if len(dead) else np.zeros(0, np.int64)
    vecs = exact.storage.reconstruct_batch(rows) if len(rows) else np.zeros((0, exact.d), np.float32)
    files["dead.npy"] = _write_npy(os.path.join(tmp, "dead.npy"), vecs)


def commit(directory: str, seq: int, dumped: dict) -> None:
    """Make a :func:`dump` durable as the checkpoint at ``seq`` (fsync, meta.json with
    the checksums, rename into place), then remove older checkpoints."""
    tmp = os.path.join(directory, PENDING)
    final = os.path.join(directory, f"{PREFIX}{seq:020d}")
    try:
        for name in dumped["files"]:
            _fsync(os.path.join(tmp, name))
        meta = {"format": FORMAT, "seq": seq, **dumped}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _fsync(directory)
    for old in os.listdir(directory):
        if old.startswith(PREFIX) and os.path.join(directory, old) != final:
            shutil.rmtree(os.path.join(directory, old), ignore_errors=True)


def _verify(path: str, spec: dict) -> None:
    size, crc = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
    if size != spec["size"] or crc != spec["crc32"]:
        raise ValueError(f"{os.path.basename(path)} fails its size/checksum check")


def _read(path: str, spec: dict) -> bytes:
    _verify(path, spec)
    with open(path, "rb") as f:
        return f.read()


def _load_one(path: str, config: CollectionConfig, share: bool, vectors) -> Loaded:
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"unsupported checkpoint format {meta.get('format')}")
    files = meta["files"]

    def index(name: str, read=faiss.read_index) -> faiss.Index:
        _verify(os.path.join(path, name), files[name])
        return read(os.path.join(path, name))  # straight from the file

    def npy(name: str) -> np.ndarray:
        return np.load(io.BytesIO(_read(os.path.join(path, name), files[name])))

    if bool(meta.get("vectors")) != bool(config.quantization):
        raise ValueError("checkpoint and collection disagree on quantization")
    if meta.get("vectors"):
        exact = VectorFile(os.path.dirname(path), config.dim, config.metric, meta["vectors"]["gen"],
                           meta["vectors"]["rows"], npy("labels.npy"), npy("live.npy"))
    elif "exact.faiss" in files and not (share and meta["ann"] and "ann.faiss" in files
                                         and meta["ann"]["kind"] in ("hnsw", "ivf_flat")
                                         and not meta["ann"].get("quant")):
        exact = index("exact.faiss")
    else:
        exact = None  # the ANN index's own storage, below
    if exact is not None and exact.d != config.dim:
        raise ValueError(f"dimension {exact.d} != collection dimension {config.dim}")
    ann = None
    if meta["ann"]:
        quant = meta["ann"].get("quant", "")
        if "ann.faissb" in files:
            codes = BinaryCodes(config.dim, npy("center.npy"), index("ann.faissb", faiss.read_index_binary))
        elif meta["ann"].get("ondisk"):
            ann = ondisk.load(path, os.path.dirname(path), meta["ann"]["ondisk"], files,
                              meta["ann"]["trained_on"], set(npy("tombstones.npy").tolist()),
                              index)
        elif "ann.graph" in files:
            if vectors is None:
                raise ValueError("ann.graph needs the shard's records to refill its vectors")
            codes = attach_storage(index("ann.graph"), npy("ids.npy"), npy("tombstones.npy"),
                                   npy("dead.npy"), vectors, config.metric)
        else:
            codes = index("ann.faiss")
        if ann is None:
            ann = Ann(meta["ann"]["kind"], codes, meta["ann"]["trained_on"],
                      set(npy("tombstones.npy").tolist()), quant=quant)
    if isinstance(ann, ondisk.DiskIvf) != config.on_disk and ann is not None:
        raise ValueError("checkpoint and collection disagree on on_disk")
    if config.on_disk and ann is None:  # no base yet: one a crash left is no one's
        ondisk.remove_gens(os.path.dirname(path), -1)
    if exact is None:
        exact = ondisk.DiskVectors(ann) if isinstance(ann, ondisk.DiskIvf) else exact_from_ann(ann)
        if exact is None or exact.d != config.dim:
            raise ValueError("no exact.faiss and no HNSW storage of the collection's dimension")
    return Loaded(int(meta["seq"]), exact, ann,
                  rewrite="exact.faiss" in files and isinstance(exact, AnnVectors))


def _promote_pending(directory: str) -> None:
    """Finish a commit a crash interrupted: meta.json is written and fsynced last, so a
    pending dir that has one is complete (and the newest: every dump starts by removing
    it). Without one it is a torn dump: removed."""
    tmp = os.path.join(directory, PENDING)
    if not os.path.isdir(tmp):
        return
    try:
        with open(os.path.join(tmp, "meta.json")) as f:
            seq = int(json.load(f)["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    final = os.path.join(directory, f"{PREFIX}{seq:020d}")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _fsync(directory)
    log.info("completed the interrupted checkpoint %s", final)


def load(directory: str, config: CollectionConfig, share: bool = False,
         vectors=None) -> Loaded | None:
    """The newest usable checkpoint. ``share``: a full-precision HNSW/IVF-Flat shard's
    exact store is the index's own vectors (AnnVectors), so an exact.faiss beside it
    (older checkpoints) is not read. ``vectors``: a callable yielding (labels, raw
    vectors) chunks of every stored point, which a lean checkpoint's graph is refilled
    from."""
    if not os.path.isdir(directory):
        return None
    _promote_pending(directory)
    names = sorted((n for n in os.listdir(directory) if n.startswith(PREFIX) and not n.endswith(".tmp")),
                   reverse=True)
    for name in names:
        try:
            return _load_one(os.path.join(directory, name), config, share, vectors)
        except Exception as e:  # any damage means: try older, then rebuild
            log.warning("checkpoint %s unusable (%s); ignoring it", os.path.join(directory, name), e)
    return None


def disk_bytes(directory: str) -> int:
    """Bytes of the files under ``directory``, a hard-linked file once (an on-disk
    collection's lists file sits in its shard directory and in its checkpoint)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total
