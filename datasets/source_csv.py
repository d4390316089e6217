"""A user's own data: an interaction CSV (columns user, item, timestamp) and an item-text CSV (item, text).

Keys are compared as integers when every key is one, else as strings. Ties in timestamp keep file
order. Items missing from the text file get "" (counted in meta as `items_without_text`).
Files are UTF-8, with or without a byte-order mark (spreadsheet exports often add one);
timestamps must be finite numbers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.raw import INTEGER_KEY, RawData, finite_timestamp, keys_array, require_file


def files(cfg: DataConfig) -> list[Path]:
    if not cfg.path:
        raise DataError("csv: data.path must name the interaction CSV (columns user, item, timestamp)")
    out = [require_file(Path(cfg.path), "csv interactions")]
    if cfg.item_text_path:
        out.append(require_file(Path(cfg.item_text_path), "csv item text"))
    elif cfg.embedder == "minilm":
        raise DataError("csv: data.item_text_path must name the item text CSV (columns item, text) "
                        "when data.embedder is 'minilm'")
    return out


def _text(path: Path) -> str:
    """The whole file as text (a leading BOM dropped); a DataError naming the line of a bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); "
                        f"save the file as UTF-8") from None


def _rows(path: Path, required: tuple[str, ...]):
    """Yield (line number, {column: value}) for each data row, checking the header first."""
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}, line 1: header {header} lacks column(s) {missing}; "
                            f"required: {list(required)}")
        index = {c: header.index(c) for c in required}
        for row in reader:
            number = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {number}: {len(row)} fields, expected {len(header)}: {row[:5]}")
            yield number, {c: row[i].strip() for c, i in index.items()}
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not readable as CSV ({exc})") from None


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    users, items, stamps = [], [], []
    for number, row in _rows(paths[0], ("user", "item", "timestamp")):
        stamps.append(finite_timestamp(row["timestamp"], f"{paths[0]}, line {number}"))
        if not row["user"] or not row["item"]:
            raise DataError(f"{paths[0]}, line {number}: empty user or item")
        users.append(row["user"])
        items.append(row["item"])
    if not users:
        raise DataError(f"{paths[0]}: no interactions")
    texts: dict[str, str] = {}
    if len(paths) > 1:
        for _, row in _rows(paths[1], ("item", "text")):
            texts[row["item"]] = row["text"]
    items_arr = keys_array(items)
    universe = np.unique(items_arr)
    if items_arr.dtype == np.int64:
        texts_by_key = {int(k): v for k, v in texts.items() if INTEGER_KEY.fullmatch(k)}
    else:
        texts_by_key = dict(texts)
    return RawData(
        users=keys_array(users), items=items_arr, order=np.asarray(stamps, dtype=np.float64),
        item_universe=universe, item_text=texts_by_key, sources=list(paths),
        meta={"raw_users": len(set(users)), "raw_items": int(universe.size), "raw_interactions": len(users),
              "items_without_text": int(sum(1 for k in universe.tolist() if not texts_by_key.get(k)))})
