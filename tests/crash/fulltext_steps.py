"""The deterministic text workload of the full-text crash test (a pure function of the
step number), and the model of what the first n steps leave stored."""
from __future__ import annotations

import random

import numpy as np

COLLECTION = "texts"
DIM = 4
STEPS = 400
WORDS = ["pump", "valve", "motor", "seal", "farm", "water", "spare", "part"]


def text(i: int, s: int) -> str:
    rng = random.Random(i * 1000 + s)
    return " ".join(rng.choices(WORDS, k=rng.randrange(2, 8))) + f" code{i}v{s}x"


def step(s: int):
    """(ids, vectors, texts, doomed ids) of step s: 20 upserts over a pool of 300 ids
    (so replacements are common), then 3 deletes."""
    rng = random.Random(s)
    picked = rng.sample(range(300), 23)
    ids = [f"p{i}" for i in picked[:20]]
    vecs = np.random.default_rng(s).standard_normal((20, DIM)).astype(np.float32)
    return ids, vecs, [text(i, s) for i in picked[:20]], [f"p{i}" for i in picked[20:]]


def model(n: int, upserted: bool = False) -> dict[str, str]:
    """id -> text after the first n steps (``upserted``: and the upsert of step n)."""
    out: dict[str, str] = {}
    for s in range(n + upserted):
        ids, _, txts, doomed = step(s)
        out.update(zip(ids, txts))
        if s < n:
            for pid in doomed:
                out.pop(pid, None)
    return out
