"""2-D projections (PCA by SVD; UMAP when umap-learn is installed) and the scatter plot."""
from __future__ import annotations

from collections import Counter
from numbers import Real
from typing import Any, Sequence

import numpy as np

from .context import CliError, require

MAX_CATEGORIES = 12


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows of ``x`` (zero-padded if dim < 2)."""
    x = np.asarray(x, dtype=np.float64)
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = centered @ vt[:2].T
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))


def project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "pca":
        return pca_2d(x)
    umap = require("umap", "--method umap (pip install umap-learn)")
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)


def is_numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, Real) and not isinstance(v, bool)
                                 for v in present)


def draw(xy: np.ndarray, values: Sequence[Any] | None, field: str | None, out: str,
         title: str, size: tuple[int, int], dpi: int = 100) -> None:
    """Scatter ``xy`` into a PNG of exactly ``size`` pixels; numeric values get a
    colorbar, others a legend (the most common categories, the rest as "other")."""
    mpl = require("matplotlib", "map")
    mpl.use("Agg")
    plt = require("matplotlib.pyplot", "map")
    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    point = max(3.0, min(20.0, 20000.0 / max(1, len(xy))))
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=point, alpha=0.7, linewidths=0)
    elif is_numeric(values):
        c = np.array([np.nan if v is None else float(v) for v in values])
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=c, s=point, cmap="viridis", alpha=0.8,
                        linewidths=0, plotnonfinite=True)
        fig.colorbar(sc, ax=ax, label=field)
    else:
        labels = ["(none)" if v is None else str(v) for v in values]
        top = sorted(lab for lab, _ in Counter(labels).most_common(MAX_CATEGORIES))
        labels = [lab if lab in top else "other" for lab in labels]
        named = [lab for lab in top if lab != "(none)"]
        cmap = plt.get_cmap("tab20" if len(named) > 10 else "tab10")
        colors = {lab: cmap(i % cmap.N) for i, lab in enumerate(named)}
        colors.update({"other": "0.55", "(none)": "0.8"})  # greys, drawn first (underneath)
        for lab in [x for x in ("(none)", "other") if x in labels] + named:
            mask = np.array([x == lab for x in labels])
            ax.scatter(xy[mask, 0], xy[mask, 1], s=point, alpha=0.8, linewidths=0,
                       color=colors[lab], label=lab)
        ax.legend(title=field, loc="best", fontsize="small", markerscale=max(1, 6 / point))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    try:
        fig.savefig(out, dpi=dpi, format="png")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
