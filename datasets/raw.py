"""The common raw form every source adapter produces, and small helpers the adapters share.

A source turns its files into `RawData`: one row per interaction (user key, item key, order
value, original line index) plus item text. The adapters know file formats; nothing after them does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from datasets.errors import DataError

HASH_CONTENT_BELOW = 256 * 1024 * 1024  # files smaller than this are identified by content


@dataclass
class RawData:
    """Interactions before filtering, in file order.

    `order` sorts a user's interactions in time (ties keep file order). `item_universe` lists the
    item keys in the order an item embedding file's rows follow (see `embeddings.align_rows`):
    sorted keys, or ids 1..max for llmesr.
    """

    users: np.ndarray                      # [n] user keys (int64 or str objects)
    items: np.ndarray                      # [n] item keys (int64 or str objects)
    order: np.ndarray                      # [n] float64 timestamp / position
    item_universe: np.ndarray              # item keys in embedding-row order
    item_text: dict[Any, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)   # files whose identity keys the cache
    meta: dict[str, Any] = field(default_factory=dict)  # source-specific counts

    def texts(self) -> list[str]:
        """Text of every universe item, in universe order ("" where the source had none)."""
        return [self.item_text.get(key, "") for key in self.item_universe.tolist()]


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it is a file, else a DataError naming it and what it should hold."""
    if not path.is_file():
        raise DataError(f"{what}: file {str(path)!r} does not exist")
    return path


def keys_array(values: Iterable[str]) -> np.ndarray:
    """Keys as int64 when every key is an integer (so they sort numerically), else as strings."""
    values = list(values)
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.asarray(values, dtype=object)


def check_header(name: str, first_line: str, required: tuple[str, ...]) -> list[str]:
    """Split a tab-separated header and insist on the `required` columns (RecBole atomic files)."""
    columns = first_line.rstrip("\n\r").split("\t")
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{name}, line 1: header {columns} lacks column(s) {missing}; expected {list(required)}")
    return columns


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a source file for the cache key: its content hash (size, mtime if huge)."""
    stat = path.stat()
    ident: dict[str, Any] = {"name": path.name, "size": stat.st_size}
    if stat.st_size < HASH_CONTENT_BELOW:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        ident["sha256"] = digest.hexdigest()
    else:
        ident["path"] = str(path.resolve())
        ident["mtime_ns"] = stat.st_mtime_ns
    return ident
