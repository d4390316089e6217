"""Amazon "Beauty" 2014 5-core (../shared/data/amazon-beauty), the split of S3-Rec, P5 and TIGER.

`user_sequence.txt` holds one user per line, `USER_ID ITEM_ASIN ITEM_ASIN ...`, items in time order
and no timestamps, so a user's order is the position in the line. `Amazon_Beauty.item` (RecBole
atomic, tab separated) gives the text of each ASIN as "title. categories. brand." like the
amazon-scientific text, empty fields left out. It is read with a CSV reader: a few titles hold
quoted tabs or newlines, which splitting lines by hand would break. Items are the ASINs (strings).
"""

from __future__ import annotations

import ast
import csv
import html
from pathlib import Path

import numpy as np

from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.raw import RawData, check_header, require_file

NAMES = ("user_sequence.txt", "Amazon_Beauty.item")
ITEM_COLUMNS = ("item_id:token", "title:token", "categories:token_seq", "brand:token")
SEQUENCE_FORMAT = "`USER_ID ITEM_ASIN ITEM_ASIN ...`"


def files(cfg: DataConfig) -> list[Path]:
    folder = Path(cfg.data_root) / "amazon-beauty"
    return [require_file(folder / name, "amazon-beauty") for name in NAMES]


def _categories(field: str, where: str) -> list[str]:
    """The token_seq `'Beauty', 'Makeup', "Women's"` as a list of strings (Python literals)."""
    if not field.strip():
        return []
    try:
        value = ast.literal_eval(f"[{field}]")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: categories {field[:80]!r} is not a list of quoted names "
                        "(expected e.g. 'Beauty', 'Makeup', 'Face')")
    return value


def _clean(text: str) -> str:
    """HTML entities decoded (1,794 records hold `&amp;` and the like; the amazon-scientific text
    has none) and white space collapsed (a few titles hold tabs or newlines)."""
    return " ".join(html.unescape(text).split())


def item_text(title: str, categories: list[str], brand: str) -> str:
    """'title. category, category. brand.' with empty parts left out."""
    parts = [_clean(title), ", ".join(c for c in map(_clean, categories) if c), _clean(brand)]
    return " ".join(p if p.endswith(".") else p + "." for p in parts if p)


def _items(path: Path) -> dict[str, str]:
    """ASIN -> item text, from the item file; a malformed record raises with its first line."""
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            columns = check_header(str(path), "\t".join(next(reader, [])), ITEM_COLUMNS)
            at = [columns.index(c) for c in ITEM_COLUMNS]
            end = reader.line_num
            for row in reader:
                number, end = end + 1, reader.line_num
                _item_row(path, number, row, columns, at, texts, first_line)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
    return texts


def _item_row(path: Path, number: int, row: list[str], columns: list[str], at: list[int],
              texts: dict[str, str], first_line: dict[str, int]) -> None:
    """Check one item record and add its text (a record may span lines: `number` is its first)."""
    where = f"{path}, line {number}"
    if len(row) != len(columns):
        raise DataError(f"{where}: malformed ({len(row)} tab-separated fields, expected {len(columns)}; "
                        f"a tab or newline inside a field needs double quotes): {row[:3]!r}")
    asin, title, categories, brand = (row[i] for i in at)
    if not asin or asin != asin.strip() or len(asin.split()) != 1:
        raise DataError(f"{where}: item id {asin!r} is empty or holds white space")
    if asin in first_line:
        raise DataError(f"{where}: item {asin!r} is listed again (first on line {first_line[asin]})")
    first_line[asin] = number
    texts[asin] = item_text(title, _categories(categories, where), brand)


def _sequences(path: Path, known: dict[str, str], item_file: Path) -> tuple[list[str], list[str], list[float]]:
    """One (user, item, position) per interaction, in file order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    users: list[str] = []
    items: list[str] = []
    order: list[float] = []
    line_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        user, seq = parts[0], parts[1:]
        if not seq:
            raise DataError(f"{path}, line {number}: malformed (user {user!r} has no items; "
                            f"expected {SEQUENCE_FORMAT}): {line[:80]!r}")
        if user in line_of:
            raise DataError(f"{path}, line {number}: user {user!r} again (first on line {line_of[user]}); "
                            "one line per user")
        line_of[user] = number
        unknown = next((asin for asin in seq if asin not in known), None)
        if unknown is not None:
            raise DataError(f"{path}, line {number}: item {unknown!r} is not in {item_file}")
        users.extend([user] * len(seq))
        items.extend(seq)
        order.extend(range(len(seq)))
    return users, items, order


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    sequence_file, item_file = paths
    texts = _items(item_file)
    users, items, order = _sequences(sequence_file, texts, item_file)
    if not items:
        raise DataError(f"{sequence_file}: no interactions")
    used = sorted(set(items))
    return RawData(
        users=np.asarray(users, dtype=object), items=np.asarray(items, dtype=object),
        order=np.asarray(order, dtype=np.float64), item_universe=np.asarray(sorted(texts), dtype=object),
        item_text=texts, sources=list(paths),
        meta={"raw_users": len(set(users)), "raw_items": len(used), "raw_interactions": len(items),
              "items_without_text": sum(1 for asin in used if not texts[asin])})
