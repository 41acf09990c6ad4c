"""On-disk collections (``on_disk=True``): IVF-Flat whose inverted lists stay in a
memory-mapped file, paged in on demand, so a collection larger than RAM still answers.

A built shard holds a :class:`DiskIvf` (its ANN index) and :class:`DiskVectors` (its
exact store, a face over the same lists):

- the *base*: ``<shard dir>/ondisk-<gen>.index`` (the trained coarse quantizer and the
  list directory, small) plus ``ondisk-<gen>.ivfdata`` (the lists: float32 codes and
  int64 ids), a FAISS OnDiskInvertedLists opened read-only and memory-mapped
  (read_index with IO_FLAG_ONDISK_SAME_DIR | IO_FLAG_READ_ONLY). Never written after
  it is made: the page cache holds the hot lists, outside the process's anonymous
  memory;
- the *delta*: writes since the last merge, an IndexIVFFlat in RAM on the same
  quantizer; searched together with the base through HStackInvertedLists (one
  IndexIVFFlat over both, so filters, range search and nprobe work unchanged);
- *tombstones*: labels deleted from the base (labels only grow, so a label up to
  ``base_max`` lives in the base, a later one in the delta, which removes for real),
  excluded through an IDSelector.

The delta is merged into a new base generation by the shard's background build
(:func:`merge`) once it passes ``max(ondisk_delta_mb, DELTA_RATIO * base)`` (or the
tombstones pass ``TOMBSTONE_RATIO``); with nlist auto the lists are retrained once the
shard grew ``RETRAIN_GROWTH`` times (:func:`stream`: trained on a sample, each vector's
list found, then written straight into a file allocated whole; nothing held in RAM but
the sample and the list numbers). A checkpoint hard-links the base's
two files into its directory and writes the delta (small) and the tombstones, so the
vectors are on disk once more at most. Like every FAISS file this is derived state:
RocksDB (records and WAL) stays the truth; a base generation not named by the newest
checkpoint is deleted on open. Exact search reads every list (a full scan of the file);
get-with-vector and re-reads by label come from RocksDB.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import zlib

import faiss
import numpy as np

from .errors import InvalidArgument
from .index import RETRAIN_GROWTH, Ann, IvfVectors, auto_nlist, faiss_metric
from .index import float_lists as lists
from .quant import TRAIN_SAMPLE
from .types import IndexSpec

DELTA_RATIO = 0.125  # writes kept in RAM before a merge: this share of the base, or
# DatabaseOptions.ondisk_delta_mb (DiskIvf.delta_min), whichever is larger
TOMBSTONE_RATIO = 0.2  # merge (dropping them) once deletes pass this share of the base
READ_FLAGS = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def validate(on_disk, spec: IndexSpec, device: str, quantization: str) -> tuple[bool, IndexSpec]:
    """(on_disk, index spec) of a new collection; InvalidArgument naming ``on_disk``."""
    if on_disk is None or on_disk is False:
        return False, spec
    if on_disk is not True:
        raise InvalidArgument(f"on_disk must be true or false, got {on_disk!r}", "on_disk")
    if spec.type not in ("ivf_flat", "auto"):
        raise InvalidArgument(f"on_disk needs index ivf_flat or auto (its inverted lists are "
                              f"what stays on disk), got {spec.type}", "on_disk")
    if quantization:
        raise InvalidArgument("on_disk and quantization do not combine: quantization keeps "
                              "codes in RAM, on_disk keeps the full vectors on disk", "on_disk")
    if device == "gpu":
        raise InvalidArgument("on_disk collections run on the CPU; leave device unset", "on_disk")
    return True, IndexSpec("ivf_flat", dict(spec.params))


def file_names(gen: int) -> tuple[str, str]:
    return f"ondisk-{gen:08d}.index", f"ondisk-{gen:08d}.ivfdata"


def _gens(directory: str) -> list[int]:
    if not os.path.isdir(directory):
        return []
    return sorted({int(n[7:15]) for n in os.listdir(directory)
                   if n.startswith("ondisk-") and n[7:15].isdigit()})


def _unlink(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def remove_gens(directory: str, keep: int, older_only: bool = False) -> None:
    """Delete base generations other than ``keep`` (``older_only``: those before it; a
    merge may be writing a newer one meanwhile; else scratch files too: an older
    version's retrain left them on a crash)."""
    for gen in _gens(directory):
        if gen != keep and (gen < keep or not older_only):
            _unlink(*(os.path.join(directory, name) for name in file_names(gen)))
    if not older_only and os.path.isdir(directory):
        _unlink(*(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.startswith("scratch-") and n.endswith(".ivfdata")))


def _sharing(ivf) -> faiss.IndexIVFFlat:
    """An empty IndexIVFFlat on ``ivf``'s quantizer (shared, not copied: ``ivf`` owns it)."""
    return faiss.IndexIVFFlat(ivf.quantizer, ivf.d, ivf.nlist, ivf.metric_type)


class DiskIvf(Ann):
    """A shard's on-disk IVF-Flat index: base (mapped, read-only) + delta (RAM) +
    tombstones, searched as one IndexIVFFlat (``index``). Writes run under the shard's
    write lock, searches under its read lock (module docstring)."""

    def __init__(self, directory: str, gen: int, base: faiss.Index, trained_on: int,
                 tombstones: set[int] | None, base_max: int, delta: faiss.Index | None = None):
        self.base_owner = base  # the object read_index returned (owns the mapping)
        self.base = faiss.extract_index_ivf(base)
        # no prefetch threads: FAISS starts 32 per search by default (+1.7 ms a single query,
        # measured); prefetch() asks the kernel for the probed lists instead
        od = faiss.downcast_InvertedLists(self.base.invlists)
        od.prefetch_nthread = 0
        self._map = _Mapping(od)
        self.delta = delta if delta is not None else _sharing(self.base)
        self.dir, self.gen, self.base_max = directory, gen, base_max
        self._stack = faiss.InvertedListsPtrVector()
        self._stack.push_back(self.base.invlists)
        self._stack.push_back(self.delta.invlists)
        both = faiss.HStackInvertedLists(2, self._stack.data())
        self._both = _sharing(self.base)
        self._both.replace_invlists(both, True)
        both.this.disown()
        super().__init__("ivf_flat", self._both, trained_on, set(tombstones or ()))
        self.fetch = None  # labels -> (prepared vectors, found) (the shard sets it: RocksDB)
        self.delta_min = 0  # bytes of delta before a merge (the shard sets it: options)
        self._count()

    def prefetch(self, queries: np.ndarray, nprobe: int | None) -> None:
        """Start reading the lists ``queries`` will probe (all with nprobe None)."""
        if nprobe is None or nprobe >= self.base.nlist:
            self._map.willneed(None)
        else:
            self._map.willneed(np.unique(self.base.quantizer.search(queries, nprobe)[1]))

    def _count(self) -> None:
        """``index`` is the base alone while the delta is empty: HStackInvertedLists copies
        every probed list per query (0.4 ms of a 0.8 ms search at 1M x 128, nprobe 32)."""
        self._both.ntotal = self.base.ntotal + self.delta.ntotal
        self.index = self._both if self.delta.ntotal else self.base

    @property
    def live(self) -> int:
        return int(self.base.ntotal) - len(self.tombstones) + int(self.delta.ntotal)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self.delta.add_with_ids(vectors, labels)
        self._count()

    def remove(self, labels: np.ndarray) -> None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        in_delta = labels > self.base_max
        if in_delta.any():
            self.delta.remove_ids(labels[in_delta])
        if not in_delta.all():
            self.tombstones.update(labels[~in_delta].tolist())
            self._selector = None
        self._count()

    def base_bytes(self) -> int:
        return int(self.base.ntotal) * (int(self.base.code_size) + 8)

    def needs_rebuild(self, live: int, spec: IndexSpec) -> bool:
        delta = int(self.delta.ntotal) * (int(self.delta.code_size) + 8)
        if delta and delta >= max(self.delta_min, DELTA_RATIO * self.base_bytes()):
            return True
        if len(self.tombstones) > TOMBSTONE_RATIO * max(int(self.base.ntotal), 1):
            return True
        return spec.param("nlist") == 0 and live > RETRAIN_GROWTH * self.trained_on

    def memory_bytes(self) -> int:
        """RAM it holds: the delta's vectors and ids, the quantizer, the tombstones (the
        mapped lists are page cache, not counted)."""
        quantizer = int(self.base.nlist) * int(self.base.d) * 4
        return int(self.delta.ntotal) * (int(self.delta.code_size) + 8) + quantizer \
            + 16 * len(self.tombstones)

    def frozen(self) -> "Frozen":
        """What a merge reads, taken under the shard's lock: the base (immutable), a copy of
        the delta and of the tombstones (writes go on meanwhile)."""
        return Frozen(self, faiss.clone_index(self.delta),
                      set(self.tombstones), self.live)


class _Mapping:
    """madvise over a base's mapped lists file. The whole mapping is MADV_RANDOM: a fault
    reads its page, not the device's readahead window around it (8 MiB on this VM's
    disk: a 32-list query then read 256 MB, thrashing a memory-limited server); the lists
    a search will probe are asked for with MADV_WILLNEED, read ahead exactly."""

    def __init__(self, od):
        self.size = int(od.totsize)
        self.addr = faiss.rev_swig_ptr(od.ptr, 1).ctypes.data if self.size else 0
        per = int(od.code_size) + 8
        spans = [(int(e.offset), int(e.capacity) * per) for e in
                 (od.lists.at(i) for i in range(od.nlist))]
        self.spans = np.array(spans, np.int64).reshape(-1, 2)
        self._advise(0, self.size, mmap.MADV_RANDOM)

    def _advise(self, start: int, length: int, advice: int) -> None:
        if length <= 0 or not self.addr:
            return
        lo = start - start % mmap.PAGESIZE
        _LIBC.madvise(self.addr + lo, start + length - lo, advice)  # advisory: errors ignored

    def willneed(self, lists) -> None:
        if lists is None:
            self._advise(0, self.size, mmap.MADV_WILLNEED)
            return
        for start, length in self.spans[lists[lists >= 0]].tolist():
            self._advise(start, length, mmap.MADV_WILLNEED)


class Frozen:
    def __init__(self, ann: DiskIvf, delta, tombstones: set[int], live: int):
        self.ann, self.delta, self.tombstones, self.live = ann, delta, tombstones, live


class DiskVectors(IvfVectors):
    """The exact store of an on-disk shard: exact and range search probe every list of
    base + delta (tombstones excluded), vectors by label come from RocksDB (``ann.fetch``)
    instead of a direct map."""

    def __init__(self, ann: DiskIvf):
        self.ann, self.d = ann, ann.index.d

    @property
    def ivf(self):
        return self.ann.index  # the base alone, or base + delta (DiskIvf._count)

    @property
    def ntotal(self) -> int:
        return self.ann.live

    def memory_bytes(self) -> int:
        return 0  # DiskIvf.memory_bytes counts what the shard holds

    def search(self, queries: np.ndarray, k: int, params=None):
        self.ann.prefetch(queries, None)  # a scan of every list
        return self.ivf.search(queries, k, params=self._params(params))

    def range_search(self, queries: np.ndarray, threshold: float, params=None):
        self.ann.prefetch(queries, None)
        return self.ivf.range_search(queries, threshold, params=self._params(params))

    def _params(self, params):
        sel = getattr(params, "sel", None) if params is not None else None
        sel = sel if sel is not None else self.ann.selector()
        nprobe = int(self.ivf.nlist)
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=sel) if sel is not None \
            else faiss.SearchParametersIVF(nprobe=nprobe)

    def _lists(self):
        yield from lists(self.ann.base.invlists, self.d)
        yield from lists(self.ann.delta.invlists, self.d)

    def labels(self) -> np.ndarray:
        parts = [ids.copy() for ids, _ in self._lists()]
        out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if self.ann.tombstones:
            out = out[~np.isin(out, np.fromiter(self.ann.tombstones, np.int64))]
        return out

    def snapshot(self):
        """Not for an on-disk store: a copy of every vector in RAM is what on_disk avoids
        (merges and retrains stream the lists instead)."""
        raise TypeError("an on-disk collection's vectors are not copied into RAM")

    def reconstruct_found(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found mask): RocksDB may have dropped a label still live here (a remove
        committed, waiting for the write lock); its row is zeros, marked not found."""
        labels = np.asarray(labels, np.int64).ravel()
        if not len(labels):
            return np.zeros((0, self.d), np.float32), np.zeros(0, bool)
        return self.ann.fetch(labels)

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """Vectors of live labels; one RocksDB no longer holds (its remove not applied here
        yet: a rare race) is read from the lists (a scan)."""
        labels = np.asarray(labels, np.int64).ravel()
        vecs, found = self.reconstruct_found(labels)
        if not found.all():
            missing = ~found
            for ids, lvecs in self._lists():
                for i in np.flatnonzero(np.isin(ids, labels[missing])):
                    at = missing & (labels == ids[i])
                    vecs[at], missing[at] = lvecs[i], False
            if missing.any():
                raise KeyError("a label is not stored")
        return vecs


def open_base(directory: str, gen: int, trained_on: int, base_max: int, tombstones=None,
              delta=None) -> DiskIvf:
    index = faiss.read_index(os.path.join(directory, file_names(gen)[0]), READ_FLAGS)
    return DiskIvf(directory, gen, index, trained_on, tombstones, base_max, delta)


def _sync(*paths: str) -> None:
    """fsync files and directories (a new generation is durable before any checkpoint
    names it)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _list_parts(sources: list, lst: int, code_size: int, tomb: np.ndarray):
    """(ids, codes) of list ``lst`` of each source, less the labels in ``tomb``."""
    for src in sources:
        n = src.list_size(lst)
        if not n:
            continue
        ids = faiss.rev_swig_ptr(src.get_ids(lst), n)
        codes = faiss.rev_swig_ptr(src.get_codes(lst), n * code_size).reshape(n, code_size)
        if len(tomb):
            keep = ~np.isin(ids, tomb)
            ids, codes = ids[keep], codes[keep]
        yield ids, codes


def ensure_space(directory: str, nbytes: int) -> None:
    """OSError(ENOSPC) unless ``directory``'s file system has ``nbytes`` free: FAISS writes
    its lists through a mapping of a sparse file, and a full disk there is SIGBUS (the
    process dies), not an error."""
    st = os.statvfs(directory)
    if st.f_bavail * st.f_frsize < nbytes:
        raise OSError(errno.ENOSPC, f"{nbytes} bytes needed for an on-disk base generation, "
                      f"{st.f_bavail * st.f_frsize} free", directory)


def _write_gen(directory: str, gen: int, template, sources: list, remove: set[int],
               trained_on: int, base_max: int) -> DiskIvf:
    """Write base generation ``gen``: the lists of ``sources`` (InvertedLists on
    ``template``'s quantizer) less the labels in ``remove``, concatenated list by list."""
    code_size, nlist = int(template.code_size), int(template.nlist)
    tomb = np.fromiter(remove, np.int64, len(remove))
    sizes = np.array([sum(len(ids) for ids, _ in _list_parts(sources, lst, code_size, tomb))
                      for lst in range(nlist)], np.uint64)

    def fill(od) -> None:
        for lst in range(nlist):
            pos = 0
            for ids, codes in _list_parts(sources, lst, code_size, tomb):
                if len(ids):
                    _put(od, lst, pos, ids, codes)
                    pos += len(ids)
    return _new_gen(directory, gen, template, sizes, fill, trained_on, base_max)


def _put(od, lst: int, pos: int, ids: np.ndarray, codes: np.ndarray) -> None:
    od.update_entries(lst, pos, len(ids), faiss.swig_ptr(np.ascontiguousarray(ids)),
                      faiss.swig_ptr(np.ascontiguousarray(codes)))


def _new_gen(directory: str, gen: int, template, sizes: np.ndarray, fill,
             trained_on: int, base_max: int) -> DiskIvf:
    """Base generation ``gen`` on ``template``'s quantizer: a fresh lists file whose list
    sizes are set first (never shrunk: FAISS's remove_ids on OnDiskInvertedLists corrupts
    a list it shrinks) and whose blocks are allocated before ``fill(lists)`` writes them
    (a full disk is an OSError, not SIGBUS); on any error the partial files are removed."""
    index_name, data_name = file_names(gen)
    data_path, index_path = os.path.join(directory, data_name), os.path.join(directory, index_name)
    code_size, nlist = int(template.code_size), int(template.nlist)
    total = int(sizes.sum()) * (code_size + 8)
    try:
        ensure_space(directory, total + (1 << 20))
        od = faiss.OnDiskInvertedLists(nlist, code_size, data_path)
        out = _sharing(template)
        out.replace_invlists(od, True)
        od.this.disown()
        od.update_totsize(max(total, code_size + 8))  # truncated, mapped (an empty map fails)
        od.set_all_lists_sizes(faiss.swig_ptr(sizes))  # offsets, compact
        fd = os.open(data_path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, max(total, code_size + 8))  # no holes left to fault on
        finally:
            os.close(fd)
        fill(od)
        out.ntotal = int(sizes.sum())
        faiss.write_index(out, index_path)
        del out  # unmaps the writable lists
        _sync(data_path, index_path, directory)
        return open_base(directory, gen, trained_on, base_max)
    except BaseException:
        _unlink(data_path, index_path)
        raise


def next_gen(directory: str) -> int:
    return max(_gens(directory), default=0) + 1


def from_ann(ann: Ann, directory: str) -> DiskIvf:
    """The first on-disk base, from an IVF-Flat index built in RAM (build_ann)."""
    ivf = faiss.downcast_index(ann.index)
    base_max = 0
    for ids, _ in lists(ivf.invlists, ivf.d):
        base_max = max(base_max, int(ids.max()))
    os.makedirs(directory, exist_ok=True)
    return _write_gen(directory, next_gen(directory), ivf, [ivf.invlists], set(), ann.trained_on,
                      base_max)


def merge(frozen: Frozen, spec: IndexSpec, metric: str) -> DiskIvf:
    """A new base generation holding the frozen base + delta less its tombstones (runs
    without the shard's lock; ops applied meanwhile are replayed by the caller). With
    nlist auto and a shard grown RETRAIN_GROWTH times, the lists are retrained."""
    ann = frozen.ann
    base_max = max(ann.base_max, int(max((ids.max() for ids, _ in lists(frozen.delta.invlists,
                                                                        ann.base.d)), default=0)))
    if spec.param("nlist") == 0 and frozen.live > RETRAIN_GROWTH * ann.trained_on:
        return stream(ann.dir, spec, metric, ann.base.d, frozen.live,
                      lambda: _frozen_chunks(frozen))
    return _write_gen(ann.dir, next_gen(ann.dir), ann.base,
                      [ann.base.invlists, frozen.delta.invlists], frozen.tombstones,
                      ann.trained_on, base_max)


def _frozen_chunks(frozen: Frozen):
    tomb = np.fromiter(frozen.tombstones, np.int64, len(frozen.tombstones))
    for ids, vecs in lists(frozen.ann.base.invlists, frozen.ann.base.d):
        if len(tomb):
            keep = ~np.isin(ids, tomb)
            ids, vecs = ids[keep], vecs[keep]
        yield ids, vecs
    yield from lists(frozen.delta.invlists, frozen.delta.d)


def stream(directory: str, spec: IndexSpec, metric: str, dim: int, n: int, chunks) -> DiskIvf:
    """A new base generation trained on a sample of ``chunks()`` (an iterable of (ids,
    vectors), read three times, the same each time: sample, assign, write). Each vector's
    list is found before any is written (8 bytes a vector kept), so the list sizes are
    known and the compact file is allocated whole first: one copy of the lists on disk,
    nothing grown through a sparse mapping."""
    nlist = spec.param("nlist") or auto_nlist(n)
    nlist = max(1, min(nlist, n // 4 or 1))
    fm = faiss_metric(metric)
    quantizer = faiss.IndexFlat(dim, fm)
    template = faiss.IndexIVFFlat(quantizer, dim, nlist, fm)
    template.own_fields = True
    quantizer.this.disown()
    rate = min(1.0, TRAIN_SAMPLE / max(n, 1))
    rng = np.random.default_rng(12345)
    sample = [vecs[rng.random(len(vecs)) < rate].copy() for _, vecs in chunks()]
    template.train(np.concatenate(sample) if sample else np.zeros((0, dim), np.float32))
    del sample
    assigned, sizes, base_max = [], np.zeros(nlist, np.uint64), 0
    for ids, vecs in chunks():
        lab = np.zeros(0, np.int64)
        if len(ids):
            lab = template.quantizer.assign(np.ascontiguousarray(vecs), 1).ravel()
            base_max = max(base_max, int(ids.max()))
        assigned.append(lab)
        sizes += np.bincount(lab, minlength=nlist).astype(np.uint64)

    def fill(od) -> None:
        pos = np.zeros(nlist, np.uint64)
        for (ids, vecs), lab in zip(chunks(), assigned, strict=True):
            if len(ids) != len(lab):
                raise RuntimeError("the vectors changed while an on-disk base was written")
            order = np.argsort(lab, kind="stable")
            lab, ids = lab[order], ids[order]
            codes = np.ascontiguousarray(vecs[order]).view(np.uint8)
            starts = np.flatnonzero(np.diff(lab, prepend=-1))  # where each list's run begins
            for a, b in zip(starts, [*starts[1:], len(lab)]):
                lst = int(lab[a])
                if pos[lst] + (b - a) > sizes[lst]:
                    raise RuntimeError("the vectors changed while an on-disk base was written")
                _put(od, lst, int(pos[lst]), ids[a:b], codes[a:b])
                pos[lst] += b - a
    os.makedirs(directory, exist_ok=True)  # a shard never checkpointed has none yet
    return _new_gen(directory, next_gen(directory), template, sizes, fill, n, base_max)


def dump(tmp: str, ann: DiskIvf, write_index) -> tuple[dict, dict]:
    """Checkpoint files of ``ann`` in ``tmp`` (a pending checkpoint dir): hard links to the
    base's two files (the lists file is checked by size, not read again), the delta
    written by ``write_index`` (path, index) -> {size, crc32}. Returns (files, ann info)."""
    index_name, data_name = file_names(ann.gen)
    files = {}
    for name, link in ((index_name, "base.index"), (data_name, "base.ivfdata")):
        os.link(os.path.join(ann.dir, name), os.path.join(tmp, link))
    files["base.ivfdata"] = {"size": os.path.getsize(os.path.join(tmp, "base.ivfdata")),
                             "crc32": None}
    with open(os.path.join(tmp, "base.index"), "rb") as f:
        raw = f.read()
    files["base.index"] = {"size": len(raw), "crc32": zlib.crc32(raw)}
    files["delta.faiss"] = write_index(os.path.join(tmp, "delta.faiss"), ann.delta)
    return files, {"ondisk": {"gen": ann.gen, "base_max": ann.base_max}}


def load(ckpt: str, shard_dir: str, info: dict, files: dict, trained_on: int,
         tombstones: set[int], read_delta) -> DiskIvf:
    """The DiskIvf a checkpoint names: its base files linked back to the shard dir unless
    the very files are there (a restored snapshot, a copied data dir, another base with that
    number), opened mapped; other generations and scratch files removed; the delta read
    by ``read_delta(name)`` (checksum verified)."""
    gen = int(info["gen"])
    for name, link in zip(file_names(gen), ("base.index", "base.ivfdata")):
        src, dst = os.path.join(ckpt, link), os.path.join(shard_dir, name)
        if os.path.getsize(src) != files[link]["size"]:
            raise ValueError(f"{link} fails its size check")
        if os.path.exists(dst) and not os.path.samefile(src, dst):
            os.unlink(dst)  # another base numbered alike (after a rebuild restarted at 1)
        if not os.path.exists(dst):
            os.link(src, dst)
    delta = read_delta("delta.faiss")
    remove_gens(shard_dir, gen)
    return open_base(shard_dir, gen, trained_on, int(info["base_max"]), tombstones, delta)


def rebuild(directory: str, spec: IndexSpec, metric: str, dim: int, n: int, chunks) -> DiskIvf:
    """A base generation from every live vector (``chunks()``: (labels, prepared vectors)
    from RocksDB, read three times) when no checkpoint is usable."""
    remove_gens(directory, -1)
    return stream(directory, spec, metric, dim, n, chunks)
