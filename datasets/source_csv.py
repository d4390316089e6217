"""A user's own data: an interaction CSV (columns user, item, timestamp) and an item-text CSV (item, text).

Keys are compared as integers when every key is one, else as strings. Ties in timestamp keep file
order. Items missing from the text file get "" (counted in meta as `items_without_text`).
Files are UTF-8, with or without a byte-order mark (spreadsheet exports often add one);
timestamps must be finite numbers.

Row order of a user's embedding matrix (`data.embedder=file`), one rule whatever the keys hold:
with `data.item_text_path`, the matrix's rows follow that file's data rows one to one (its `text`
column may be absent); without it, every item key must be an integer and the rows follow the
distinct keys in ascending integer order. Keys that are not all integers have no order a matrix
could follow (string order would put item 10 before item 2): refused without an item file.
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


def _rows(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    """Yield (line number, {column: value}) for each data row (the `optional` columns where the
    header has them), checking the header first."""
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}, line 1: header {header} lacks column(s) {missing}; "
                            f"required: {list(required)}")
        index = {c: header.index(c) for c in (*required, *optional) if c in header}
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
    users, items, lines, stamps = [], [], [], []
    for number, row in _rows(paths[0], ("user", "item", "timestamp")):
        stamps.append(finite_timestamp(row["timestamp"], f"{paths[0]}, line {number}"))
        if not row["user"] or not row["item"]:
            raise DataError(f"{paths[0]}, line {number}: empty user or item")
        users.append(row["user"])
        items.append(row["item"])
        lines.append(number)
    if not users:
        raise DataError(f"{paths[0]}: no interactions")
    items_arr = keys_array(items)
    listed = _item_rows(paths[1], cfg.embedder) if len(paths) > 1 else []
    texts = {key: text for _, key, text in listed}
    if items_arr.dtype == np.int64:
        texts_by_key = {int(k): v for k, v in texts.items() if INTEGER_KEY.fullmatch(k)}
    else:
        texts_by_key = dict(texts)
    used = np.unique(items_arr)
    raw = RawData(
        users=keys_array(users), items=items_arr, order=np.asarray(stamps, dtype=np.float64),
        item_universe=used, item_text=texts_by_key, sources=list(paths),
        meta={"raw_users": len(set(users)), "raw_items": int(used.size), "raw_interactions": len(users),
              "items_without_text": int(sum(1 for k in used.tolist() if not texts_by_key.get(k)))})
    if cfg.embedder != "file":
        return raw
    if listed:
        return _rows_from_item_file(raw, listed, paths[1], paths[0], lines)
    if items_arr.dtype != np.int64:
        first = next(n for n, key in enumerate(items) if not INTEGER_KEY.fullmatch(key))
        raise DataError(f"{paths[0]}, line {lines[first]}: item {items[first]!r} is not an integer, so the "
                        f"rows of data.embedding_path have no known order (without data.item_text_path "
                        f"they follow ascending integer item keys); list the items in the matrix's row "
                        f"order in data.item_text_path (a CSV with column item)")
    raw.row_order = "one row per distinct item key, in ascending integer order"
    return raw


def _item_rows(path: Path, embedder: str) -> list[tuple[int, str, str]]:
    """(line, item key, text) of each data row of the item file; `text` is optional for
    embedder file (the file then only gives the matrix's row order)."""
    required = ("item",) if embedder == "file" else ("item", "text")
    listed = []
    for number, row in _rows(path, required, optional=("text",)):
        if not row["item"] and embedder == "file":
            raise DataError(f"{path}, line {number}: empty item, so matrix row {len(listed)} belongs to no item")
        listed.append((number, row["item"], row.get("text", "")))
    return listed


def _rows_from_item_file(raw: RawData, listed: list[tuple[int, str, str]], path: Path,
                         inter: Path, lines: list[int]) -> RawData:
    """`raw` with the embedding rows in the item file's order: row r = the item on its r-th data
    row. Every interaction item must be listed, and listed once."""
    integer = raw.items.dtype == np.int64
    seen: dict = {}
    for row, (number, key, _) in enumerate(listed):
        if integer and not INTEGER_KEY.fullmatch(key):
            continue                                   # a text key no interaction can name
        value = int(key) if integer else key
        if value in seen:
            raise DataError(f"{path}, line {number}: item {key!r} is listed again (first on line "
                            f"{seen[value][0]}); each matrix row must belong to one item")
        seen[value] = (number, row)
    missing = [n for n, key in enumerate(raw.items.tolist()) if key not in seen]
    if missing:
        key = raw.items[missing[0]]
        raise DataError(f"{inter}, line {lines[missing[0]]}: item {str(key)!r} is not listed in {path}, "
                        f"whose rows give the row order of data.embedding_path")
    keys = np.asarray(sorted(seen), dtype=raw.items.dtype)
    rows = np.asarray([seen[k][1] for k in keys.tolist()], dtype=np.int64)
    raw.item_universe, raw.universe_rows, raw.matrix_rows = keys, rows, len(listed)
    raw.row_order = f"one row per data row of {path.name}, in its order"
    return raw
