"""datasets/: real data (ml-100k from the recbole wheel, amazon-scientific, llmesr-yelp), tiny CSVs
made in tmp_path for the edge cases and the bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from runtime import quiet_child_environment
from datasets.cache import load_prepared
from datasets.errors import DataError
from datasets.pca import pca_reduce
from datasets.prepare import describe, prepare_dataset
from datasets.config import DataConfig
from datasets.negatives import sample_negatives
from datasets.presets import tail_user_threshold
from datasets.similar import top_k_similar
from datasets.sources import get_source
from tests.conftest import HANG_GUARD_S, REPO, SHARED_DATA, TEST_CACHE, data_config

YELP = SHARED_DATA / "llmesr-yelp"


def train_parts(data):
    return [data.sequence(u)[:-2] for u in range(data.n_users)]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def random_matrix(path: Path, rows: int, dim: int = 8, seed: int = 0) -> Path:
    """RANDOM item embeddings (not real ones): only the loaders and shapes are under test."""
    np.save(path, np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32))
    return path


# ---- ml-100k: counts, split, order ------------------------------------------------------------

def _ml100k_frame():
    import pandas as pd

    wheel = TEST_CACHE / "downloads" / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf, zf.open("recbole/dataset_example/ml-100k/ml-100k.inter") as fh:
        return pd.read_csv(fh, sep="\t")


def test_ml100k_counts_match_an_independent_kcore(ml100k):
    assert ml100k.meta["source"] == {"raw_users": 943, "raw_items": 1682, "raw_interactions": 100000}
    df = _ml100k_frame().rename(columns=lambda c: c.split(":")[0])
    while True:   # independent iterative 5-core with pandas
        ok = (df.groupby("user_id")["item_id"].transform("size") >= 5) & \
             (df.groupby("item_id")["user_id"].transform("size") >= 5)
        if ok.all():
            break
        df = df[ok]
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_interactions) == \
        (df.user_id.nunique(), df.item_id.nunique(), len(df))
    # user 0 is the smallest user key; its sequence is its items sorted by time (stable)
    first = df[df.user_id == df.user_id.min()].sort_values("timestamp", kind="stable")
    keys = np.sort(df.item_id.unique())
    assert np.array_equal(keys[ml100k.sequence(0) - 1], first.item_id.to_numpy())


def test_split_is_positional_and_counts_only_training(ml100k, scientific):
    for data in (ml100k, scientific):
        lengths = np.diff(data.seq_offsets)
        assert lengths.min() >= 3 and data.seq_offsets[-1] == data.n_interactions
        assert np.array_equal(data.valid_targets, [data.sequence(u)[-2] for u in range(data.n_users)])
        assert np.array_equal(data.test_targets, [data.sequence(u)[-1] for u in range(data.n_users)])
        counts = np.bincount(np.concatenate(train_parts(data)), minlength=data.n_items + 1)
        assert np.array_equal(counts, data.item_train_count)
        assert data.item_train_count.sum() == data.n_interactions - 2 * data.n_users
        assert data.seq_items.min() >= 1 and data.seq_items.max() == data.n_items


def test_groups(ml100k, scientific):
    for data in (ml100k, scientific):
        tail = data.tail_items
        assert not tail[0] and abs(tail[1:].mean() - 0.8) < 0.001
        assert data.item_train_count[tail].max() <= data.item_train_count[1:][~tail[1:]].min()
        train_len = np.diff(data.seq_offsets) - 2
        assert abs(data.tail_users.mean() - 0.8) < 0.001
        assert train_len[data.tail_users].max() <= train_len[~data.tail_users].min()
    info = describe(scientific)
    assert set(info) >= {"dataset", "users", "items", "interactions", "tail_item_share",
                         "tail_interaction_share", "path"}
    assert 0 < info["tail_interaction_share"] < info["tail_item_share"]
    assert tail_user_threshold("yelp") == 10


# ---- negatives, similar users, PCA ------------------------------------------------------------

def test_negatives_unseen_distinct_and_seeded(ml100k, scientific):
    for data in (ml100k, scientific):
        for neg in (data.valid_negatives, data.test_negatives):
            assert neg.shape == (data.n_users, 100) and neg.min() >= 1 and neg.max() <= data.n_items
            for u in range(0, data.n_users, 7):
                assert not np.isin(neg[u], data.sequence(u)).any()
                assert np.unique(neg[u]).size == neg.shape[1]
    again = sample_negatives(ml100k.seq_items, ml100k.seq_offsets, ml100k.n_items, 100,
                             np.random.default_rng([42, 1]))
    assert np.array_equal(again, ml100k.valid_negatives)
    other = sample_negatives(ml100k.seq_items, ml100k.seq_offsets, ml100k.n_items, 100,
                             np.random.default_rng([43, 1]))
    assert not np.array_equal(other, ml100k.valid_negatives)


def test_similar_users_exclude_self(scientific):
    sim = scientific.similar_users
    assert sim.shape == (scientific.n_users, 10)
    assert not (sim == np.arange(scientific.n_users)[:, None]).any()
    assert all(np.unique(row).size == row.size for row in sim[:500])


def test_blocked_top_k_equals_direct():
    profiles = np.random.default_rng(3).normal(size=(53, 6)).astype(np.float32)
    unit = profiles / np.linalg.norm(profiles, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    direct = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    assert np.array_equal(top_k_similar(profiles, 5, block_size=7), direct)
    assert np.array_equal(top_k_similar(profiles, 5), direct)


def test_pca_reduce_shape_scale_and_padding(scientific):
    out = pca_reduce(scientific.item_text_emb, 32, seed=0)
    assert out.shape == (scientific.n_items + 1, 32) and out.dtype == np.float32
    assert not out[0].any() and abs(out[1:].std() - 0.1) < 1e-3
    assert out[1:, 0].var() > out[1:, -1].var()      # leading component keeps the most variance
    small = pca_reduce(np.random.default_rng(0).normal(size=(6, 3)), 8, seed=0)
    assert small.shape == (6, 8) and not small[:, 3:].any() and not small[0].any()
    assert np.array_equal(scientific.item_pca, pca_reduce(scientific.item_text_emb, 64, 42))


# ---- tiny CSV: iterative k-core, ordering, atomic cache ---------------------------------------

def tiny_csv(tmp_path: Path) -> DataConfig:
    """u3/u4 only fall away in later k-core rounds; u1, u2, u5, u6 survive with 3 items each."""
    rows = ["u1,1,3", "u1,2,2", "u1,3,1", "u2,1,1", "u2,2,2", "u2,3,3", "u3,1,5", "u3,2,5",
            "u3,4,5", "u4,4,1", "u4,5,1", "u4,6,1", "u5,8,1", "u5,9,1", "u5,10,1", "u6,10,1",
            "u6,9,1", "u6,8,2"]
    path = write_csv(tmp_path / "inter.csv", "user,item,timestamp", rows)
    emb = random_matrix(tmp_path / "emb.npy", 9)  # 9 distinct item keys (no item 7)
    return DataConfig(name="csv", path=str(path), embedder="file", embedding_path=str(emb),
                      cache_dir=str(tmp_path / "cache"), user_core=3, item_core=2, pca_dim=4,
                      n_eval_negatives=3)


def test_kcore_is_iterative_and_time_ordered(tmp_path):
    data = prepare_dataset(tiny_csv(tmp_path), progress=False)
    assert (data.n_users, data.n_items, data.n_interactions) == (4, 6, 12)
    # items 1,2,3,8,9,10 -> ids 1..6; u1 sorted by timestamp: 3,2,1; u6 tie at t=1 keeps file order
    assert data.sequence(0).tolist() == [3, 2, 1]
    assert data.sequence(3).tolist() == [6, 5, 4]
    assert data.similar_users.shape == (4, 3)
    emb = np.load(tmp_path / "emb.npy")
    # file rows follow the sorted item keys 1,2,3,4,5,6,8,9,10: the survivors are rows 0,1,2,6,7,8
    assert np.allclose(data.item_text_emb[1:], emb[[0, 1, 2, 6, 7, 8]])


def test_cache_hit_builds_nothing_and_is_identical(ml100k, tmp_path, monkeypatch):
    """Instant by construction (a load, no parsing or building), not by a wall-clock limit."""
    import datasets.prepare

    def no_build(*args, **kwargs):
        raise AssertionError("a cache hit must not build the dataset again")

    monkeypatch.setattr(datasets.prepare, "_build", no_build)
    again = prepare_dataset(data_config("ml-100k"), progress=False)
    monkeypatch.undo()
    loaded = load_prepared(ml100k.path)
    for name, value in ml100k.to_arrays().items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, getattr(again, name)) and np.array_equal(value, getattr(loaded, name))
    assert again.path == ml100k.path and json.loads((Path(ml100k.path) / "meta.json").read_text())["users"] == 943
    changed = prepare_dataset(data_config("ml-100k", n_eval_negatives=20), progress=False)
    assert changed.path != ml100k.path and changed.valid_negatives.shape == (943, 20)


def test_failed_prepare_leaves_nothing(tmp_path, monkeypatch):
    cfg = tiny_csv(tmp_path)
    cfg.n_eval_negatives = 4           # users have only 3 unseen items
    with pytest.raises(DataError, match="n_eval_negatives=4"):
        prepare_dataset(cfg, progress=False)
    cfg.n_eval_negatives = 3
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(cfg, progress=False)
    cache = Path(cfg.cache_dir)
    assert not cache.exists() or not any(p.name.startswith(("csv", ".csv")) for p in cache.iterdir())


# ---- llmesr ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_llmesr_yelp_with_random_embeddings(tmp_path):
    n_items = int(np.loadtxt(YELP / "inter.txt", dtype=np.int64)[:, 1].max())
    emb = random_matrix(tmp_path / "random_item_emb.npy", n_items, dim=16)
    cfg = DataConfig(name="llmesr", data_root=str(SHARED_DATA), embedding_path=str(emb),
                     cache_dir=str(tmp_path / "cache"), pca_dim=8, tail_user_preset="yelp")
    data = prepare_dataset(cfg, progress=False)
    assert data.meta["source"]["raw_users"] == 15720 and data.meta["source"]["raw_items"] == 11383
    assert data.item_text_emb.shape == (data.n_items + 1, 16)
    key = np.load(Path(data.path) / "arrays.npz")["item_keys"].astype(np.int64)
    assert np.allclose(data.item_text_emb[1:], np.load(emb)[key - 1])
    assert (np.diff(data.seq_offsets)[data.tail_users] - 2).max() <= 10
    padded = random_matrix(tmp_path / "padded.npy", n_items + 1, dim=16)
    cfg.embedding_path, cfg.pca_dim = str(padded), 4
    other = prepare_dataset(cfg, progress=False)
    assert np.allclose(other.item_text_emb[1:], np.load(padded)[key])


# ---- bad input ------------------------------------------------------------------------------

def test_bad_inputs_name_file_line_and_shape(tmp_path):
    good = tiny_csv(tmp_path)
    missing = DataConfig(name="csv", path=str(tmp_path / "nope.csv"), embedder="file")
    with pytest.raises(DataError, match="nope.csv"):
        prepare_dataset(missing, progress=False)
    bad_line = write_csv(tmp_path / "bad.csv", "user,item,timestamp", ["a,1,1", "b,2,yesterday"])
    with pytest.raises(DataError, match=r"bad.csv, line 3: timestamp 'yesterday'"):
        prepare_dataset(DataConfig(name="csv", path=str(bad_line), embedder="file",
                                   embedding_path=good.embedding_path, cache_dir=good.cache_dir), False)
    no_col = write_csv(tmp_path / "nocol.csv", "user,item", ["a,1"])
    with pytest.raises(DataError, match=r"nocol.csv, line 1: .*\['timestamp'\]"):
        prepare_dataset(DataConfig(name="csv", path=str(no_col), embedder="file",
                                   embedding_path=good.embedding_path, cache_dir=good.cache_dir), False)
    wrong = random_matrix(tmp_path / "wrong.npy", 7)
    with pytest.raises(DataError, match=r"wrong.npy.*\(7, 8\).*\(9, D\).*\(10, D\)"):
        prepare_dataset(DataConfig(**{**good.__dict__, "embedding_path": str(wrong)}), False)
    with pytest.raises(DataError, match=r"data.user_core=50, data.item_core=2\) kept 0 of 6 users"):
        prepare_dataset(DataConfig(**{**good.__dict__, "user_core": 50}), False)
    with pytest.raises(DataError, match="unknown dataset 'movielens'"):
        get_source("movielens")
    assert not any(Path(good.cache_dir).glob("csv-*")) if Path(good.cache_dir).exists() else True


def test_llmesr_bad_inputs(tmp_path):
    folder = tmp_path / "yelp"
    folder.mkdir()
    (folder / "inter.txt").write_text("1 1\n1 2\n1 x\n")
    emb = random_matrix(tmp_path / "e.npy", 2)
    cfg = DataConfig(name="llmesr", path=str(folder), embedding_path=str(emb), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"inter.txt, line 3: malformed"):
        prepare_dataset(cfg, False)
    with pytest.raises(DataError, match="embedding_path is required"):
        prepare_dataset(DataConfig(name="llmesr", path=str(folder)), False)
    pkl = tmp_path / "e.pkl"
    pkl.write_bytes(b"not read")
    with pytest.raises(DataError, match=r"e.pkl.*pickle.*data.allow_pickle=true"):
        prepare_dataset(DataConfig(name="llmesr", path=str(folder), embedding_path=str(pkl)), False)
    with pytest.raises(DataError, match=r"nowhere.*inter.txt.*does not exist"):
        prepare_dataset(DataConfig(name="llmesr", path=str(tmp_path / "nowhere"), embedding_path=str(emb)), False)


def test_scientific_malformed_line(tmp_path):
    root = tmp_path / "amazon-scientific"
    root.mkdir()
    for name in ("Scientific.item2index", "Scientific.text"):
        (root / name).write_text((SHARED_DATA / "amazon-scientific" / name).read_text())
    (root / "Scientific.test.inter").write_text(
        "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t1 2 3\t4\n1\t5 6\n")
    with pytest.raises(DataError, match=r"Scientific.test.inter, line 3: malformed"):
        prepare_dataset(DataConfig(name="amazon-scientific", data_root=str(tmp_path),
                                   cache_dir=str(tmp_path / "c")), False)


# ---- launch.py end to end ---------------------------------------------------------------------

def _run_launch(*args: str) -> subprocess.CompletedProcess:
    """launch.py in a subprocess from the repo root; asserts it succeeded."""
    env = quiet_child_environment()
    done = subprocess.run([sys.executable, "launch.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _launch(*args: str) -> dict:
    """The JSON object on the last line of a `--json` launch.py command."""
    return json.loads(_run_launch(*args).stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_launch_prepare_json(scientific):
    out = _launch("prepare", "--dataset", "amazon-scientific", "--json",
                  "--set", f"data.cache_dir={TEST_CACHE}", "--set", f"data.data_root={SHARED_DATA}")
    assert out == json.loads(json.dumps(describe(scientific)))


@pytest.mark.slow
def test_launch_embeds_texts_from_repo_root(tmp_path):
    """A fresh cache forces MiniLM to run in a process started from the repo root, where our
    `datasets` package shadows Hugging Face's: sentence-transformers must still work."""
    rows = [f"u{u},{i},{t}" for u in range(6) for t, i in enumerate((u + k) % 8 + 1 for k in range(5))]
    inter = write_csv(tmp_path / "inter.csv", "user,item,timestamp", rows)
    titles = ["red apple", "green pear", "blue car", "fast train", "old book", "new phone", "warm tea", "cold ice"]
    text = write_csv(tmp_path / "text.csv", "item,text", [f"{i + 1},{t}" for i, t in enumerate(titles)])
    cache = tmp_path / "cache"
    out = _launch("prepare", "--dataset", "csv", "--json", "--set", f"data.path={inter}",
                  "--set", f"data.item_text_path={text}", "--set", f"data.cache_dir={cache}",
                  "--set", "data.user_core=3", "--set", "data.item_core=1",
                  "--set", "data.n_eval_negatives=2", "--set", "data.pca_dim=4")
    data = load_prepared(out["path"])
    assert data.meta["embedder"] == "minilm" and data.meta["text_cache_hit"] is False
    assert data.item_text_emb.shape == (9, 384)
    assert np.allclose(np.linalg.norm(data.item_text_emb[1:], axis=1), 1, atol=1e-4)


@pytest.mark.slow
def test_launch_train_prints_each_epoch_then_the_table(ml100k):
    done = _run_launch("train", "--set", "data.name=ml-100k", "--set", f"data.cache_dir={TEST_CACHE}",
                       "--set", "model.hidden_size=16", "--set", "model.max_len=10",
                       "--set", "model.gamma=0", "--set", "model.alpha=0", "--set", "model.adapter_hidden=32",
                       "--set", "train.epochs=2", "--set", "train.batch_size=512", "--set", "train.num_threads=1")
    epochs = [line for line in done.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1", "2"]
    assert "valid ndcg_10" in epochs[0] and "tail_item_ndcg_10" in epochs[0]
    assert "test ndcg_10" in done.stdout
