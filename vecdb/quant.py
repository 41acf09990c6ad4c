"""Quantized ANN indexes: compact codes in RAM, searched for k * rescore candidates that
the shard then re-scores exactly from its on-disk vectors (vecdb/quant_store.py).

  quantization  index hnsw                        index ivf_flat / auto
  sq8           IndexHNSWSQ (8 bits a dim)        IndexIVFScalarQuantizer (QT_8bit)
  rabitq        (not offered: a graph built on    IndexIVFRaBitQ (1 bit a dim + 2 floats
                1-bit distances reached 0.89      a vector)
                recall@10 at 200k x 384)
  binary        IndexBinaryHNSW over sign bits    (not offered: FAISS binary IVF takes no
                of (x - mean)                     search parameters, so no filters;
                                                  auto becomes hnsw at creation)

Codes per vector at d=384: sq8 384 B, rabitq 56 B, binary 48 B (float32: 1536 B); HNSW
adds its links (about 2*M*4 B a vector at level 0). Deletes: IVF removes codes, HNSW
tombstones them (vecdb.index.Ann). Training samples the on-disk vectors (no full copy
in RAM); adds go in chunks.
"""
from __future__ import annotations

import faiss
import numpy as np

from .errors import InvalidArgument
from .index import Ann, auto_nlist, faiss_metric
from .types import QUANTIZATIONS, IndexSpec

MAX_RESCORE = 1000

TRAIN_SAMPLE = 65_536
ADD_CHUNK = 65_536


def validate(quantization, rescore, spec: IndexSpec, device: str) -> tuple[str, int, IndexSpec]:
    """(quantization, rescore, index spec) of a new collection; InvalidArgument naming
    ``quantization`` or ``rescore`` when they do not fit together or with the index."""
    quantization = quantization or ""
    if quantization and quantization not in QUANTIZATIONS:
        raise InvalidArgument(f"quantization must be one of {', '.join(QUANTIZATIONS)} (or unset), "
                              f"got {quantization!r}", "quantization")
    if rescore is None:
        rescore = 0
    if isinstance(rescore, bool) or not isinstance(rescore, (int, np.integer)) \
            or not 0 <= rescore <= MAX_RESCORE:
        raise InvalidArgument(f"rescore must be an integer in 1..{MAX_RESCORE} (0/unset = the "
                              f"quantization's default), got {rescore!r}", "rescore")
    if not quantization:
        if rescore:
            raise InvalidArgument("rescore needs a quantization (sq8, rabitq or binary)", "rescore")
        return "", 0, spec
    if spec.type in ("flat", "ivf_pq"):
        why = "keeps no codes" if spec.type == "flat" else "is already quantized"
        raise InvalidArgument(f"quantization {quantization} needs index hnsw, ivf_flat or auto; "
                              f"{spec.type} {why}", "quantization")
    if quantization == "binary":
        if spec.type == "ivf_flat":
            raise InvalidArgument("quantization binary needs index hnsw (or auto)", "quantization")
        if spec.type == "auto":
            if set(spec.params) - {"build_threshold"}:
                raise InvalidArgument("quantization binary runs on an hnsw index: give index hnsw "
                                      "to set its parameters", "quantization")
            spec = IndexSpec("hnsw", dict(spec.params))
    if quantization == "rabitq" and spec.type == "hnsw":
        raise InvalidArgument("quantization rabitq runs on inverted lists: give index ivf_flat "
                              "or auto (hnsw: use sq8 or binary)", "quantization")
    if device == "gpu":
        raise InvalidArgument("quantized collections run on the CPU (their vectors stay on "
                              "disk); leave device unset", "quantization")
    return quantization, int(rescore), spec


def ann_kind(spec: IndexSpec) -> str:
    """The graph/list structure a quantized collection builds: hnsw or ivf_flat."""
    return "hnsw" if spec.type == "hnsw" else "ivf_flat"


class BinaryCodes:
    """A float-vector face over IndexBinaryIDMap(IndexBinaryHNSW): vectors become the sign
    bits of (x - center), ``center`` the mean of the training sample. Distances are
    Hamming distances (lower is better); they are only used to pick candidates."""

    def __init__(self, dim: int, center: np.ndarray, index: faiss.IndexBinary):
        self.center = np.asarray(center, np.float32)
        self.d = dim
        self.index = index

    def codes(self, x: np.ndarray) -> np.ndarray:
        bits = np.zeros((len(x), _bits(self.d)), bool)
        bits[:, :self.d] = x > self.center
        return np.packbits(bits, axis=1)

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def add_with_ids(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.index.add_with_ids(self.codes(x), labels)

    def search(self, q: np.ndarray, k: int, params=None):
        d, i = self.index.search(self.codes(q), k, params=params)
        return d.astype(np.float32), i


def _bits(dim: int) -> int:
    return (dim + 7) // 8 * 8


def new_index(quantization: str, spec: IndexSpec, metric: str, dim: int, n: int,
              sample: np.ndarray):
    """An empty, trained quantized index (IDMap-wrapped) for about ``n`` vectors."""
    fm = faiss_metric(metric)
    if quantization == "binary":
        inner = faiss.IndexBinaryHNSW(_bits(dim), spec.param("M"))
        inner.hnsw.efConstruction = spec.param("ef_construction")
        index = faiss.IndexBinaryIDMap(inner)
        index.own_fields = True
        inner.this.disown()
        return BinaryCodes(dim, sample.mean(axis=0), index)
    if ann_kind(spec) == "hnsw":
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, spec.param("M"), fm)
        inner.hnsw.efConstruction = spec.param("ef_construction")
    else:
        nlist = spec.param("nlist") or auto_nlist(n)
        nlist = max(1, min(nlist, n // 4 or 1))
        quantizer = faiss.IndexFlat(dim, fm)
        if quantization == "sq8":
            inner = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, fm)
        else:
            inner = faiss.IndexIVFRaBitQ(quantizer, dim, nlist, fm)
        inner.own_fields = True
        quantizer.this.disown()
    inner.train(sample)
    index = faiss.IndexIDMap(inner)
    index.own_fields = True
    inner.this.disown()
    return index


def build(quantization: str, spec: IndexSpec, metric: str, store, upto: int) -> Ann:
    """Train on a sample of the store's first ``upto`` rows, then add them chunk by chunk
    (runs without the shard lock: rows appended later reach the index as pending ops)."""
    labels = store.labels()
    labels = labels[labels <= store.row_labels(upto - 1)] if upto else labels[:0]
    n = len(labels)
    rng = np.random.default_rng(12345)
    pick = np.sort(rng.choice(n, min(n, TRAIN_SAMPLE), replace=False))
    sample = store.reconstruct_batch(labels[pick])
    index = new_index(quantization, spec, metric, store.d, n, sample)
    del sample
    for rows, vecs in store.scan(ADD_CHUNK, upto):
        index.add_with_ids(vecs, store.row_labels(rows))
    return Ann(ann_kind(spec), index, trained_on=n, quant=quantization)


def index_bytes(index) -> int:
    """Approximate host RAM of a FAISS index: codes, graph links, list ids, id maps."""
    if isinstance(index, BinaryCodes):
        return index.center.nbytes + index_bytes(index.index)
    index = faiss.downcast_IndexBinary(index) if isinstance(index, faiss.IndexBinary) \
        else faiss.downcast_index(index)
    n = int(index.ntotal)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexBinaryIDMap,
                          faiss.IndexBinaryIDMap2)):
        extra = n * 16 if isinstance(index, (faiss.IndexIDMap2, faiss.IndexBinaryIDMap2)) else n * 8
        return extra + index_bytes(index.index)
    if isinstance(index, (faiss.IndexHNSW, faiss.IndexBinaryHNSW)):
        h = index.hnsw
        graph = (h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4)
        return graph + index_bytes(index.storage)
    if isinstance(index, faiss.IndexIVF):
        return n * (int(index.code_size) + 8) + index_bytes(index.quantizer)
    if isinstance(index, faiss.IndexFlatCodes) or isinstance(index, faiss.IndexBinary):
        return n * int(index.code_size)
    return n * int(index.d) * 4
