"""The common raw form every source adapter produces, and small helpers the adapters share.

A source turns its files into `RawData`: one row per interaction (user key, item key, order
value, original line index) plus item text. The adapters know file formats; nothing after them does.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from datasets.errors import DataError

HASH_CONTENT_BELOW = 256 * 1024 * 1024  # files smaller than this are identified by content
INTEGER_KEY = re.compile(r"-?[0-9]{1,18}")   # plain ASCII digits that fit int64 ("1_0", "+1", "١" stay text)


@dataclass
class RawData:
    """Interactions before filtering, in file order.

    `order` sorts a user's interactions in time (ties keep file order). `item_universe` holds the
    source's distinct item keys, sorted; `universe_rows` the row of each in a user's item
    embedding file (None: row r = the r-th key) and `matrix_rows` how many rows that file must
    have (None: one per key), which `row_order` says in words for messages and meta.json (see
    `embeddings.align_rows`). Arrays are sized by the distinct ids, never by the largest id.
    """

    users: np.ndarray                      # [n] user keys (int64 or str objects)
    items: np.ndarray                      # [n] item keys (int64 or str objects)
    order: np.ndarray                      # [n] float64 timestamp / position
    item_universe: np.ndarray              # sorted distinct item keys
    item_text: dict[Any, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)   # files whose identity keys the cache
    meta: dict[str, Any] = field(default_factory=dict)  # source-specific counts
    universe_rows: np.ndarray | None = None             # embedding-file row of each universe key
    matrix_rows: int | None = None                      # rows an embedding file must have
    row_order: str = "one row per item id, in ascending id order"

    def texts(self) -> list[str]:
        """Text of every universe item, in universe order ("" where the source had none)."""
        return [self.item_text.get(key, "") for key in self.item_universe.tolist()]

    def subset(self, keep: np.ndarray) -> "RawData":
        """The same data with only the rows where `keep` is True (item universe and text unchanged)."""
        return replace(self, users=self.users[keep], items=self.items[keep], order=self.order[keep])


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it is a file, else a DataError naming it and what it should hold."""
    if not path.is_file():
        raise DataError(f"{what}: file {str(path)!r} does not exist")
    return path


def keys_array(values: Iterable[str]) -> np.ndarray:
    """Keys as int64 when every key is a plain integer (so they sort numerically), else as strings.

    Only ASCII digits count: Python's int() also reads "1_0", "+1" and other scripts' digits,
    which would silently merge distinct keys, and overflows int64 on long digit strings.
    """
    values = list(values)
    if all(INTEGER_KEY.fullmatch(v) for v in values):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    return np.asarray(values, dtype=object)


def finite_timestamp(text: str, where: str) -> float:
    """`text` as a finite float; a DataError naming `where` (file, line) otherwise.

    NaN would sort anywhere and compare unequal to itself (duplicates undetectable); inf puts
    every such event last: both silently corrupt a user's order, so they are refused.
    """
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: timestamp {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: timestamp {text!r} is not a finite number; remove the row or give it a time")
    return value


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
