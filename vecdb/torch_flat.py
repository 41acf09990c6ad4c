"""Exact top-k search in torch over vectors resident on one device (docs/gpu.md).

Used as a shard's exact mirror when the collection runs on a GPU and FAISS has
no GPU support but torch has CUDA. The device is a constructor argument, so the
same code runs (and is tested) on torch's "cpu" device.

- Storage: rows of fp32 or fp16 vectors in label order (``gpu_index.Rows``),
  with a liveness mask on the device; deleted/replaced rows score -inf until
  compaction. Capacity grows by 25% steps (``planned_bytes`` predicts it exactly,
  for the GPU memory budget).
- Search: queries x chunk of rows matmul, top-k per chunk, merged; the chunk
  size keeps the score block under ``max_score_elems``. fp16 storage computes
  in fp16 on CUDA (tensor cores) and re-scores the k winners in fp32; on other
  devices it computes in fp32 from the fp16 rows.
- Scores follow the engine: ip (cosine vectors arrive normalized) higher is
  better; l2 is the squared distance, lower is better, computed as
  |q|^2 - 2 q.x + |x|^2 (like FAISS's batched path) and clamped at 0.
- Not thread-safe on its own: mutations under the shard's write lock, searches
  concurrently under its read lock.
"""
from __future__ import annotations

import numpy as np
import torch

from .gpu_index import Rows

MIN_ROWS = 1024


def capacity_for(rows: int) -> int:
    return max(MIN_ROWS, rows + rows // 4)


class TorchFlat:
    def __init__(self, dim: int, metric: str, device: str = "cpu", fp16: bool = False,
                 max_score_elems: int | None = None):
        self.dim, self.l2 = dim, metric == "l2"
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        cuda = self.device.type == "cuda"
        self.compute = self.dtype if cuda else torch.float32
        self.max_score_elems = max_score_elems or (1 << 28 if cuda else 1 << 24)
        self.rows = Rows()
        self.cap = 0
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
    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
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
            x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(self.device)
            self.data[start:end] = x.to(self.dtype)
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

    # ---- search (shard read lock held) --------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, labels int64), each (q, k); label -1 (score NaN) where fewer
        than k live rows exist."""
        nq, n = len(queries), self.rows.n
        if n == 0 or k == 0:
            return np.full((nq, k), np.nan, np.float32), np.full((nq, k), -1, np.int64)
        with torch.no_grad():
            q32 = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
            vals, rows = self._topk(q32.to(self.compute), min(k, n))
            if self.compute != torch.float32:  # fp16 on CUDA: exact fp32 scores of the winners
                vals, rows = self._rescore(q32, rows)
            if self.l2:
                vals = (q32.pow(2).sum(1, keepdim=True) - vals).clamp_min_(0)
            vals, rows = vals.float().cpu().numpy(), rows.cpu().numpy()
        labels = self.rows.labels[rows]
        if self.l2:
            bad = ~np.isfinite(vals)
        else:
            bad = np.isneginf(vals) | np.isnan(vals)
        vals[bad], labels[bad] = np.nan, -1
        if vals.shape[1] < k:  # fewer rows than k
            pad = k - vals.shape[1]
            vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=np.nan)
            labels = np.pad(labels, ((0, 0), (0, pad)), constant_values=-1)
        return vals, labels

    def _block(self, q, start: int, end: int):
        """Scores of queries x rows[start:end]: higher is better (l2: 2q.x - |x|^2)."""
        x = self.data[start:end]
        s = q @ (x if x.dtype == q.dtype else x.to(q.dtype)).T
        if self.l2:
            s = 2 * s.float() - self.sqnorm[start:end]
        return s.masked_fill_(~self.alive[start:end], float("-inf"))

    def _topk(self, q, k: int):
        n = self.rows.n
        chunk = max(k, min(n, self.max_score_elems // max(len(q), 1)))
        best_v = best_i = None
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            v, i = self._block(q, start, end).topk(min(k, end - start), dim=1)
            i += start
            if best_v is None:
                best_v, best_i = v, i
            else:
                v, j = torch.cat([best_v, v], 1).topk(k, dim=1)
                best_v, best_i = v, torch.cat([best_i, i], 1).gather(1, j)
        return best_v, best_i

    def _rescore(self, q32, rows):
        """fp32 scores of the chosen rows, re-sorted (dead rows stay -inf)."""
        x = self.data[rows].float()  # (q, k, dim)
        s = torch.einsum("qkd,qd->qk", x, q32)
        if self.l2:
            s = 2 * s - self.sqnorm[rows]
        s = s.masked_fill_(~self.alive[rows], float("-inf"))
        s, order = s.sort(dim=1, descending=True)
        return s, rows.gather(1, order)
