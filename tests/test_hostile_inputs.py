"""Input files and settings a hostile or careless user gives (issue 24): the embedding row order of
a CSV source, LLM-ESR inter.txt files with odd ids, devices and sizes a run cannot take, the heads
rule for every run, and one cache for equivalent data options. Each answer is a correct result or
one line naming the file, line or key, exit 2; never a traceback, never a silent wrong result."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import user_subset
from datasets.errors import DataError
from datasets.prepare import prepare_dataset
from datasets.config import DataConfig
from test_config_properties import one_error_line, run_launch

# ---- defect 1: the row order of a CSV source's embedding file -----------------------------------


def csv_dataset(folder: Path, events: list[tuple[str, str, int]], n_rows: int,
                listed: list[str] | None = None, **options) -> DataConfig:
    """Interactions `events`, an embedding file whose row r holds r in column 0 (so the row an
    item got can be read back), and, if `listed`, an item file giving the row order."""
    inter = folder / "inter.csv"
    inter.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in events))
    matrix = np.zeros((n_rows, 4), np.float32)
    matrix[:, 0] = np.arange(n_rows)
    matrix[:, 1] = 1.0                              # no zero rows
    np.save(folder / "emb.npy", matrix)
    extra = {}
    if listed is not None:
        (folder / "items.csv").write_text("item\n" + "".join(f"{k}\n" for k in listed))
        extra["item_text_path"] = str(folder / "items.csv")
    base = dict(name="csv", path=str(inter), embedder="file", embedding_path=str(folder / "emb.npy"),
                cache_dir=str(folder / "cache"), user_core=1, item_core=1, pca_dim=2,
                n_eval_negatives=1, n_similar_users=1)
    return DataConfig(**{**base, **extra, **options})


def rows_by_key(data) -> dict[str, int]:
    """The embedding-file row each item key got, read back from the prepared dataset."""
    keys = np.load(Path(data.path) / "arrays.npz")["item_keys"]
    return dict(zip(keys.tolist(), data.item_text_emb[1:, 0].astype(int).tolist()))


def events_of(items: list[str], users: int = 3) -> list[tuple[str, str, int]]:
    """User u meets every item but items[u] once, each user in another order (so every user has
    an item left to sample as a negative)."""
    out = []
    for u in range(users):
        seen = [item for item in items[u:] + items[:u] if item != items[u % len(items)]]
        out += [(f"u{u}", item, t) for t, item in enumerate(seen)]
    return out


INTEGER_ITEMS = ["1", "2", "3", "10", "11", "20", "21"]


def test_integer_item_keys_take_rows_in_ascending_integer_order(tmp_path):
    data = prepare_dataset(csv_dataset(tmp_path, events_of(INTEGER_ITEMS), len(INTEGER_ITEMS)), False)
    assert rows_by_key(data) == {"1": 0, "2": 1, "3": 2, "10": 3, "11": 4, "20": 5, "21": 6}
    assert data.meta["embedding_rows"] == "one row per distinct item key, in ascending integer order"


def test_one_non_integer_key_is_refused_instead_of_reordering_every_row(tmp_path):
    """Before: `100x` switched the whole file to string order, so item 10 silently got row 1."""
    events = events_of([*INTEGER_ITEMS, "100x"])
    with pytest.raises(DataError) as caught:
        prepare_dataset(csv_dataset(tmp_path, events, len(INTEGER_ITEMS) + 1), False)
    line = events.index(next(e for e in events if e[1] == "100x")) + 2
    message = str(caught.value)
    assert f"inter.csv, line {line}: item '100x' is not an integer" in message
    assert "data.item_text_path" in message and "\n" not in message


def test_an_item_file_gives_the_row_order_whatever_the_keys(tmp_path):
    """The explicit order wins for integer and mixed keys alike: item 10 keeps its listed row."""
    listed = ["21", "10", "3", "1", "20", "2", "11", "100x", "spare"]
    expected = {key: row for row, key in enumerate(listed) if key != "spare"}
    for name, items in (("integers", INTEGER_ITEMS), ("mixed", [*INTEGER_ITEMS, "100x"])):
        folder = tmp_path / name
        folder.mkdir()
        data = prepare_dataset(csv_dataset(folder, events_of(items), len(listed), listed), False)
        assert rows_by_key(data) == {k: expected[k] for k in items}, name
        assert data.meta["embedding_rows"] == "one row per data row of items.csv, in its order"


@pytest.mark.parametrize("listed, fragment", [
    (["1", "2", "3", "10", "11", "20"], "inter.csv, line {line}: item '21' is not listed in"),
    (["1", "2", "3", "10", "11", "20", "21", "01"], "items.csv, line 9: item '01' is listed again (first on line 2)"),
])
def test_an_item_file_that_cannot_give_every_row_is_refused(tmp_path, listed, fragment):
    events = events_of(INTEGER_ITEMS)
    line = events.index(next(e for e in events if e[1] == "21")) + 2
    with pytest.raises(DataError, match=fragment.format(line=line).replace("(", r"\(").replace(")", r"\)")):
        prepare_dataset(csv_dataset(tmp_path, events, len(listed), listed), False)


def test_a_matrix_of_the_wrong_length_names_the_row_order(tmp_path):
    with pytest.raises(DataError, match=r"shape \(5, 4\), expected \(7, D\): one row per distinct item key, "
                                        r"in ascending integer order"):
        prepare_dataset(csv_dataset(tmp_path, events_of(INTEGER_ITEMS), 5), False)


#: integer keys written canonically, and text keys holding a letter (so no two keys name one item)
KEYS = st.one_of(st.integers(-10**6, 10**6).map(str),
                 st.tuples(st.sampled_from("abxyz"), st.text("abcxyz_-0123456789", max_size=5)).map("".join))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(KEYS, min_size=4, max_size=8, unique=True), order=st.randoms(use_true_random=False),
       with_file=st.booleans())
def test_every_item_gets_the_row_the_documented_order_gives_it(items, order, with_file):
    """Any keys, with or without an item file (listed in any order): each item's vector is the
    row the documented rule assigns, or the file is refused in one line."""
    listed = list(items)
    order.shuffle(listed)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = csv_dataset(Path(tmp), events_of(items), len(items), listed if with_file else None)
        try:
            data = prepare_dataset(cfg, False)
        except DataError as error:
            assert "\n" not in str(error) and not with_file and "is not an integer" in str(error)
            assert any(c.isalpha() for k in items for c in k)
            event("refused: text keys without an item file")
            return
        if with_file:
            expected = {k: listed.index(k) for k in items}
        else:
            expected = {k: r for r, k in enumerate(sorted(items, key=int))}
        assert rows_by_key(data) == expected
        event("prepared")


# ---- defect 9: LLM-ESR inter.txt ids, the embedder device, an absurd max_len ---------------------

GOOD_LINES = [f"{u} {i}" for u in range(1, 6) for i in range(1, 6) if i != u]   # one item left to sample


def llmesr_folder(root: Path, extra: list[str], rows: int = 5) -> dict[str, str]:
    """`data.*` options of an llmesr dataset: inter.txt (the good lines + `extra`), a matrix."""
    folder = root / "data"
    folder.mkdir(exist_ok=True)
    (folder / "inter.txt").write_text("\n".join(GOOD_LINES + extra) + "\n", encoding="utf-8")
    matrix = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    np.save(root / "emb.npy", matrix)
    return {"path": str(folder), "embedding_path": str(root / "emb.npy"), "cache_dir": str(root / "cache"),
            "n_eval_negatives": "1", "pca_dim": "4", "n_similar_users": "2"}


def set_args(options: dict[str, str]) -> list[str]:
    return [f"--set=data.{key}={value}" for key, value in options.items()]


def llmesr_config(options: dict[str, str], **extra) -> DataConfig:
    return DataConfig(name="llmesr", path=options["path"], embedding_path=options["embedding_path"],
                      cache_dir=options["cache_dir"], n_eval_negatives=1, pca_dim=4, n_similar_users=2, **extra)


@pytest.mark.parametrize("bad", ["3 12345678901234567890", "3 ²", "3 ١", "3 1_0", "3 +4", "3 0", "3", "3 4 5"])
def test_odd_ids_in_inter_txt_name_the_file_and_line(tmp_path, bad):
    """Before: a 20-digit id raised OverflowError (traceback); `3 ²` said only "invalid literal"."""
    args = set_args(llmesr_folder(tmp_path, [bad]))
    line = one_error_line(*run_launch("prepare", "--dataset", "llmesr", *args)[::2])
    assert f"inter.txt, line {len(GOOD_LINES) + 1}: malformed" in line and repr(bad) in line, line


def test_a_huge_item_id_allocates_nothing_before_the_shape_check(tmp_path):
    """Before: arrays of length max id (2e9 ids: 15.9 GB, 69 s) before the shape check refused the
    file. Now they are sized by the distinct ids; measured here with id 5e7 (400 MB before)."""
    args = set_args(llmesr_folder(tmp_path, ["3 50000000"]))
    tracemalloc.start()
    try:
        code, _, stderr = run_launch("prepare", "--dataset", "llmesr", *args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line = one_error_line(code, stderr)
    assert "shape (5, 8), expected (50000000, D): row r - 1 is item id r" in line, line
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_sparse_llmesr_ids_take_their_own_rows(tmp_path):
    """Distinct ids only in memory, yet item r still gets matrix row r - 1 (or r with padding)."""
    for rows, shift in ((40, 1), (41, 0)):
        options = llmesr_folder(tmp_path, ["1 40", "2 40", "3 40"], rows=rows)
        data = prepare_dataset(llmesr_config(options), False)
        matrix = np.load(options["embedding_path"])
        keys = np.load(Path(data.path) / "arrays.npz")["item_keys"].astype(int)
        assert keys.tolist() == [1, 2, 3, 4, 5, 40]
        assert np.array_equal(data.item_text_emb[1:], matrix[keys - shift])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_embed_device_cuda_without_cuda_is_one_line(tmp_path):
    """Before: torch's AssertionError traceback ("Torch not compiled with CUDA enabled")."""
    cfg = csv_dataset(tmp_path, events_of(INTEGER_ITEMS), len(INTEGER_ITEMS))
    args = [f"--set=data.{k}={getattr(cfg, k)}" for k in ("path", "embedder", "embedding_path", "cache_dir",
                                                          "user_core", "item_core", "pca_dim", "n_eval_negatives")]
    line = one_error_line(*run_launch("prepare", "--dataset", "csv", *args, "--set=data.embed_device=cuda")[::2])
    assert "data.embed_device: got 'cuda' but no CUDA device is available" in line, line


def test_an_absurd_max_len_is_one_line_before_any_work():
    """Before: a torch C++ traceback from the position table's size."""
    line = one_error_line(*run_launch("train", "--set", "model.max_len=99999999999999999999")[::2])
    assert line.startswith("error: model.max_len: got 99999999999999999999; allowed: int in [2, 1e+09]"), line


PAIR = st.tuples(st.integers(1, 4), st.integers(1, 12)).map(lambda p: f"{p[0]} {p[1]}")
ODD_LINE = st.one_of(st.text(" \t0123456789²١-+x_", max_size=8),
                     st.tuples(st.integers(1, 8), st.integers(0, 10**22)).map(lambda p: f"{p[0]} {p[1]}"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good=st.lists(PAIR, min_size=12, max_size=30), odd=st.none() | ODD_LINE, where=st.integers(0, 30))
def test_any_small_inter_txt_prepares_or_raises_one_data_error_line(good, odd, where):
    """Mostly good `user item` lines, at most one odd line (junk, a 0, a 20-digit or non-ASCII id)."""
    lines = good[:where] + ([odd] if odd is not None else []) + good[where:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "inter.txt").write_text("\n".join(lines) + "\n")
        rows = max(int(line.split()[1]) for line in good)            # the good lines' largest item id
        np.save(folder / "emb.npy", np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32))
        cfg = DataConfig(name="llmesr", path=tmp, embedding_path=str(folder / "emb.npy"),
                         cache_dir=str(folder / "cache"), n_eval_negatives=1, pca_dim=2, n_similar_users=1)
        try:
            data = prepare_dataset(cfg, False)
        except DataError as error:
            assert str(error) and "\n" not in str(error)
            event(f"DataError: {'line' if ', line ' in str(error) else str(error).split(':')[-1][:30]}")
            return
        event("prepared")
        assert data.seq_items.min() >= 1 and data.seq_items.max() <= data.n_items


# ---- defect 11: llmesr's embedder in meta.json, one cache for equivalent options ----------------

def test_llmesr_meta_says_file_and_both_spellings_share_one_cache(tmp_path):
    """Before: meta.json said "embedder": "file" on top but options.embedder "minilm", and
    `data.embedder=file` prepared a second copy of the same data."""
    options = llmesr_folder(tmp_path, [])
    default = prepare_dataset(llmesr_config(options), False)
    explicit = prepare_dataset(llmesr_config(options, embedder="file"), False)
    assert default.path == explicit.path
    meta = json.loads((Path(default.path) / "meta.json").read_text())
    assert meta["embedder"] == meta["options"]["embedder"] == "file"
    assert len(list(Path(options["cache_dir"]).glob("llmesr-*"))) == 1


def test_tail_user_options_a_preset_overrides_share_one_cache(tmp_path):
    cfg = csv_dataset(tmp_path, events_of(INTEGER_ITEMS, users=4), len(INTEGER_ITEMS))
    paths = {prepare_dataset(DataConfig(**{**cfg.__dict__, **change}), False).path
             for change in ({"tail_user_preset": "yelp"}, {"tail_user_preset": "yelp", "tail_user_share": 0.5},
                            {"tail_user_preset": "yelp", "tail_user_threshold": 3})}
    assert len(paths) == 1
    shares = {prepare_dataset(DataConfig(**{**cfg.__dict__, **change}), False).path
              for change in ({"tail_user_threshold": 3}, {"tail_user_threshold": 3, "tail_user_share": 0.5})}
    assert len(shares) == 1 and shares != paths


# ---- defect 10: max_len far above every history --------------------------------------------------

@pytest.fixture(scope="module")
def few_users(ml100k):
    return user_subset(ml100k, 30)


def small_configs(max_len: int, backbone: str = "sasrec"):
    from model.config import ModelConfig, TrainConfig

    model = ModelConfig(backbone=backbone, hidden_size=8, num_blocks=1, max_len=max_len, adapter_hidden=16,
                        gamma=0.0, alpha=0.0)
    return model, TrainConfig(epochs=1, patience=0, batch_size=16, device="cpu", seed=5)


def test_max_len_above_the_longest_history_is_capped_with_a_note_and_the_same_results(few_users):
    """Before: max_len 100000 built [users, 100001] blocks and a 100000-row position table (ml-100k:
    300 s and 6.2 GB an epoch), and every max_len gave different numbers."""
    from model.sequences import longest_input
    from model.pipeline import assemble_trainer

    longest = longest_input(few_users)
    results = {}
    for max_len in (longest, longest + 1, 100_000):
        trainer = assemble_trainer(*small_configs(max_len), few_users)
        assert trainer.model_cfg.max_len == longest and trainer.batches.block.shape[1] == longest + 1
        assert trainer.model.pos_emb.weight.shape[0] == longest
        result = trainer.fit()
        assert result.notes == ([] if max_len == longest else [
            f"model.max_len {max_len} is above the longest input history of 'ml-100k' ({longest} items): "
            f"windows capped at {longest} (any max_len >= {longest} gives these same results)"])
        results[max_len] = (result.valid, result.test, [h["train_loss"] for h in result.history])
    assert results[longest] == results[longest + 1] == results[100_000]


def test_references_are_the_same_under_any_max_len_above_the_longest(few_users):
    from model.baselines import reference_metrics
    from model.sequences import longest_input

    longest = longest_input(few_users)
    assert reference_metrics(few_users, "test", longest) == reference_metrics(few_users, "test", 10**8)


# ---- defect 12: the heads rule for every run -------------------------------------------------------

def test_train_with_heads_that_do_not_split_hidden_is_one_line_before_the_data():
    """Before: gru4rec (whose cross-attention splits heads), hidden 30, 4 heads: a RuntimeError
    shape traceback in the first batch, after preparing the data."""
    line = one_error_line(*run_launch("train", "--set", "model.backbone=gru4rec", "--set", "model.hidden_size=30",
                                      "--set", "model.num_heads=4", "--set", "data.name=csv")[::2])
    assert line.startswith("error: model.num_heads: got 4 with model.hidden_size 30, which the cross-attention "
                           "between the two views"), line
    assert "a divisor of 30 (e.g. 1, 2, 3, 5, 6, 10, 15, 30)" in line


@settings(max_examples=40, deadline=None)
@given(backbone=st.sampled_from(["sasrec", "bert4rec", "gru4rec"]), hidden=st.integers(1, 24),
       heads=st.integers(1, 6), semantic=st.booleans(), cross=st.booleans())
def test_any_heads_and_hidden_build_a_working_model_or_one_config_error(few_users, backbone, hidden, heads,
                                                                         semantic, cross):
    from model.config import ModelConfig
    from model.llmesr import build_model
    from settings import ConfigError

    cfg = ModelConfig(backbone=backbone, hidden_size=hidden, num_heads=heads, num_blocks=1, max_len=6,
                      adapter_hidden=8, semantic_view=semantic, cross_attention=cross, pca_init=False, gamma=0.0)
    from model.pipeline import assemble_trainer
    from model.config import TrainConfig

    try:
        trainer = assemble_trainer(cfg, TrainConfig(device="cpu", epochs=1), few_users)
    except ConfigError as error:
        assert str(error).startswith("model.num_heads: got") and hidden % heads
        return
    inputs = torch.as_tensor(np.arange(1, 13).reshape(2, 6))
    with torch.no_grad():
        scores = trainer.model.score(inputs, trainer.model.all_item_views())
    assert scores.shape == (2, few_users.n_items + 2)
