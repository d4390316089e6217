"""LLM-ESR's "handled" format: `inter.txt` with `user item` lines (1-based ids, time order per user).

It carries no item text: the item embedding matrix comes from `data.embedding_path`, one row per
item id 1..n (n = the largest item id in inter.txt); see `embeddings.align_rows`. Arrays are sized
by the distinct ids, so a stray huge id costs nothing before the matrix shape check refuses it.
"""

from __future__ import annotations

import re
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


#: an id: ASCII digits only (int() and numpy also read "²", "١" and "1_0"), at most 18 of them (int64)
ID = re.compile(r"[0-9]{1,18}")
PLAIN = re.compile(r"[0-9\s]*")          # a file of ids and white space only
LONG = re.compile(r"[0-9]{19}")


def _parse(path: Path) -> np.ndarray:
    """[n, 2] int64 array of (user, item); a malformed line raises with its number."""
    text = _text(path)
    lines = text.splitlines()
    if PLAIN.fullmatch(text) and not LONG.search(text):
        flat = np.asarray(text.split(), dtype=np.int64)
        if flat.size == 2 * len(lines) and (flat >= 1).all():
            return flat.reshape(-1, 2)
    for number, line in enumerate(lines, start=1):   # slow path: find the bad line
        parts = line.split()
        if len(parts) != 2 or not all(ID.fullmatch(p) and int(p) >= 1 for p in parts):
            raise DataError(f"{path}, line {number}: malformed, expected `user item` with 1-based "
                            f"integer ids of at most 18 ASCII digits: {line[:80]!r}")
    raise DataError(f"{path}: could not parse")  # unreachable in practice


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start})") from None


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    pairs = _parse(paths[0])
    if pairs.size == 0:
        raise DataError(f"{paths[0]}: no interactions")
    items = np.unique(pairs[:, 1])
    n_items = int(items[-1])
    return RawData(
        users=pairs[:, 0].copy(), items=pairs[:, 1].copy(),
        order=np.arange(len(pairs), dtype=np.float64),       # file order is time order
        item_universe=items, universe_rows=items - 1, matrix_rows=n_items,
        row_order=f"row r - 1 is item id r, for ids 1..{n_items} (the largest id in {paths[0].name})",
        sources=list(paths),
        meta={"raw_users": int(np.unique(pairs[:, 0]).size), "raw_items": int(items.size),
              "raw_interactions": int(len(pairs)), "max_item_id": n_items})
