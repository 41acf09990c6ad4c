"""Exact top-k search in torch over vectors resident on one device (docs/gpu.md).

Used as a shard's exact mirror when the collection runs on a GPU and FAISS has
no GPU support but torch has CUDA. The device is a constructor argument, so the
same code runs (and is tested) on torch's "cpu" device.

- Storage: rows of fp32 or fp16 vectors in label order (``gpu_mirrors.Rows``),
  with a liveness mask on the device; deleted/replaced rows score -inf until
  compaction. Capacity grows by 25% steps (``planned_bytes`` predicts it exactly,
  for the GPU memory budget).
- Search: blocks of queries x chunks of rows: matmul, top-k per chunk, merged. The
  blocks are sized so that one search's temporaries (scores, the l2 conversion, the
  re-score gather) stay under ``scratch_bytes``; ``slots`` (a semaphore per GPU)
  bounds how many searches run at once, so a GPU holds at most slots x scratch of
  temporaries (counted in the budget: ``GpuContext.reserve_scratch``).
- fp16 storage computes in fp16 on CUDA (tensor cores). Its scores are fp16 too
  (steps of ~5e-4 near 1), so the k boundary is unreliable: it keeps
  ``overfetch(k)`` = max(2k, k + 64) candidates, re-scores them in fp32 and keeps
  the k best. A search whose scores could pass fp16's range (|q| |x| near 65504,
  ip/l2 with large vectors) computes in fp32 instead; fp16 storage refuses vectors
  with a component past that range.
- Scores follow the engine: ip (cosine vectors arrive normalized) higher is
  better; l2 is the squared distance, lower is better, computed as
  |q|^2 - 2 q.x + |x|^2 (like FAISS's batched path) and clamped at 0.
- Not thread-safe on its own: mutations under the shard's write lock, searches
  concurrently under its read lock.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .gpu_mirrors import Rows, padded

MIN_ROWS = 1024
FP16_MAX = 65504.0
FP16_SAFE = 16384.0  # compute in fp16 only while |q| |x| (and |q|, |x|) stay below this
DEFAULT_SCRATCH = 256 << 20


def capacity_for(rows: int) -> int:
    return max(MIN_ROWS, rows + rows // 4)


def overfetch(k: int) -> int:
    """Candidates an fp16 search keeps before the fp32 re-score."""
    return max(2 * k, k + 64)


class TorchFlat:
    def __init__(self, dim: int, metric: str, device: str = "cpu", fp16: bool = False,
                 max_score_elems: int | None = None, scratch_bytes: int = DEFAULT_SCRATCH,
                 slots=None, fp16_compute: bool | None = None):
        self.dim, self.l2 = dim, metric == "l2"
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        cuda = self.device.type == "cuda"
        if fp16_compute is None:
            fp16_compute = fp16 and cuda
        self.half_compute = bool(fp16_compute and fp16)
        self.max_score_elems = max_score_elems
        self.scratch_bytes = scratch_bytes
        self.slots = slots
        self.rows = Rows()
        self.cap = 0
        self.max_norm = 0.0  # largest |x| ever stored (an upper bound after deletes)
        self.data = torch.empty((0, dim), dtype=self.dtype, device=self.device)
        self.sqnorm = torch.empty(0, dtype=torch.float32, device=self.device)  # l2 only
        self.alive = torch.empty(0, dtype=torch.bool, device=self.device)
        self.row_bytes = dim * self.data.element_size() + 1 + (4 if self.l2 else 0)

    @property
    def nbytes(self) -> int:
        return self.cap * self.row_bytes

    def _cap_after(self, n_removed: int, n_added: int) -> tuple[bool, int]:
        compact, rows = self.rows.plan(n_removed, n_added)
        if rows > self.cap or (compact and 2 * capacity_for(rows) < self.cap):
            return compact, capacity_for(rows)
        return compact, self.cap

    def planned_bytes(self, n_removed: int, n_added: int) -> int:
        return self._cap_after(n_removed, n_added)[1] * self.row_bytes

    # ---- mutations (shard write lock held) ---------------------------------------
    def load(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self.apply(np.zeros(0, np.int64), labels, vectors)

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(added) and self.dtype == torch.float16 and np.abs(vecs).max(initial=0) > FP16_MAX:
            raise ValueError(f"a vector component is past fp16's range ({FP16_MAX:g}); "
                             "gpu_fp16 cannot hold it")
        compact, cap = self._cap_after(len(removed), len(added))
        if len(removed):
            dead = self.rows.kill(np.asarray(removed, np.int64))
            if len(dead):
                self.alive[torch.from_numpy(dead).to(self.device)] = False
        if compact:
            keep = torch.from_numpy(self.rows.compact()).to(self.device)
            m = len(keep)
            self.data[:m] = self.data[keep]
            if self.l2:
                self.sqnorm[:m] = self.sqnorm[keep]
            self.alive[:m], self.alive[m:] = True, False
        if cap != self.cap:
            self._resize(cap)
        if len(added):
            start, end = self.rows.append(np.asarray(added, np.int64))
            self.max_norm = max(self.max_norm, float(np.sqrt((vecs * vecs).sum(1).max())))
            self.data[start:end] = torch.from_numpy(vecs).to(self.device).to(self.dtype)
            self.alive[start:end] = True
            if self.l2:
                self.sqnorm[start:end] = self.data[start:end].float().pow(2).sum(1)

    def _resize(self, cap: int) -> None:
        n = self.rows.n
        data = torch.empty((cap, self.dim), dtype=self.dtype, device=self.device)
        alive = torch.zeros(cap, dtype=torch.bool, device=self.device)
        data[:n], alive[:n] = self.data[:n], self.alive[:n]
        if self.l2:
            sq = torch.zeros(cap, dtype=torch.float32, device=self.device)
            sq[:n] = self.sqnorm[:n]
            self.sqnorm = sq
        self.data, self.alive, self.cap = data, alive, cap

    def close(self) -> None:
        self.data = self.sqnorm = self.alive = None

    # ---- search (shard read lock held) --------------------------------------------
    def use_half(self, queries: np.ndarray) -> bool:
        """fp16 compute for these queries: fp16 storage on CUDA, and no score can overflow."""
        if not self.half_compute:
            return False
        qn = float(np.sqrt((queries * queries).sum(1).max(initial=0)))
        return qn < FP16_SAFE and self.max_norm < FP16_SAFE and qn * self.max_norm < FP16_SAFE

    def plan(self, nq: int, kf: int, half: bool) -> tuple[int, int]:
        """(queries per block, rows per chunk) keeping one search's temporaries under
        ``scratch_bytes`` (never below 1 query x ``kf`` rows)."""
        conv = self.dtype != (torch.float16 if half else torch.float32)  # rows cast per chunk
        elem = 2 * ((2 if half else 4) + (4 if half and self.l2 else 0))  # x2: topk/mask slack
        per_query = kf * (self.dim * 4 + 16) if half else 0  # the fp32 re-score gather
        budget = self.scratch_bytes
        qb = max(1, min(nq, budget // max(2 * (kf * elem + per_query), 1)))
        chunk = (budget - qb * per_query) // (qb * elem + (self.dim * 4 if conv else 0))
        if self.max_score_elems:
            chunk = min(chunk, self.max_score_elems // qb)
        return qb, int(max(kf, min(self.rows.n, chunk)))

    def scratch_of(self, qb: int, chunk: int, kf: int, half: bool) -> int:
        """Bytes of temporaries a (qb, chunk) block holds at most (what ``plan`` bounds)."""
        conv = self.dtype != (torch.float16 if half else torch.float32)
        elem = 2 * ((2 if half else 4) + (4 if half and self.l2 else 0))
        return (qb * chunk * elem + (chunk * self.dim * 4 if conv else 0)
                + (qb * kf * (self.dim * 4 + 16) if half else 0))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, labels int64), each (q, k); label -1 (score NaN) where fewer
        than k live rows exist."""
        nq, n = len(queries), self.rows.n
        if n == 0 or k == 0:
            return np.full((nq, k), np.nan, np.float32), np.full((nq, k), -1, np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        half = self.use_half(queries)
        kk = min(k, n)
        kf = min(overfetch(kk), n) if half else kk
        qb, chunk = self.plan(nq, kf, half)
        out_v, out_r = [], []
        with (self.slots or contextlib.nullcontext()), torch.no_grad():
            for s in range(0, nq, qb):
                v, r = self._search_block(queries[s:s + qb], kk, kf, chunk, half)
                out_v.append(v)
                out_r.append(r)
        vals, rows = np.concatenate(out_v), np.concatenate(out_r)
        labels = self.rows.labels[rows]
        bad = ~np.isfinite(vals) if self.l2 else (np.isneginf(vals) | np.isnan(vals))
        vals[bad], labels[bad] = np.nan, -1
        return padded(vals, labels, k)

    def _search_block(self, queries: np.ndarray, k: int, kf: int, chunk: int, half: bool):
        q32 = torch.from_numpy(queries).to(self.device)
        vals, rows = self._topk(q32.to(torch.float16 if half else torch.float32), kf, chunk)
        if half:  # fp16 scores: re-score the kf candidates in fp32, keep the k best
            vals, rows = self._rescore(q32, rows, k)
        if self.l2:
            vals = (q32.pow(2).sum(1, keepdim=True) - vals.float()).clamp_min_(0)
        return vals.float().cpu().numpy(), rows.cpu().numpy()

    def _block(self, q, start: int, end: int):
        """Scores of queries x rows[start:end]: higher is better (l2: 2q.x - |x|^2)."""
        x = self.data[start:end]
        s = q @ (x if x.dtype == q.dtype else x.to(q.dtype)).T
        if self.l2:
            s = s.float().mul_(2).sub_(self.sqnorm[start:end])
        return s.masked_fill_(~self.alive[start:end], float("-inf"))

    def _topk(self, q, k: int, chunk: int):
        n = self.rows.n
        best_v = best_i = None
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            v, i = self._block(q, start, end).topk(min(k, end - start), dim=1)
            i += start
            if best_v is None:
                best_v, best_i = v, i
            else:
                v, j = torch.cat([best_v, v], 1).topk(min(k, best_v.shape[1] + v.shape[1]), dim=1)
                best_v, best_i = v, torch.cat([best_i, i], 1).gather(1, j)
        return best_v, best_i

    def _rescore(self, q32, rows, k: int):
        """fp32 scores of the candidate rows, the k best in order (dead rows stay -inf)."""
        x = self.data[rows].float()  # (q, kf, dim): bounded by plan()
        s = torch.einsum("qkd,qd->qk", x, q32)
        del x
        if self.l2:
            s = 2 * s - self.sqnorm[rows]
        s = s.masked_fill_(~self.alive[rows], float("-inf"))
        s, order = s.topk(min(k, s.shape[1]), dim=1)
        return s, rows.gather(1, order)
