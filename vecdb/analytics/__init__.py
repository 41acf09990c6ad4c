"""Analytics over a collection's vectors: k-means clustering (a background job),
outliers and near-duplicates. Each module's docstring states its algorithm and cost;
population.py the points they work on and the distances they report."""
from .duplicates import DEFAULT_BATCH, DuplicatesChunk, duplicates
from .kmeans import ClusterJob, ClusterResult, ClusterSpec, Jobs
from .outliers import Outlier, OutliersResult, outliers

__all__ = ["ClusterJob", "ClusterResult", "ClusterSpec", "DEFAULT_BATCH", "DuplicatesChunk",
           "Jobs", "Outlier", "OutliersResult", "duplicates", "outliers"]
