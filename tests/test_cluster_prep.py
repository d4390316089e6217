"""cluster_prep: label alignment (the seed's off-by-one), centers, HDBSCAN noise, cache, speed."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from cluster_prep.build import build_clusters, compute_clusters
from cluster_prep.config import ClusterConfig
from cluster_prep.reduce import reduce_embeddings
from datasets.prepared import PreparedDataset


def blob_dataset(n_items: int = 300, n_blobs: int = 6, width: int = 32, hidden: int = 16,
                 seed: int = 0, duplicates: int = 0) -> tuple[PreparedDataset, np.ndarray]:
    """Items in well-separated Gaussian blobs, blob of each item drawn at random (so no two
    neighbouring ids need share a blob); returns the dataset and each item's blob (0-based)."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, n_blobs, n_items)
    means = rng.normal(0, 20, (n_blobs, width))
    emb = means[blob] + rng.normal(0, 0.5, (n_items, width))
    for j in range(duplicates):                     # item 2j+1 copies item 2j (0-based rows)
        emb[2 * j + 1] = emb[2 * j]
        blob[2 * j + 1] = blob[2 * j]
    text = np.vstack([np.zeros((1, width)), emb]).astype(np.float32)
    pca = np.vstack([np.zeros((1, hidden)), rng.normal(0, 1, (n_items, hidden))]).astype(np.float32)
    seq = rng.integers(1, n_items + 1, 40)
    data = PreparedDataset(
        name="blobs", n_users=4, n_items=n_items, seq_items=seq.astype(np.int64),
        seq_offsets=np.arange(0, 41, 10, dtype=np.int64), item_text_emb=text, item_pca=pca,
        item_train_count=np.zeros(n_items + 1, np.int64), tail_items=np.zeros(n_items + 1, bool),
        tail_users=np.zeros(4, bool), similar_users=np.zeros((4, 1), np.int64),
        valid_negatives=np.ones((4, 1), np.int64), test_negatives=np.ones((4, 1), np.int64),
        meta={"hash": f"blobs-{n_items}-{n_blobs}-{seed}-{duplicates}"})
    return data, blob


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two labelings group the items identically (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_labels_are_aligned_with_item_ids(tmp_path):
    data, blob = blob_dataset(duplicates=20)
    cfg = ClusterConfig(method="kmeans", n_clusters=6, dim=4, seed=1)
    art = build_clusters(data, cfg, tmp_path)
    n = data.n_items
    assert art.labels.shape == (n + 2,) and art.labels.dtype == np.int64
    assert art.labels[0] == -1 and art.labels[n + 1] == -1
    assert not art.constrained[0] and not art.constrained[n + 1]
    labels = art.labels[1:n + 1]
    # item i (1-based) is row i - 1 of `blob`: the clusters must reproduce the blobs exactly;
    # reading a neighbour's label (labels[i + 1]) would scramble them.
    assert same_partition(labels, blob)
    assert not same_partition(art.labels[2:n + 2], blob)
    for j in range(20):                             # identical embeddings share a label
        assert art.labels[2 * j + 1] == art.labels[2 * j + 2]
    # each item's label is the cluster whose low-dim center is nearest its own reduced vector
    low = reduce_embeddings(data.item_text_emb, n, cfg.dim, cfg.seed)
    d2 = ((low[:, None, :] - art.centers_low[None].astype(np.float64)) ** 2).sum(-1)
    own = d2[np.arange(n), labels]
    assert np.all(own <= d2.min(axis=1) + 1e-4 * (1 + d2.min(axis=1)))


def test_centers_are_member_means_and_targets_hard(tmp_path):
    data, _ = blob_dataset(seed=3)
    art = build_clusters(data, ClusterConfig(n_clusters=5, dim=3), tmp_path)
    pca = data.item_pca.astype(np.float64)
    assert art.centers.shape == (art.n_clusters, pca.shape[1])
    for c in range(art.n_clusters):
        members = np.flatnonzero(art.labels == c)
        assert members.min() >= 1 and members.max() <= data.n_items
        np.testing.assert_allclose(art.centers[c], pca[members].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(art.item_targets[members], np.repeat(art.centers[c:c + 1], members.size, 0))
    assert art.constrained[1:-1].all()
    assert not art.item_targets[0].any() and not art.item_targets[-1].any()
    assert sum(art.quality["sizes"]) == data.n_items
    assert art.quality["noise_share"] == 0.0 and art.quality["silhouette"] > 0.5


def test_soft_targets_are_convex_mixes_of_centers(tmp_path):
    data, _ = blob_dataset(seed=4)
    hard = build_clusters(data, ClusterConfig(n_clusters=6, dim=4), tmp_path)
    soft = build_clusters(data, ClusterConfig(n_clusters=6, dim=4, soft=True, soft_temperature=5000.0), tmp_path)
    assert soft.path != hard.path
    np.testing.assert_array_equal(soft.labels, hard.labels)
    rows = soft.item_targets[1:-1].astype(np.float64)
    # a convex combination: solve for weights and check they are a distribution
    w, *_ = np.linalg.lstsq(soft.centers.T.astype(np.float64), rows.T, rcond=None)
    np.testing.assert_allclose(w.sum(0), 1.0, atol=1e-3)
    assert not np.allclose(rows, hard.item_targets[1:-1], atol=1e-4)   # a high T mixes noticeably
    sharp = compute_clusters(data, ClusterConfig(n_clusters=6, dim=4, soft=True, soft_temperature=1e-3),
                             data.item_pca)
    np.testing.assert_allclose(sharp.item_targets, hard.item_targets, atol=1e-5)


def test_hdbscan_noise_is_unconstrained(tmp_path):
    data, _ = blob_dataset(n_items=240, seed=5)
    rng = np.random.default_rng(9)
    noisy = rng.choice(np.arange(1, 241), 12, replace=False)
    data.item_text_emb[noisy] = rng.uniform(-300, 300, (12, data.item_text_emb.shape[1]))
    art = build_clusters(data, ClusterConfig(method="hdbscan", dim=4, min_cluster_size=10), tmp_path)
    noise = np.flatnonzero(art.labels == -1)
    assert {0, data.n_items + 1} <= set(noise.tolist())
    assert set(noisy.tolist()) <= set(noise.tolist())
    assert not art.constrained[noise].any() and not art.item_targets[noise].any()
    assert art.constrained[art.labels >= 0].all()
    share = (noise.size - 2) / data.n_items
    assert art.quality["noise_share"] == pytest.approx(share)
    assert art.n_clusters == art.centers.shape[0] == int(art.labels.max()) + 1 >= 2
    for c in range(art.n_clusters):
        np.testing.assert_allclose(art.centers[c], data.item_pca[np.flatnonzero(art.labels == c)].astype(np.float64).mean(0),
                                   rtol=1e-5, atol=1e-6)


def test_hdbscan_all_noise_constrains_nothing(tmp_path):
    data, _ = blob_dataset(n_items=30, seed=7)
    data.item_text_emb[1:] = np.random.default_rng(0).uniform(-1, 1, (30, data.item_text_emb.shape[1]))
    art = build_clusters(data, ClusterConfig(method="hdbscan", dim=8, min_cluster_size=20, soft=True), tmp_path)
    assert art.n_clusters == 0 and art.centers.shape == (0, data.item_pca.shape[1])
    assert (art.labels == -1).all() and not art.constrained.any() and not art.item_targets.any()
    assert art.quality["noise_share"] == 1.0 and art.quality["silhouette"] is None


def test_cache_hit_returns_identical_artifact(tmp_path):
    data, _ = blob_dataset(seed=6)
    cfg = ClusterConfig(n_clusters=4, dim=3)
    first = build_clusters(data, cfg, tmp_path)
    t0 = time.perf_counter()
    second = build_clusters(data, cfg, tmp_path)
    assert second.path == first.path and (tmp_path / "clusters").is_dir()
    for name in ("labels", "centers", "centers_low", "item_targets", "constrained"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert second.quality == first.quality
    assert not [p for p in (tmp_path / "clusters").iterdir() if p.name.startswith(".")]
    print(f"cache load {time.perf_counter() - t0:.4f}s")
    other = build_clusters(data, cfg, tmp_path, item_pca=data.item_pca * 2)
    assert other.path != first.path
    np.testing.assert_allclose(other.centers, first.centers * 2, rtol=1e-5)


def test_bad_settings_are_clear_errors(tmp_path):
    data, _ = blob_dataset(n_items=50)
    with pytest.raises(ValueError, match="n_clusters: got 51.*50"):
        build_clusters(data, ClusterConfig(n_clusters=51), tmp_path)
    with pytest.raises(ValueError, match="dim: got 40"):
        build_clusters(data, ClusterConfig(n_clusters=4, dim=40), tmp_path)
    with pytest.raises(ValueError, match="item_pca: got shape"):
        build_clusters(data, ClusterConfig(n_clusters=4), tmp_path, item_pca=data.item_pca[1:])
    with pytest.raises(ValueError, match="method: got 'dbscan'"):
        build_clusters(data, ClusterConfig(method="dbscan"), tmp_path)
    assert not (tmp_path / "clusters").exists() or not any((tmp_path / "clusters").iterdir())


@pytest.mark.slow
def test_kmeans_64_on_scientific_is_aligned(scientific, tmp_path):
    data = scientific
    cfg = ClusterConfig(method="kmeans", n_clusters=64, dim=8, seed=42)
    t0 = time.perf_counter()
    art = compute_clusters(data, cfg, data.item_pca)
    seconds = time.perf_counter() - t0
    q = art.quality
    print(f"\nKMeans 64 on {data.n_items} items: {seconds:.2f}s (reduce {q['seconds_reduce']:.2f}s, "
          f"cluster {q['seconds_cluster']:.2f}s), silhouette {q['silhouette']:.3f}, "
          f"sizes {q['min_size']}..{q['max_size']}")
    n = data.n_items
    assert art.labels.shape == (n + 2,) and art.labels[0] == art.labels[n + 1] == -1
    assert (art.labels[1:n + 1] >= 0).all() and art.n_clusters == 64
    low = reduce_embeddings(data.item_text_emb, n, cfg.dim, cfg.seed)
    d2 = ((low[:, None, :] - art.centers_low[None].astype(np.float64)) ** 2).sum(-1)
    own = d2[np.arange(n), art.labels[1:n + 1]]
    assert np.all(own <= d2.min(axis=1) + 1e-4 * (1 + d2.min(axis=1)))
    shifted = d2[np.arange(n - 1), art.labels[2:n + 1]]   # the seed's off-by-one read
    assert np.mean(shifted <= d2[:-1].min(axis=1) + 1e-9) < 0.5
    text = np.ascontiguousarray(data.item_text_emb[1:])
    rows = text.view(np.dtype((np.void, text.dtype.itemsize * text.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    twin = first[inverse]                                 # first item with the same embedding
    dup = np.flatnonzero(twin != np.arange(n))
    assert (art.labels[dup + 1] == art.labels[twin[dup] + 1]).all()
    print(f"{dup.size} items share their text embedding with another item")
    cached = build_clusters(data, cfg, tmp_path)
    t1 = time.perf_counter()
    again = build_clusters(data, cfg, tmp_path)
    print(f"cache hit {time.perf_counter() - t1:.3f}s; {(art.labels != cached.labels).sum()} labels differ from uncached run")
    np.testing.assert_array_equal(again.labels, cached.labels)
    np.testing.assert_array_equal(cached.labels, art.labels)


@pytest.mark.slow
def test_hdbscan_on_ml100k_items(ml100k, tmp_path):
    data = ml100k
    art = build_clusters(data, ClusterConfig(method="hdbscan", dim=8, min_cluster_size=10), tmp_path)
    q = art.quality
    print(f"\nHDBSCAN on {data.n_items} items: {art.n_clusters} clusters, noise {q['noise_share']:.2f}, "
          f"{q['seconds_total']:.2f}s")
    noise = art.labels[1:-1] < 0
    assert q["noise_share"] == pytest.approx(noise.mean())
    assert not art.constrained[1:-1][noise].any() and art.constrained[1:-1][~noise].all()
    assert not art.item_targets[1:-1][noise].any()
    assert sorted(set(art.labels[1:-1][~noise].tolist())) == list(range(art.n_clusters))


def test_lopsided_clustering_is_flagged_degenerate(tmp_path):
    """Most items in one blob: KMeans obliges (a fine silhouette) but the clustering is degenerate."""
    data, blob = blob_dataset(n_items=300, n_blobs=6, seed=8)
    rng = np.random.default_rng(1)
    first = np.flatnonzero(blob == 0)[0] + 1
    moved = rng.choice(np.flatnonzero(blob != 0), 200, replace=False)
    data.item_text_emb[moved + 1] = data.item_text_emb[first] + rng.normal(0, 0.5, (200, data.item_text_emb.shape[1]))
    data.meta["hash"] = "lopsided"
    art = build_clusters(data, ClusterConfig(n_clusters=6, dim=4), tmp_path)
    q = art.quality
    assert q["largest_share"] == max(q["sizes"]) / data.n_items > 0.7 and q["silhouette"] > 0.5
    assert q["degenerate"] is True and art.summary()["degenerate"] is True
    assert f"{q['largest_share']:.0%} of the items" in art.warning()
    balanced = build_clusters(blob_dataset(seed=8)[0], ClusterConfig(n_clusters=6, dim=4), tmp_path)
    assert balanced.quality["largest_share"] < 0.3 and balanced.quality["degenerate"] is False
    assert balanced.warning() is None


def test_degenerate_threshold():
    from cluster_prep.quality import DEGENERATE_SHARE, is_degenerate

    assert DEGENERATE_SHARE == 0.5
    assert is_degenerate(0.51, 8) and not is_degenerate(0.5, 8) and not is_degenerate(0.4, 3)
    assert not is_degenerate(0.7, 2) and is_degenerate(0.8, 2)       # 2 clusters: above 75 %
    assert is_degenerate(1.0, 1) and is_degenerate(0.0, 0)           # one cluster, or none at all


@pytest.mark.slow
def test_launch_clusters_warns_about_the_hdbscan_clustering_of_ml100k(ml100k, capsys):
    """HDBSCAN with default settings puts 80 % of ml-100k's items in one of 2 clusters."""
    import launch
    from tests.conftest import SHARED_DATA, TEST_CACHE

    args = ["clusters", "--dataset", "ml-100k", "--method", "hdbscan", "--json",
            "--set", f"data.cache_dir={TEST_CACHE}", "--set", f"data.data_root={SHARED_DATA}"]
    assert launch.main(args) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["n_clusters"] == 2 and summary["largest_share"] > 0.75 and summary["degenerate"] is True
    assert err.startswith("warning: degenerate clustering: the largest of 2 clusters holds 80% of the items")
