"""The prepared-data cache key covers the code that prepares data: a warm cache must never hand
out a dataset that older preparing code made (a changed k-core would otherwise go unseen)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from datasets import cache

PACKAGE = Path(cache.__file__).resolve().parent


@pytest.fixture()
def package_copy(tmp_path) -> Path:
    """A copy of datasets/ to edit (the hash reads any folder)."""
    folder = tmp_path / "datasets"
    shutil.copytree(PACKAGE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_every_module_but_the_cache_plumbing_is_hashed():
    hashed = {p.name for p in cache.preparing_modules()}
    everything = {p.name for p in PACKAGE.glob("*.py")}
    assert everything - hashed == {"__init__.py", "cache.py", "config.py", "errors.py"}
    assert {"processing.py", "prepare.py", "similar.py", "negatives.py", "source_ml100k.py"} <= hashed


def test_a_copy_hashes_the_same(package_copy):
    assert cache.code_hash(package_copy) == cache.code_hash(PACKAGE)


@pytest.mark.parametrize("module, old, new", [
    ("processing.py", "MIN_USER_LENGTH = 3", "MIN_USER_LENGTH = 4"),
    ("processing.py", "np.argsort(train_count[1:], kind=\"stable\")", "np.argsort(-train_count[1:], kind=\"stable\")"),
    ("similar.py", "sims[rows, rows + start] = -torch.inf", "pass"),
    ("prepare.py", "np.random.default_rng([cfg.seed, 1])", "np.random.default_rng([cfg.seed, 3])"),
])
def test_a_code_change_changes_the_key(package_copy, module, old, new):
    before = cache.code_hash(package_copy)
    edit(package_copy / module, old, new)
    assert cache.code_hash(package_copy) != before


def test_a_new_preparing_module_changes_the_key(package_copy):
    before = cache.code_hash(package_copy)
    (package_copy / "source_new.py").write_text("def load():\n    return 1\n")
    assert cache.code_hash(package_copy) != before


def test_comments_docstrings_and_plumbing_keep_the_key(package_copy):
    before = cache.code_hash(package_copy)
    edit(package_copy / "processing.py", "MIN_USER_LENGTH = 3", "MIN_USER_LENGTH = 3  # a new comment\n\n")
    edit(package_copy / "processing.py", '"""bool [U]:', '"""Reworded. bool [U]:')
    edit(package_copy / "errors.py", "class", "# plumbing\nclass")
    (package_copy / "cache.py").write_text("# not preparing code\n")
    assert cache.code_hash(package_copy) == before


def tiny_log(folder: Path):
    from datasets.config import DataConfig

    folder.mkdir()
    rows = [f"u{u},{(u + k) % 6 + 1},{k}" for u in range(5) for k in range(4)]
    (folder / "inter.csv").write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    np.save(folder / "emb.npy", np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    return DataConfig(name="csv", path=str(folder / "inter.csv"), embedder="file",
                      embedding_path=str(folder / "emb.npy"), cache_dir=str(folder / "cache"),
                      user_core=3, item_core=1, pca_dim=2, n_similar_users=2, n_eval_negatives=1)


def test_warm_cache_is_not_used_after_a_code_change(tmp_path, monkeypatch):
    from datasets.prepare import prepare_dataset

    cfg = tiny_log(tmp_path / "log")
    first = prepare_dataset(cfg, progress=False)
    assert first.meta["key_content"]["code"] == cache.code_hash()
    assert prepare_dataset(cfg, progress=False).path == first.path                 # warm: reused
    monkeypatch.setattr(cache, "code_hash", lambda folder=None: "0123456789abcdef")
    again = prepare_dataset(cfg, progress=False)
    assert again.path != first.path and again.meta["key_content"]["code"] == "0123456789abcdef"


def test_the_code_dump_is_the_same_on_every_python():
    """Written by hand from the grammar: no empty list or None field appears, so the key does
    not change with Python's own additions (3.12's type_params=[]) or 3.13's shorter dump."""
    import ast

    tree = ast.parse("@cache\ndef f(x, *, y=None):\n    return x\n")
    assert cache.canonical_dump(tree) == (
        "Module(body=[FunctionDef(name='f', args=arguments(args=[arg(arg='x')], kwonlyargs=[arg(arg='y')], "
        "kw_defaults=[Constant()]), body=[Return(value=Name(id='x', ctx=Load()))], "
        "decorator_list=[Name(id='cache', ctx=Load())])])")
    function = tree.body[0]
    function._fields = (*function._fields, "type_params")      # as Python 3.12 builds it
    function.type_params = []
    assert "type_params" not in cache.canonical_dump(tree)
