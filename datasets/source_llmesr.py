"""LLM-ESR's "handled" format: `inter.txt` with `user item` lines (1-based ids, time order per user).

It carries no item text: the item embedding matrix comes from `data.embedding_path`, one row per
item id 1..n (n = the largest item id in inter.txt); see `embeddings.align_rows`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.raw import RawData, require_file


def folder(cfg: DataConfig) -> Path:
    return Path(cfg.path) if cfg.path else Path(cfg.data_root) / "llmesr-yelp"


def files(cfg: DataConfig) -> list[Path]:
    if not cfg.embedding_path:
        raise DataError("llmesr: data.embedding_path is required (an item embedding matrix, .npy, "
                        "one row per item id); the format carries no item text to embed")
    return [require_file(folder(cfg) / "inter.txt", "llmesr interactions")]


def _parse(path: Path) -> np.ndarray:
    """[n, 2] int64 array of (user, item); a malformed line raises with its number."""
    text = path.read_text(encoding="utf-8")
    try:
        flat = np.asarray(text.split(), dtype=np.int64)
        lines = text.splitlines()
        if flat.size != 2 * len(lines):
            raise ValueError("field count")
        pairs = flat.reshape(-1, 2)
        if (pairs < 1).any():
            raise ValueError("ids below 1")
        return pairs
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):   # slow path: find the bad line
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise DataError(f"{path}, line {number}: malformed, expected `user item` with "
                            f"1-based integer ids: {line[:80]!r}")
    raise DataError(f"{path}: could not parse")  # unreachable in practice


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    pairs = _parse(paths[0])
    if pairs.size == 0:
        raise DataError(f"{paths[0]}: no interactions")
    n_items = int(pairs[:, 1].max())
    return RawData(
        users=pairs[:, 0].copy(), items=pairs[:, 1].copy(),
        order=np.arange(len(pairs), dtype=np.float64),       # file order is time order
        item_universe=np.arange(1, n_items + 1, dtype=np.int64), sources=list(paths),
        meta={"raw_users": int(np.unique(pairs[:, 0]).size), "raw_items": int(np.unique(pairs[:, 1]).size),
              "raw_interactions": int(len(pairs)), "max_item_id": n_items})
