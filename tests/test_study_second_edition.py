"""The second edition's plan (configs/study-scientific-2.yaml) end to end at toy size: two
objectives, a conditional ICC space, two searcher seeds, the fronts confirmed on test and the
dose stage, in one `launch.py study` command. Each part has its own tests; this one is the
combination the real study runs for tens of hours, so a seam between parts fails here first."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import launch
from conftest import REPO, SHARED_DATA, TEST_CACHE

PLAN = REPO / "configs" / "study-scientific-2.yaml"
TOY = ["data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}", "data.pca_dim=16",
       "model.hidden_size=16", "model.max_len=10", "model.num_blocks=1", "model.adapter_hidden=32",
       "train.epochs=2", "train.patience=0", "tune.grace_period=1", "tune.reduction_factor=2",
       "tune.n_startup_trials=2", "study.trials_per_arm=3", "study.seeds=[42,43]", "study.front_seeds=[42,43]",
       "dose.shares=[0.05]", "dose.clusterings=[kmeans-16,hdbscan-5]", "dose.seeds=[42,43]", "dose.confirm_seeds=[]"]


@pytest.mark.slow
def test_the_second_editions_plan_runs_whole_and_its_findings_hold_every_part(tmp_path, capsys):
    sets = [f"tune.storage_path={tmp_path}", *TOY]
    printed, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
        code = launch.main(["study", "--config", str(PLAN), "--name", "toy", "--json",
                            *[arg for value in sets for arg in ("--set", value)]])
    assert code == 0, said.getvalue()[-3000:]
    outcome = json.loads(printed.getvalue().strip().splitlines()[-1])
    lines = said.getvalue().splitlines()                          # the study's progress lines
    first = min(i for i, line in enumerate(lines) if "search plain-sasrec-search1: starting" in line)
    before = "\n".join(lines[:first])              # the first searches confirmed before any extra seed's
    assert "search icc-sasrec: done" in before and "confirmation: " in before and "dose-response around" in before
    assert "findings after sasrec (its first searches)" in before                  # a study cut short has them
    out = Path(outcome["markdown"]).parent
    assert outcome["arms"] == [f"{v}-sasrec{s}" for v in ("icc", "llmesr", "plain") for s in ("", "-search1")]

    trials = pd.read_csv(out / "search_trials.csv")
    icc = trials[trials["variant"] == "icc"]
    kmeans = icc["cluster_method"] == "kmeans"                     # the conditional space, as searched
    assert icc.loc[kmeans, "n_clusters"].notna().all() and icc.loc[~kmeans, "n_clusters"].isna().all()
    assert "valid_tail_item_ndcg_10" in trials and trials["valid_tail_item_ndcg_10"].notna().all()
    for trial in icc.itertuples():                  # the searched share, not the share the term carried
        params = Path(outcome["study"]) / "search" / trial.arm / f"trial_{trial.trial_id}" / "params.json"
        assert trial.icc_share == pytest.approx(json.loads(params.read_text())["config"]["model"]["icc_share"])
    assert icc["icc_carried"].notna().all() and (icc["icc_carried"] != icc["icc_share"]).any()

    spread = pd.read_csv(out / "spread.csv")                       # two searcher seeds per arm
    assert sorted(spread["variant"]) == ["ICC", "LLM-ESR", "plain"] and (spread["search seeds"] == 2).all()
    fronts = pd.read_csv(out / "fronts_on_test.csv")               # every front trial on both seeds
    assert set(fronts["seeds"]) == {2} and fronts["best"].sum() == 3
    runs = pd.read_csv(out / "confirmation_runs.csv")
    assert set(runs["variant"]) == {"plain", "llmesr", "icc", "control"}

    text = Path(outcome["markdown"]).read_text()
    assert "ICC vs no-ICC control" in text and "primary" in text
    assert "## ICC's dose-response around each tuned LLM-ESR arm" in text and (out / "dose-sasrec.png").is_file()
    assert "below the rule of 10 trials per searched dimension" in text
    assert "of the loss on average over a trial's epochs" in text
    cost = pd.read_csv(out / "cost.csv")                           # issue 21: the cost beside the results
    assert "## Cost" in text and cost.iloc[-1]["stage"] == "total" and cost.iloc[-1]["training hours"] > 0
    assert cost.iloc[-1]["runs"] == cost.iloc[-1]["planned"] == cost.iloc[:-1]["runs"].sum()

    assert launch.main(["study", "--name", "toy", "--status", "--json", "--set", f"tune.storage_path={tmp_path}"]) == 0
    stages = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["stages"]
    assert stages[-1]["state"] == "done" and stages[-1]["done"] == stages[-1]["planned"]
