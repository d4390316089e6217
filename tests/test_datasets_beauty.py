"""The amazon-beauty source on the real files (../shared/data/amazon-beauty): counts, ASIN ids, item
text, order and split, bad lines. Loading the files takes about a second; the `beauty` fixture
prepares the whole dataset from a random item embedding file (the MiniLM embedder is exercised on
amazon-scientific; over Beauty's 12k texts it would add two cold-cache minutes to every CI run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from datasets.errors import DataError
from datasets.prepare import describe, prepare_dataset
from datasets.cache import cache_key
from datasets.config import DataConfig, resolve_cores
from datasets.processing import build_sequences, exact_duplicates
from datasets.sources import get_source
from runtime import quiet_child_environment
from tests.conftest import HANG_GUARD_S, REPO, SHARED_DATA, TEST_CACHE, data_config

FOLDER = SHARED_DATA / "amazon-beauty"
COUNTS = (22363, 12101, 198502)      # users, items, interactions (data README)
FIRST_LINE = "A1YJEY40YUW4SE B004756YJA B004ZT0SSG B0020YLEYK 7806397051 B002WLWX82".split()


@pytest.fixture(scope="module")
def raw():
    cfg = data_config("amazon-beauty")
    source = get_source("amazon-beauty")
    return source.load(cfg, source.files(cfg))


@pytest.fixture(scope="module")
def lines() -> dict[str, list[str]]:
    """user -> ASINs, read independently of the source (plain split: the file has no quoting)."""
    rows = [line.split() for line in (FOLDER / "user_sequence.txt").read_text().splitlines()]
    return {row[0]: row[1:] for row in rows}


@pytest.fixture(scope="session")
def embedding_file(tmp_path_factory):
    """RANDOM item vectors, one row per ASIN in ascending order (the source's documented row order)."""
    path = tmp_path_factory.mktemp("beauty") / "item_emb.npy"
    np.save(path, np.random.default_rng(0).normal(size=(COUNTS[1], 24)).astype(np.float32))
    return path


@pytest.fixture(scope="session")
def beauty(embedding_file):
    """Amazon Beauty prepared with default options but the file embedder (cached in .cache/test)."""
    return prepare_dataset(data_config("amazon-beauty", embedder="file", embedding_path=str(embedding_file)),
                           progress=False)


def test_counts_and_the_default_core_keeps_the_published_5_core(raw):
    assert (raw.meta["raw_users"], raw.meta["raw_items"], raw.meta["raw_interactions"]) == COUNTS
    assert not exact_duplicates(raw).any()          # so dropping duplicates changes nothing
    cfg = resolve_cores(DataConfig(name="amazon-beauty"))
    assert (cfg.user_core, cfg.item_core) == (5, 5)
    seqs = build_sequences(raw, cfg.user_core, cfg.item_core)
    assert seqs.kcore.after == seqs.kcore.before == COUNTS
    # one more interaction per item is not the published split any more: the default is the right one
    assert build_sequences(raw, 5, 6).kcore.after[2] < COUNTS[2]


def test_ids_order_and_split_follow_the_file(raw, lines):
    seqs = build_sequences(raw, 5, 5)
    assert seqs.item_keys.tolist() == sorted({a for seq in lines.values() for a in seq})
    assert seqs.user_keys.tolist() == sorted(lines)
    for user, key in enumerate(seqs.user_keys.tolist()):       # every user: time order = line order
        ids = seqs.seq_items[seqs.seq_offsets[user]:seqs.seq_offsets[user + 1]]
        assert seqs.item_keys[ids - 1].tolist() == lines[key], key


def test_every_item_has_text_and_a_known_item_reads_as_expected(raw):
    texts = raw.texts()
    assert len(texts) == COUNTS[1] and all(texts) and raw.meta["items_without_text"] == 0
    assert raw.item_text["7806397051"] == ("WAWO 15 Color Professionl Makeup Eyeshadow Camouflage Facial "
                                           "Concealer Neutral Palette. Beauty, Makeup, Face, Concealers & "
                                           "Neutralizers. COKA.")
    # a quoted newline in the title, a doubled quote in the categories, no title and no brand
    assert raw.item_text["B0001ZYL3Q"] == ("TheraNeem Cream - Original Organix South 2 oz Cream Vanilla. "
                                           "Beauty, Skin Care, Body, Moisturizers, Lotions. Organix.")
    assert raw.item_text["9788072216"].startswith("Prada Candy By Prada Eau De Parfum Spray 1.7 Oz For Women. "
                                                  "Beauty, Fragrance, Women's, Eau de Parfum. Prada.")
    assert raw.item_text["B000GZES7A"] == "Beauty, Skin Care, Eyes, Creams."
    assert not any("&amp;" in t or "\t" in t or "\n" in t for t in texts)


def test_both_files_key_the_cache():
    cfg = resolve_cores(data_config("amazon-beauty"))
    _, content = cache_key(cfg, get_source("amazon-beauty").files(cfg))
    digests = {f["name"]: f["sha256"][:8] for f in content["files"]}
    assert digests == {"user_sequence.txt": "47197cbe", "Amazon_Beauty.item": "e56c8cbc"}   # data README


def _copy(tmp_path, sequences: str | None = None, items: str | None = None) -> DataConfig:
    folder = tmp_path / "amazon-beauty"
    folder.mkdir(parents=True)
    for name, text in (("user_sequence.txt", sequences), ("Amazon_Beauty.item", items)):
        if text is None:
            shutil.copy(FOLDER / name, folder / name)
        else:
            (folder / name).write_text(text, encoding="utf-8")
    return DataConfig(name="amazon-beauty", data_root=str(tmp_path), cache_dir=str(tmp_path / "c"))


def test_a_user_without_items_names_file_and_line(tmp_path):
    text = " ".join(FIRST_LINE) + "\nA60XNB876KYML B0009P4PZC B009HULFLW\nA3G6XNM240RMWA\n"
    with pytest.raises(DataError, match=r"user_sequence.txt, line 3: malformed \(user 'A3G6XNM240RMWA' "
                                        r"has no items; expected `USER_ID ITEM_ASIN ITEM_ASIN ...`\)"):
        prepare_dataset(_copy(tmp_path, sequences=text), False)
    assert not (tmp_path / "c").exists()          # refused before anything was cached


@pytest.mark.parametrize("text, message", [
    ("u1 B004756YJA B0000XXXXX\n", r"user_sequence.txt, line 1: item 'B0000XXXXX' is not in .*Amazon_Beauty.item"),
    ("u1 B004756YJA\n\nu1 B004ZT0SSG\n", r"user_sequence.txt, line 3: user 'u1' again \(first on line 1\)"),
])
def test_bad_sequence_lines_name_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        prepare_dataset(_copy(tmp_path, sequences=text), False)


def test_bad_item_records_name_file_and_line(tmp_path):
    header, *rows = (FOLDER / "Amazon_Beauty.item").read_text(encoding="utf-8").split("\n", 3)[:3]
    asin, title, kind, rank, _, price, brand = rows[1].split("\t")
    cases = {
        "\t".join([asin, title, kind, rank, "'Beauty', Makeup", price, brand]): r"line 3: categories",
        "\t".join([asin, title, kind]): r"line 3: malformed \(3 tab-separated fields, expected 7",
        rows[0]: r"line 3: item '7806397051' is listed again \(first on line 2\)",
    }
    for number, (bad, message) in enumerate(cases.items()):
        cfg = _copy(tmp_path / str(number), items="\n".join([header, rows[0], bad]) + "\n")
        with pytest.raises(DataError, match=rf"Amazon_Beauty.item, {message}"):
            prepare_dataset(cfg, False)


# ---- the full preparation ---------------------------------------------------------------------

def test_prepared_counts_split_and_keys(beauty, raw, lines, embedding_file):
    assert (beauty.n_users, beauty.n_items, beauty.n_interactions) == COUNTS
    with np.load(f"{beauty.path}/arrays.npz", allow_pickle=False) as npz:
        users, items = npz["user_keys"].tolist(), npz["item_keys"].tolist()
    assert items == sorted(raw.item_text) and users == sorted(lines)
    user = users.index(FIRST_LINE[0])
    named = lambda ids: [items[i - 1] for i in np.atleast_1d(ids).tolist()]   # noqa: E731
    assert named(beauty.sequence(user)[:-2]) == FIRST_LINE[1:4]               # training part
    assert named(beauty.valid_targets[user]) == ["7806397051"]
    assert named(beauty.test_targets[user]) == ["B002WLWX82"]
    # the file's row r is the r-th ASIN in ascending order, and the ids ascend with the ASINs
    assert np.array_equal(beauty.item_text_emb[1:], np.load(embedding_file)) and not beauty.item_text_emb[0].any()
    assert beauty.meta["kcore"]["after"] == beauty.meta["kcore"]["before"]


def test_launch_prepare_prints_the_counts(beauty, embedding_file):
    done = subprocess.run(
        [sys.executable, "launch.py", "prepare", "--dataset", "amazon-beauty", "--json",
         "--set", f"data.cache_dir={TEST_CACHE}", "--set", f"data.data_root={SHARED_DATA}",
         "--set", "data.embedder=file", "--set", f"data.embedding_path={embedding_file}"],
        cwd=REPO, env=quiet_child_environment(), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == json.loads(json.dumps(describe(beauty)))
    assert (out["users"], out["items"], out["interactions"]) == COUNTS
