"""Every launch.py subcommand through the command line (launch.main in this process), its
`--json` line parsed: prepare, clusters, train, tune, tune --resume, report, reproduce and demo
(study: tests/test_study.py). Real MovieLens-100K from the test cache, a 16-wide one-block model, 1-2 epochs.

The demo runs with --set overrides that shrink it (2 trials of 1 epoch instead of 8 of 6, storage
and caches in temporary folders); everything else it does (both datasets, clusters, tuning, the
report) is the same as `make demo`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import launch
from conftest import SHARED_DATA, TEST_CACHE

DATA = ("data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
        "data.pca_dim=16")
TINY = ("model.hidden_size=16", "model.max_len=20", "model.num_blocks=1", "model.adapter_hidden=32",
        "model.teacher=epoch", "train.batch_size=256", "train.patience=0", "train.device=cpu",
        "train.num_threads=1", "clusters.silhouette_sample=0")
LR_SPACE = "tune.space={lr: {type: categorical, values: [0.0001, 0.005]}}"


def sets(*overrides: str) -> list[str]:
    return [arg for value in overrides for arg in ("--set", value)]


def run_cli(capsys, *argv: str) -> dict:
    """launch.main(argv) must exit 0; returns the JSON object of its last stdout line."""
    code = launch.main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    return json.loads(out.out.strip().splitlines()[-1])


def test_prepare(capsys, ml100k):
    payload = run_cli(capsys, "prepare", "--dataset", "ml-100k", "--json", *sets(*DATA))
    assert (payload["dataset"], payload["users"], payload["items"]) == ("ml-100k", 943, ml100k.n_items)
    assert Path(payload["path"]).is_dir()
    assert payload["repeat_share_valid"] == payload["repeat_share_test"] == 0.0   # one rating per movie


def test_clusters(capsys):
    payload = run_cli(capsys, "clusters", "--dataset", "ml-100k", "--method", "kmeans", "--n-clusters", "6",
                      "--json", *sets(*DATA, "clusters.silhouette_sample=0"))
    assert (payload["method"], payload["n_clusters"], payload["noise_share"]) == ("kmeans", 6, 0.0)
    assert Path(payload["path"]).exists()


def test_train(capsys):
    payload = run_cli(capsys, "train", "--json", *sets(*DATA, *TINY, "train.epochs=2", "model.gamma=0.5",
                                                      "clusters.n_clusters=6"))
    assert payload["epochs"] == 2 and payload["best_epoch"] in (1, 2)
    assert 0 < payload["valid"]["ndcg_10"] < 1 and 0 < payload["test"]["ndcg_10"] < 1
    assert payload["valid"]["n_users"] == payload["test"]["n_users"] == 943


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """`tune` once: two trials (lr 1e-4 and 5e-3) of two epochs, ASHA grace 1; returns the
    storage folder and the --json payload."""
    storage = tmp_path_factory.mktemp("cli-runs")
    argv = ["tune", "--name", "cli", "--json", *sets(*DATA, *TINY, "train.epochs=2", "model.gamma=0",
                                                     f"tune.storage_path={storage}", "tune.num_samples=2",
                                                     "tune.grace_period=1", "tune.reduction_factor=2",
                                                     "tune.max_concurrent_trials=1", "tune.n_startup_trials=2",
                                                     "tune.max_failures=0", LR_SPACE)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = launch.main(argv)
    assert code == 0, stdout.getvalue()[-3000:]
    return storage, json.loads(stdout.getvalue().strip().splitlines()[-1])


def trial_ids(experiment: Path) -> list[str]:
    return sorted(p.name.split("_", 1)[1] for p in experiment.glob("trial_*"))


@pytest.mark.slow
def test_tune(tuned):
    storage, payload = tuned
    assert payload["experiment"] == str(storage / "cli") and payload["name"] == "cli"
    assert payload["trials"] == payload["finished"] == 2 and not payload["interrupted"]
    assert sorted(payload["trial_states"]) == trial_ids(storage / "cli")
    assert set(payload["best"]["config"]) == {"lr"} and payload["best"]["valid_ndcg_10"] > 0


@pytest.mark.slow
def test_tune_resume(tuned, capsys):
    """--resume of a finished experiment: Ray restores it, runs nothing more, reports the same trials."""
    storage, first = tuned
    results = {t: (storage / "cli" / f"trial_{t}" / "result.json").read_text() for t in trial_ids(storage / "cli")}
    payload = run_cli(capsys, "tune", "--name", "cli", "--resume", "--json",
                      *sets(f"tune.storage_path={storage}"))
    assert payload["trial_states"] == first["trial_states"] and payload["best"] == first["best"]
    assert payload["trials"] == payload["finished"] == 2 and not payload["interrupted"]
    assert {t: (storage / "cli" / f"trial_{t}" / "result.json").read_text() for t in results} == results


@pytest.mark.slow
def test_report(tuned, capsys):
    from results.load import load_experiment

    payload = run_cli(capsys, "report", str(tuned[0] / "cli"), "--json")
    table = load_experiment(tuned[0] / "cli")
    best = table.sort_values("valid_ndcg_10", ascending=False).iloc[0]
    assert payload["best"]["trial_id"] == best["trial_id"]
    assert Path(payload["html"]).is_file() and all(Path(p).is_file() for p in payload["tables"].values())


@pytest.mark.slow
def test_reproduce(tuned, capsys):
    payload = run_cli(capsys, "reproduce", str(tuned[0] / "cli"), "--trial", "best", "--json")
    assert payload["device"] == "cpu" and payload["match"] is True and payload["abs_diff"] == 0.0
    assert payload["reproduced"]["valid_ndcg_10"] == payload["recorded"]["valid_ndcg_10"]


@pytest.mark.slow
def test_demo_shrunk(capsys, tmp_path):
    shrink = sets(f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
                  f"tune.storage_path={tmp_path / 'runs'}", "tune.name=demo", "tune.num_samples=2",
                  "tune.n_startup_trials=2", "train.epochs=1", "tune.grace_period=1", "train.device=cpu",
                  "model.max_len=10")
    assert launch.main(["demo", *shrink]) == 0
    out = capsys.readouterr().out
    dashboard = [line for line in out.splitlines() if line.startswith("dashboard: ")]
    assert dashboard and Path(dashboard[-1].split(": ", 1)[1]).is_file()
    for title in ("dataset ml-100k", "dataset amazon-scientific", "clusters of amazon-scientific", "tuning"):
        assert title in out, title
    summary = json.loads((tmp_path / "runs" / "demo" / "experiment_config.json").read_text())
    assert summary["tune"]["num_samples"] == 2
