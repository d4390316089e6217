"""Amazon "Industrial & Scientific" in UniSRec's atomic files (../shared/data/amazon-scientific).

The test file holds each user's full, time-ordered sequence: history (`item_id_list`) + target.
Items are the files' 0-based indices; `Scientific.item2index` maps them to ASINs, whose text is in
`Scientific.text`. Items without text get "" (counted in meta as `items_without_text`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.raw import RawData, check_header, require_file

NAMES = ("Scientific.test.inter", "Scientific.item2index", "Scientific.text")


def files(cfg: DataConfig) -> list[Path]:
    folder = Path(cfg.data_root) / "amazon-scientific"
    return [require_file(folder / name, "amazon-scientific") for name in NAMES]


def _two_columns(path: Path, header: tuple[str, ...] | None) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    start = 1 if header else 0
    if header:
        check_header(str(path), lines[0] if lines else "", header)
    rows = []
    for number, line in enumerate(lines[start:], start=start + 1):
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}, line {number}: malformed ({len(parts)} tab-separated fields, expected 2): {line[:80]!r}")
        rows.append((parts[0], parts[1]))
    return rows


def _sequences(path: Path) -> tuple[list[int], list[int], list[float]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    columns = check_header(str(path), lines[0] if lines else "",
                           ("user_id:token", "item_id_list:token_seq", "item_id:token"))
    iu, il, it = (columns.index(c) for c in ("user_id:token", "item_id_list:token_seq", "item_id:token"))
    users: list[int] = []
    items: list[int] = []
    order: list[float] = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        try:
            if len(parts) != len(columns):
                raise ValueError(f"{len(parts)} fields, expected {len(columns)}")
            seq = [int(x) for x in parts[il].split()] + [int(parts[it])]
            user = int(parts[iu])
        except ValueError as exc:
            raise DataError(f"{path}, line {number}: malformed ({exc}): {line[:80]!r}") from None
        users.extend([user] * len(seq))
        items.extend(seq)
        order.extend(range(len(seq)))
    return users, items, order


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    inter, item2index, text_file = paths
    users, items, order = _sequences(inter)
    asin_of: dict[int, str] = {}
    for asin, index in _two_columns(item2index, None):
        if not index.strip().isdigit():
            raise DataError(f"{item2index}: index {index!r} of {asin!r} is not a non-negative integer")
        asin_of[int(index)] = asin
    text_by_asin = dict(_two_columns(text_file, ("item_id:token", "text:token_seq")))
    items_arr = np.asarray(items, dtype=np.int64)
    unknown = np.setdiff1d(items_arr, np.fromiter(asin_of, dtype=np.int64))
    if unknown.size:
        raise DataError(f"{inter}: item indices {unknown[:5].tolist()} are not in {item2index}")
    universe = np.asarray(sorted(asin_of), dtype=np.int64)
    texts = {i: text_by_asin.get(asin_of[i], "").strip() for i in universe.tolist()}
    used = np.unique(items_arr)
    return RawData(
        users=np.asarray(users, dtype=np.int64), items=items_arr,
        order=np.asarray(order, dtype=np.float64), item_universe=universe, item_text=texts,
        sources=list(paths),
        meta={"raw_users": len(set(users)), "raw_items": int(used.size), "raw_interactions": len(items),
              "items_without_text": int(sum(1 for i in used.tolist() if not texts[i]))})
