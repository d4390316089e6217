"""datasets/ under odd and hostile input: exact duplicate rows, NaN timestamps, a BOM, filtering
that leaves too little, LLM-ESR's own files, and arbitrary small CSVs (property-based)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import launch
from datasets.errors import DataError
from datasets.prepare import describe, prepare_dataset
from datasets.config import DataConfig
from datasets.processing import exact_duplicates
from datasets.sources import get_source
from tests.conftest import SHARED_DATA, data_config

YELP = SHARED_DATA / "llmesr-yelp"
# five users, four distinct items each, strictly increasing timestamps: nothing repeats
EVENTS = [(f"u{u}", (u + k) % 6 + 1, 10 * k + u) for u in range(5) for k in range(4)]


def write_events(path: Path, events, copies: int = 1, header: str = "user,item,timestamp",
                 encoding: str = "utf-8") -> Path:
    lines = [header] + [f"{u},{i},{t}" for u, i, t in events for _ in range(copies)]
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def csv_config(tmp_path: Path, inter: Path, n_items: int = 6, **options) -> DataConfig:
    """RANDOM item embeddings (only the loader is under test) for items 1..n_items."""
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32))
    base = dict(name="csv", path=str(inter), embedder="file", embedding_path=str(emb),
                cache_dir=str(tmp_path / "cache"), user_core=3, item_core=1, pca_dim=4,
                n_eval_negatives=1, n_similar_users=2)
    return DataConfig(**{**base, **options})


# ---- item 1: exact duplicates ------------------------------------------------------------------

def test_exact_duplicate_rows_are_dropped_counted_and_recorded(tmp_path):
    once = prepare_dataset(csv_config(tmp_path, write_events(tmp_path / "once.csv", EVENTS)), False)
    thrice = prepare_dataset(csv_config(tmp_path, write_events(tmp_path / "thrice.csv", EVENTS, 3)), False)
    assert thrice.meta["duplicates_dropped"] == 2 * len(EVENTS) and once.meta["duplicates_dropped"] == 0
    for name in ("seq_items", "seq_offsets", "item_train_count", "valid_negatives", "similar_users"):
        assert np.array_equal(getattr(once, name), getattr(thrice, name)), name
    last_train = thrice.seq_items[thrice.seq_offsets[1:] - 3]
    assert not (thrice.test_targets == last_train).any()       # the leak: target = last input
    assert describe(thrice)["duplicates_dropped"] == 2 * len(EVENTS)
    saved = (Path(thrice.path) / "meta.json").read_text()
    assert '"duplicates_dropped": 40' in saved


def test_keep_duplicates_keeps_repeated_events(tmp_path):
    cfg = csv_config(tmp_path, write_events(tmp_path / "thrice.csv", EVENTS, 3), keep_duplicates=True)
    data = prepare_dataset(cfg, False)
    assert data.n_interactions == 3 * len(EVENTS) and data.meta["duplicates_dropped"] == 0
    assert (data.test_targets == data.valid_targets).all()     # the repeats stay, as asked


def test_launch_prepare_prints_the_duplicates(tmp_path, capsys):
    inter = write_events(tmp_path / "thrice.csv", EVENTS, 3)
    cfg = csv_config(tmp_path, inter)
    args = ["prepare", "--dataset", "csv", "--json"] + [
        a for key in ("path", "embedding_path", "cache_dir") for a in ("--set", f"data.{key}={getattr(cfg, key)}")]
    args += ["--set", "data.embedder=file", "--set", "data.user_core=3", "--set", "data.item_core=1",
             "--set", "data.pca_dim=4", "--set", "data.n_eval_negatives=1"]
    assert launch.main(args) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["duplicates_dropped", "40"] in table


def test_bundled_datasets_hold_no_exact_duplicates():
    """So dropping duplicates leaves their prepared arrays as they were."""
    for name in ("ml-100k", "amazon-scientific"):
        cfg = data_config(name)
        source = get_source(name)
        raw = source.load(cfg, source.files(cfg))
        assert raw.users.size > 50_000 and exact_duplicates(raw).sum() == 0, name


def test_duplicates_need_user_item_and_time_equal(tmp_path):
    events = EVENTS + [("u0", 1, 0.0), ("u0", 1, 1.0), ("u1", 1, 0.0), ("u0", 2, 0.0)]
    raw = get_source("csv").load(DataConfig(name="csv"), [write_events(tmp_path / "e.csv", events)])
    dup = exact_duplicates(raw)
    assert dup.tolist() == [False] * len(EVENTS) + [True, False, False, False]   # later copy goes


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-Infinity", "1e400"])
def test_non_finite_timestamp_names_file_and_line(tmp_path, stamp):
    rows = EVENTS[:3] + [("u9", 1, stamp)] + EVENTS[3:]
    inter = write_events(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=rf"bad.csv, line 5: timestamp '{stamp}' is not a finite number"):
        prepare_dataset(csv_config(tmp_path, inter), False)


def test_utf8_bom_in_the_header_is_accepted(tmp_path):
    plain = prepare_dataset(csv_config(tmp_path, write_events(tmp_path / "plain.csv", EVENTS)), False)
    bom = write_events(tmp_path / "bom.csv", EVENTS, encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    data = prepare_dataset(csv_config(tmp_path, bom), False)
    assert np.array_equal(data.seq_items, plain.seq_items)


def test_text_that_is_not_utf8_names_the_file(tmp_path):
    inter = tmp_path / "latin.csv"
    inter.write_bytes(b"user,item,timestamp\nu1,1,1\nu\xe9,2,2\n")
    with pytest.raises(DataError, match=r"latin.csv, line 3: not UTF-8 text"):
        prepare_dataset(csv_config(tmp_path, inter), False)


# ---- item 13: k-core defaults per source, and filtering that leaves too little ------------------

def yelp_head(tmp_path: Path, lines: int = 3000) -> DataConfig:
    """The first `lines` lines of LLM-ESR's own Yelp inter.txt, with RANDOM embeddings."""
    folder = tmp_path / "yelp"
    folder.mkdir()
    text = "".join((YELP / "inter.txt").read_text().splitlines(keepends=True)[:lines])
    (folder / "inter.txt").write_text(text)
    pairs = np.loadtxt(folder / "inter.txt", dtype=np.int64)
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(pairs[:, 1].max(), 8)).astype(np.float32))
    return DataConfig(name="llmesr", path=str(folder), embedding_path=str(emb),
                      cache_dir=str(tmp_path / "cache"), pca_dim=4)


def test_llmesr_files_are_used_as_filtered_by_default(tmp_path):
    cfg = yelp_head(tmp_path)
    data = prepare_dataset(cfg, False)
    pairs = np.loadtxt(Path(cfg.path) / "inter.txt", dtype=np.int64)
    length = np.bincount(pairs[:, 0])
    kept = pairs[length[pairs[:, 0]] >= 3]           # only the split's own minimum applies
    assert data.n_interactions == len(kept) and data.n_users == np.unique(kept[:, 0]).size
    assert data.n_items == np.unique(kept[:, 1]).size
    assert (data.meta["kcore"]["user_core"], data.meta["kcore"]["item_core"]) == (1, 1)


def test_filtering_that_leaves_too_little_names_the_setting_and_counts(tmp_path):
    cfg = yelp_head(tmp_path)
    cfg.user_core, cfg.item_core = 5, 5
    with pytest.raises(DataError) as info:
        prepare_dataset(cfg, False)
    text = str(info.value)
    assert "data.n_eval_negatives=100" in text and "data.user_core=5, data.item_core=5" in text
    pairs = np.loadtxt(Path(cfg.path) / "inter.txt", dtype=np.int64)
    assert f"of {np.unique(pairs[:, 0]).size} users" in text and f"of {len(pairs)} interactions" in text
    assert "\n" not in text


def test_source_defaults_resolve_and_explicit_values_win():
    from datasets.config import resolve_cores

    assert (resolve_cores(DataConfig(name="ml-100k")).user_core, resolve_cores(DataConfig(name="csv")).item_core) == (5, 5)
    assert resolve_cores(DataConfig(name="llmesr")).user_core == 1
    assert resolve_cores(DataConfig(name="llmesr", item_core=4)).item_core == 4


def test_kcore_that_empties_everything_names_setting_and_counts(tmp_path):
    cfg = csv_config(tmp_path, write_events(tmp_path / "e.csv", EVENTS), user_core=50)
    with pytest.raises(DataError, match=r"data.user_core=50, data.item_core=1\) kept 0 of 5 users, "
                                        r"0 of 6 items, 0 of 20 interactions"):
        prepare_dataset(cfg, False)


# ---- property: any small CSV prepares or fails with one clear DataError line ---------------------

def mostly(good, odd, weight: int = 4):
    """`good` about weight/(weight + 1) of the time, else `odd` (shrinking leans to `good`)."""
    return st.integers(0, weight).flatmap(lambda n: odd if n == weight else good)


GOOD_ROW = st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "7", "-3"]),
                     st.sampled_from(["1", "2", "3", "4", "5", "x"]),
                     st.one_of(st.integers(-5, 20).map(str), st.floats(-1e9, 1e9).map(repr))).map(",".join)
ODD_FIELD = {
    "user": st.sampled_from(["99999999999999999999", " ", "", "1_0", "\u0661", "a,b", '"q"']),
    "item": st.sampled_from(["", "01", "nan", "+2", "x y"]),
    "timestamp": st.one_of(st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "", "t", "0x1"]),
                           st.floats(allow_nan=True, allow_infinity=True).map(repr)),
}
ODD_ROW = st.one_of(st.tuples(ODD_FIELD["user"], st.just("1"), st.just("1")).map(",".join),
                    st.tuples(st.just("u1"), ODD_FIELD["item"], st.just("1")).map(",".join),
                    st.tuples(st.just("u1"), st.just("1"), ODD_FIELD["timestamp"]).map(",".join),
                    st.text(max_size=12))
HEADER = mostly(st.just("user,item,timestamp"),
                st.sampled_from(["timestamp,item,user", "user,item", "", "user;item;timestamp", "User,Item,Timestamp"]))


def csv_text(rows: list[str], bom: bool, copies: int, header: str) -> bytes:
    body = "\n".join([header] + [r for r in rows for _ in range(copies)]) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good=mostly(st.lists(GOOD_ROW, min_size=10, max_size=40), st.lists(GOOD_ROW, max_size=9), weight=2),
       odd=mostly(st.none(), ODD_ROW, weight=1),
       where=st.integers(0, 30), bom=st.booleans(), copies=st.integers(1, 3), header=HEADER,
       raw_bytes=mostly(st.none(), st.binary(max_size=40), weight=9))
def test_any_small_csv_prepares_or_raises_one_data_error_line(good, odd, where, bom, copies, header, raw_bytes):
    """Mostly well-formed rows (duplicated `copies` times, maybe behind a BOM) with at most one odd
    row (bad user, item or timestamp, or random text), or now and then random bytes."""
    rows = good[:where] + ([odd] if odd is not None else []) + good[where:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inter = folder / "inter.csv"
        inter.write_bytes(raw_bytes if raw_bytes is not None else csv_text(rows, bom, copies, header))
        items = {r.split(",")[1].strip() for r in rows if r.count(",") == 2}
        cfg = csv_config(folder, inter, n_items=max(len(items), 1), user_core=1, item_core=1)
        try:
            data = prepare_dataset(cfg, False)
        except DataError as error:
            message = str(error)
            assert message and "\n" not in message
            event(f"DataError: {message.split(':')[-1].strip()[:40]}")
            return
        event("prepared")
        assert data.n_users >= 2 and data.seq_items.min() >= 1 and data.seq_items.max() <= data.n_items
        assert np.isfinite(data.item_pca).all() and math.isfinite(describe(data)["density"])
        assert data.meta["duplicates_dropped"] >= (copies - 1) * len(rows)   # every extra copy went
