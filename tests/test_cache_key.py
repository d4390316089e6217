"""The cache keys cover the code that makes what they cache: a warm cache must never hand out a
dataset that older preparing code made (a changed k-core would otherwise go unseen), nor a cluster
artifact that older clustering code made; and `launch.py clusters` warms the entry trials read."""

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


# ---------------------------------------------------------------- cluster artifacts

@pytest.fixture()
def cluster_package_copy(tmp_path) -> Path:
    """A copy of cluster_prep/ to edit."""
    from cluster_prep import cache as cluster_cache

    folder = tmp_path / "cluster_prep"
    shutil.copytree(cluster_cache.PACKAGE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_every_clustering_module_but_the_plumbing_is_hashed():
    from cluster_prep import cache as cluster_cache

    hashed = {p.name for p in cluster_cache.clustering_modules()}
    everything = {p.name for p in cluster_cache.PACKAGE.glob("*.py")}
    assert everything - hashed == {"__init__.py", "cache.py", "config.py"}
    assert {"assign.py", "build.py", "reduce.py", "targets.py", "quality.py"} <= hashed


def test_editing_the_cluster_targets_changes_the_cluster_key(cluster_package_copy):
    from cluster_prep import cache as cluster_cache

    before = cluster_cache.code_hash(cluster_package_copy)
    assert before == cluster_cache.code_hash()
    edit(cluster_package_copy / "targets.py", '"""', '"""Reworded. ')          # a docstring: same key
    assert cluster_cache.code_hash(cluster_package_copy) == before
    edit(cluster_package_copy / "targets.py", "def ", "def unused():\n    return 1\n\n\ndef ")
    assert cluster_cache.code_hash(cluster_package_copy) != before


def sentinel_config(tmp_path: Path, *settings: str):
    from tuning.config import load_config

    return load_config(None, ["model.hidden_size=8", "model.max_len=6", "model.num_blocks=1",
                              "model.adapter_hidden=16", "train.device=cpu", "clusters.n_clusters=3",
                              "clusters.dim=4", f"data.cache_dir={tmp_path / 'cache'}", *settings])


def test_a_cluster_code_change_is_a_cache_miss(tmp_path, monkeypatch):
    from cluster_prep import cache as cluster_cache
    from model.pipeline import run_clusters
    from synthetic_data import sentinel_dataset

    data, config = sentinel_dataset(dim=8), sentinel_config(tmp_path)
    first = run_clusters(config, data)
    assert run_clusters(config, data).path == first.path                            # warm: reused
    monkeypatch.setattr(cluster_cache, "code_hash", lambda folder=None: "0123456789abcdef")
    assert run_clusters(config, data).path != first.path


def test_launch_clusters_warms_the_entry_a_trial_reads(tmp_path, monkeypatch):
    """The trial's clusters live in the model's hidden-size PCA; the prepared PCA here is wider
    (data.pca_dim 16, hidden_size 8), so clustering that one would warm an entry no trial reads."""
    import cluster_prep.build as cluster_build
    import datasets.prepare
    import launch
    from model.pipeline import icc_clusters
    from synthetic_data import sentinel_dataset

    data = sentinel_dataset(dim=16)
    assert data.item_pca.shape[1] == 16
    monkeypatch.setattr(datasets.prepare, "prepare_dataset", lambda cfg, progress=True: data)
    settings = ["model.hidden_size=8", "model.max_len=6", "model.num_blocks=1", "model.adapter_hidden=16",
                "clusters.dim=4", f"data.cache_dir={tmp_path / 'cache'}"]
    argv = ["clusters", "--method", "kmeans", "--n-clusters", "3", "--json"]
    assert launch.main([*argv, *(x for s in settings for x in ("--set", s))]) == 0

    def refuse(*args, **kwargs):
        raise AssertionError("the trial clustered again: launch.py clusters warmed another entry")

    monkeypatch.setattr(cluster_build, "compute_clusters", refuse)
    trial = sentinel_config(tmp_path, "model.variant=icc", "model.gamma=0.1", "clusters.method=kmeans")
    assert icc_clusters(trial, data).n_clusters == 3
