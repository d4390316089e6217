"""The trial table and summary tables, checked against the raw files of one real small experiment.

The experiment is a real Ray Tune + Optuna + ASHA run on MovieLens-100K with a tiny model (4
trials run one after another, 2 epochs, ASHA grace 1 / reduction 2), so some trials finish and
some are stopped by ASHA. Every expectation is recomputed from Ray's files, never typed in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import HANG_GUARD_S, REPO, SHARED_DATA, TEST_CACHE

pytestmark = pytest.mark.slow


def build_small_experiment(root: Path, num_samples: int = 4, epochs: int = 2, search_seed: int = 9,
                           space: dict | None = None) -> Path:
    """A real tiny experiment (ml-100k, hidden 16, max_len 20) in `root`; returns its folder."""
    from tuning.runner import run_experiment
    from tuning.config import config_from_dict

    space = space or {"gamma": {"type": "categorical", "values": [0.0, 0.5]},
                      "n_clusters": {"type": "categorical", "values": [4, 8]},
                      "lr": {"type": "categorical", "values": [0.0001, 0.005]}}
    config = config_from_dict({
        "data": {"name": "ml-100k", "data_root": str(SHARED_DATA), "cache_dir": str(TEST_CACHE), "pca_dim": 16},
        "clusters": {"silhouette_sample": 0},
        "model": {"hidden_size": 16, "max_len": 20, "num_blocks": 1, "adapter_hidden": 32},
        "train": {"epochs": epochs, "patience": 0, "batch_size": 256, "device": "cpu", "num_threads": 1},
        "tune": {"name": "exp", "storage_path": str(root), "num_samples": num_samples, "grace_period": 1,
                 "reduction_factor": 2, "max_concurrent_trials": 1, "n_startup_trials": num_samples,
                 "search_seed": search_seed, "max_failures": 0, "space": space},
    })
    summary = run_experiment(config, progress=False)
    return Path(summary["experiment"])


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return build_small_experiment(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def trials(experiment):
    from results.load import load_experiment

    return load_experiment(experiment)


def raw_lines(trial_dir: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(trial_dir) / "result.json").read_text().splitlines() if line]


def test_one_row_per_trial(experiment, trials):
    folders = sorted(p.parent for p in experiment.glob("*/params.json"))
    assert len(trials) == len(folders) == 4
    assert trials["trial_id"].is_unique
    assert set(trials["trial_id"]) == {raw_lines(f)[-1]["trial_id"] for f in folders}
    for _, row in trials.iterrows():
        params = json.loads((Path(row["path"]) / "params.json").read_text())["params"]
        assert {k: row[k] for k in params} == params


def test_states_follow_the_raw_files(trials):
    for _, row in trials.iterrows():
        lines = raw_lines(row["path"])
        finished = any(k.startswith("test_") for k in lines[-1])
        assert row["epochs"] == lines[-1]["epoch"] == len(lines)
        if finished:
            assert row["state"] == "terminated" and row["epochs"] == row["budget"]
            assert row["test_ndcg_10"] == lines[-1]["test_ndcg_10"]
        else:
            assert row["state"] == "stopped_early" and row["epochs"] < row["budget"]
            assert pd.isna(row.get("test_ndcg_10"))
    assert set(trials["state"]) == {"terminated", "stopped_early"}, trials[["trial_id", "state", "epochs"]]


def test_states_agree_with_the_study(experiment, trials):
    """The search recorded each trial's fate in optuna.db as it happened: same states."""
    import optuna

    study = optuna.load_study(study_name=experiment.name, storage=f"sqlite:///{experiment / 'optuna.db'}")
    recorded = {t.user_attrs["ray_trial_id"]: t.user_attrs["ray_state"] for t in study.trials}
    assert recorded == dict(zip(trials["trial_id"], trials["state"]))


def test_best_epoch_is_the_max_valid_ndcg(trials):
    for _, row in trials.iterrows():
        lines = raw_lines(row["path"])
        best = max(lines, key=lambda r: (r["valid_ndcg_10"], -r["epoch"]))
        assert row["valid_ndcg_10"] == best["valid_ndcg_10"]
        assert row["best_epoch"] == best["epoch"]
        # the trainer tracks its best on its own: both definitions agree
        assert row["valid_ndcg_10"] == lines[-1]["best_valid_ndcg_10"]
        assert row["best_epoch"] == lines[-1]["best_epoch"]
        for key in ("valid_hit_10", "valid_tail_item_ndcg_10", "valid_head_user_hit_10"):
            assert row[key] == best[key]
        if row["checkpoint"] is not None:
            assert Path(row["checkpoint"]).name == best["checkpoint_dir_name"]


def test_errored_and_missing(experiment, trials, tmp_path):
    from results.load import load_experiment
    from results.load import ExperimentError

    source = Path(trials.loc[trials["state"] == "terminated", "path"].iloc[0])
    copy = tmp_path / "exp"
    shutil.copytree(source, copy / source.name)
    broken = copy / (source.name + "_broken")
    shutil.copytree(source, broken)
    first = (broken / "result.json").read_text().splitlines()[0]
    (broken / "result.json").write_text(first + "\n")        # a crash after the first epoch
    (broken / "progress.csv").unlink()
    (broken / "error.txt").write_text("FloatingPointError: non-finite loss\n")
    pending = copy / (source.name + "_pending")                # queued, never reported
    pending.mkdir()
    shutil.copy(source / "params.json", pending / "params.json")
    table = load_experiment(copy)
    assert sorted(table["state"]) == ["errored", "terminated", "unfinished"]
    assert table.set_index("state").loc["errored", "epochs"] == 1
    with pytest.raises(ExperimentError, match="does not exist"):
        load_experiment(tmp_path / "nowhere")
    with pytest.raises(ExperimentError, match="no trial folders"):
        load_experiment(tmp_path)


def test_gamma_cluster_grid_cells_are_trial_values(trials):
    from results.tables import gamma_cluster_grid

    for backbone in trials["backbone"].unique():
        grid = gamma_cluster_grid(trials, backbone)
        rows = trials[trials["backbone"] == backbone]
        cells = rows.groupby(["gamma", "n_clusters"])["valid_ndcg_10"]
        assert int(grid.notna().sum().sum()) == cells.ngroups
        for (gamma, n_clusters), values in cells:
            assert grid.loc[gamma, n_clusters] == values.max()
            assert grid.loc[gamma, n_clusters] in set(rows["valid_ndcg_10"])


def test_leaders_and_segments(trials):
    from results.tables import best_per_backbone, segment_metrics

    leaders = best_per_backbone(trials)
    for _, leader in leaders.iterrows():
        rows = trials[trials["backbone"] == leader["backbone"]]
        assert leader["valid_ndcg_10"] == rows["valid_ndcg_10"].max()
    segments = segment_metrics(trials)
    for _, seg in segments.iterrows():
        row = trials[trials["trial_id"] == seg["trial_id"]].iloc[0]
        split = seg["split"]
        assert seg["overall NDCG@10"] == row[f"{split}_ndcg_10"]
        assert seg["tail item Hit@10"] == row[f"{split}_tail_item_hit_10"]
        assert seg["head user NDCG@10"] == row[f"{split}_head_user_ndcg_10"]


def test_write_report(experiment, trials):
    from results.report import write_report

    report = write_report(experiment)
    assert Path(report["html"]).is_file()
    best = trials.sort_values("valid_ndcg_10", ascending=False).iloc[0]
    assert report["best"]["trial_id"] == best["trial_id"]
    assert report["best"]["valid"]["valid_ndcg_10"] == best["valid_ndcg_10"]
    assert best["trial_id"] in report["summary"] and report["summary"].startswith("| ")
    for name, csv in report["tables"].items():
        md, html = Path(csv).with_suffix(".md"), Path(csv).with_suffix(".html")
        assert md.read_text().startswith("| ") and "<table" in html.read_text(), name
    written = pd.read_csv(report["tables"]["trials"])
    merged = written.merge(trials, on="trial_id", suffixes=("_csv", ""))
    assert len(merged) == len(trials)
    assert (merged["valid_ndcg_10_csv"] == merged["valid_ndcg_10"]).all()   # CSV keeps exact values
    assert {"gamma_sensitivity", "n_clusters_sensitivity", "learning_curves"} <= set(report["plots"])


def test_reading_does_not_start_ray(experiment):
    code = ("import sys; from results.load import load_experiment; t = load_experiment(sys.argv[1]); "
            "assert 'ray' not in sys.modules, 'ray imported'; print(len(t))")
    out = subprocess.run([sys.executable, "-c", code, str(experiment)], cwd=REPO, capture_output=True,
                         text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"


def test_icc_trials_show_how_lopsided_their_clustering_is(trials):
    """ICC trials report the largest cluster's share every epoch; the trial table shows it."""
    from cluster_prep.build import build_clusters
    from cluster_prep.config import ClusterConfig
    from datasets.prepare import prepare_dataset
    from results.tables import all_tables, best_per_backbone
    from conftest import data_config

    icc, plain = trials[trials["gamma"] > 0], trials[trials["gamma"] == 0]
    assert len(icc) and len(plain), trials[["trial_id", "gamma"]]
    assert plain["cluster_largest_share"].isna().all()
    data = prepare_dataset(data_config("ml-100k", pca_dim=16), progress=False)
    for _, row in icc.iterrows():
        reported = {line["cluster_largest_share"] for line in raw_lines(row["path"])}
        art = build_clusters(data, ClusterConfig(n_clusters=int(row["n_clusters"]), silhouette_sample=0), TEST_CACHE)
        assert reported == {row["cluster_largest_share"]} == {max(art.quality["sizes"]) / data.n_items}
        assert row["cluster_degenerate"] == art.quality["degenerate"]
    shown, _ = all_tables(trials)["trials"]
    assert {"cluster_largest_share", "cluster_degenerate"} <= set(shown.columns)
    assert "cluster_largest_share" not in best_per_backbone(trials).columns   # not a config column


def test_report_warns_about_degenerate_clusterings_by_trial():
    import pandas as pd

    from results.report import degenerate_note

    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "cluster_degenerate": [True, False, None],
                           "cluster_largest_share": [0.79, 0.2, None]})
    note = degenerate_note(trials)
    assert note.startswith("warning: 1 of 3 trials clustered degenerately") and "79 %" not in note
    assert "79%" in note and note.endswith(": a")
    assert degenerate_note(trials.assign(cluster_degenerate=False)) is None
    assert degenerate_note(trials.drop(columns="cluster_degenerate")) is None


def test_whole_number_columns_with_blanks_print_without_decimals():
    """best_epoch or a conditional min_cluster_size is a float column once a blank joins it; a
    real ml-100k search report showed "3.0000" epochs and "4.0000" min_cluster_size."""
    import math

    import pandas as pd

    from results.tables import to_html, to_markdown

    frame = pd.DataFrame({"best_epoch": [3.0, math.nan], "min_cluster_size": [math.nan, 4.0],
                          "lr": [0.0025, 0.001], "icc_share": [0.5, 1.0]})
    lines = to_markdown(frame).splitlines()
    assert lines[2] == "| 3 |  | 0.0025 | 0.5000 |" and lines[3] == "|  | 4 | 0.0010 | 1.0000 |"
    mixed = pd.concat([frame, pd.DataFrame([{"best_epoch": None, "min_cluster_size": None, "lr": None}])],
                      ignore_index=True)                                   # reference rows: object columns
    assert to_markdown(mixed).splitlines()[2] == "| 3 |  | 0.0025 | 0.5000 |"
    html = to_html(frame)
    assert "<td>3</td>" in html and "<td>4</td>" in html and "3.0000" not in html and "<td>0.0025</td>" in html
