"""The prepared-dataset cache: key hashing, atomic saving, loading.

Folder `<cache_dir>/<source>-<hash>`, hash over FORMAT_VERSION, the source files' identities,
every option that changes the result and the code that prepares data (`code_hash`: every module
of this package except those that only locate, name or describe the cache), so a warm cache never
hands out a dataset that older preparing code made. The folder holds `arrays.npz` (uncompressed,
fast to load) and `meta.json`. It is written under a temporary name and renamed into place at the
end, so a failed prepare leaves no folder that could be mistaken for a finished one.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from datasets.config import LOCATIONS, DataConfig, unused_options
from datasets.errors import DataError
from datasets.prepared import ARRAY_FIELDS, PreparedDataset
from datasets.raw import file_identity
from runtime import write_folder_atomic

FORMAT_VERSION = 1
PACKAGE = Path(__file__).resolve().parent
#: modules of this package that prepare nothing (cache location and IO, options, errors, exports);
#: every other module's code is part of the key
NOT_PREPARING = ("__init__.py", "cache.py", "config.py", "errors.py")
# Options that never change the prepared arrays (locations, permissions, speed knobs).
NOT_IN_KEY = (*LOCATIONS, "allow_pickle", "embed_batch_size", "embed_device")


def preparing_modules(folder: Path = PACKAGE) -> list[Path]:
    """The modules whose code decides what a prepared dataset holds."""
    return sorted(p for p in folder.glob("*.py") if p.name not in NOT_PREPARING)


def _without_docstrings(source: str) -> str:
    """The module's syntax tree minus docstrings: comments, docstrings and layout keep the key."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return canonical_dump(tree)


def canonical_dump(node: Any) -> str:
    """ast.dump without empty fields: Python 3.12 adds `type_params=[]` to every function and
    class and 3.13 drops empty fields from ast.dump, so the plain dump (and with it every cache
    key) changed with the Python version although the code did not."""
    if isinstance(node, ast.AST):
        fields = ", ".join(f"{name}={canonical_dump(value)}" for name, value in ast.iter_fields(node)
                           if value is not None and value != [])
        return f"{type(node).__name__}({fields})"
    if isinstance(node, list):
        return "[" + ", ".join(canonical_dump(item) for item in node) + "]"
    return repr(node)


def code_hash(folder: Path | None = None) -> str:
    """Hash of the preparing modules' code in `folder` (default: this package, read once)."""
    return _package_code_hash() if folder is None else _modules_hash(folder)


@functools.lru_cache(maxsize=1)
def _package_code_hash() -> str:
    return _modules_hash(PACKAGE)


def _modules_hash(folder: Path) -> str:
    return modules_hash(preparing_modules(folder))


def modules_hash(paths: list[Path]) -> str:
    """Hash of the modules' names and code, docstrings, comments and layout left out: the code
    part of a cache key (this cache's, and cluster_prep.cache's)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{_without_docstrings(path.read_text(encoding='utf-8'))}\0".encode())
    return digest.hexdigest()[:16]


def cache_key(cfg: DataConfig, files: list[Path]) -> tuple[str, dict[str, Any]]:
    skip = (*NOT_IN_KEY, *unused_options(cfg))
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    content = {"format": FORMAT_VERSION, "code": code_hash(), "options": options,
               "files": [file_identity(p) for p in files]}
    text = json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], content


def cache_folder(cfg: DataConfig, key: str) -> Path:
    return Path(cfg.cache_dir) / f"{cfg.name}-{key}"


def is_complete(folder: Path) -> bool:
    return (folder / "meta.json").is_file() and (folder / "arrays.npz").is_file()


def save(data: PreparedDataset, folder: Path, extra_arrays: dict[str, np.ndarray]) -> Path:
    """Write the dataset to `folder` at once (runtime.write_folder_atomic); when another process
    finished it first, theirs is kept."""
    def fill(tmp: Path) -> None:
        arrays = {name: getattr(data, name) for name in ARRAY_FIELDS}
        np.savez(tmp / "arrays.npz", **arrays, **extra_arrays)
        (tmp / "meta.json").write_text(json.dumps(data.meta, indent=1, sort_keys=True, default=str))

    write_folder_atomic(folder, fill, is_complete)
    return folder


def load_prepared(path: str | Path) -> PreparedDataset:
    """Load a prepared folder (as written by `prepare_dataset`)."""
    folder = Path(path)
    if not is_complete(folder):
        raise DataError(f"{str(folder)!r} is not a prepared dataset folder (needs meta.json and arrays.npz)")
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        missing = [name for name in ARRAY_FIELDS if name not in npz.files]
        if missing:
            raise DataError(f"{folder / 'arrays.npz'}: arrays {missing} missing")
        arrays = {name: npz[name] for name in ARRAY_FIELDS}
    return PreparedDataset(name=meta["dataset"], n_users=int(meta["users"]), n_items=int(meta["items"]),
                           meta=meta, path=str(folder), **arrays)
