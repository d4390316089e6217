"""`launch.py study` end to end on a tiny config: the findings agree with the runs they came from."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

import launch
from results.load import load_experiment
from results.orchestration.confirm import CONFIRM_DIR, StudyError
from results.orchestration.study import SEARCH_DIR, run_study
from results.tables import ranked
from tuning.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "study-demo.yaml"


def demo_config(tmp: Path, *extra: str):
    return load_config(DEMO, [f"tune.storage_path={tmp}", f"data.data_root={REPO.parent / 'shared' / 'data'}",
                              f"data.cache_dir={REPO / '.cache' / 'test'}", *extra])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The demo study through the command line; its `--json` line names the study and findings."""
    tmp = tmp_path_factory.mktemp("study")
    config = demo_config(tmp)
    sets = [f"tune.storage_path={tmp}", f"data.data_root={REPO.parent / 'shared' / 'data'}",
            f"data.cache_dir={REPO / '.cache' / 'test'}"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = launch.main(["study", "--config", str(DEMO), "--name", "demo", "--json",
                            *[arg for value in sets for arg in ("--set", value)]])
    assert code == 0, printed.getvalue()[-2000:]
    outcome = json.loads(printed.getvalue().strip().splitlines()[-1])
    assert outcome["study"] == str(tmp / "demo") and Path(outcome["html"]).is_file()
    assert outcome["arms"] == ["icc-sasrec", "llmesr-sasrec", "plain-sasrec"]
    return config, Path(outcome["study"]), outcome


@pytest.mark.slow
def test_each_arm_confirms_its_best_trial_with_every_seed(study):
    config, folder, _ = study
    for variant in config.study.variants:
        arm = f"{variant}-sasrec"
        trials = load_experiment(folder / SEARCH_DIR / arm)
        assert len(trials) == config.study.trials_per_arm
        assert set(trials["variant"]) == {variant}
        best = ranked(trials).iloc[0]
        runs = [json.loads(p.read_text()) for p in sorted((folder / CONFIRM_DIR / arm).glob("seed-*.json"))]
        assert sorted(r["seed"] for r in runs) == sorted(config.study.seeds)
        for run in runs:                               # the best trial's config, only the seed differs
            assert run["config"]["train"]["lr"] == best["lr"]
            assert run["config"]["model"]["variant"] == variant
            assert run["config"]["train"]["seed"] == run["seed"]


@pytest.mark.slow
def test_findings_numbers_come_from_the_runs(study):
    config, folder, outcome = study
    out = Path(outcome["markdown"]).parent
    runs = pd.read_csv(out / "confirmation_runs.csv")
    comparisons = pd.read_csv(out / "comparisons.csv")
    row = comparisons[(comparisons["comparison"] == "LLM-ESR vs plain") & (comparisons["metric"] == "test ndcg_10")].iloc[0]
    treat = runs[runs["variant"] == "llmesr"].sort_values("seed")["test_ndcg_10"].tolist()
    control = runs[runs["variant"] == "plain"].sort_values("seed")["test_ndcg_10"].tolist()
    assert row["difference"] == pytest.approx(sum(treat) / len(treat) - sum(control) / len(control), abs=1e-12)
    assert row["p"] == pytest.approx(stats.ttest_rel(treat, control).pvalue, rel=1e-9)
    ndcg = pd.read_csv(out / "ndcg.csv")
    shown = ndcg[(ndcg["variant"] == "LLM-ESR")]["overall"].iloc[0]
    assert shown.startswith(f"{sum(treat) / len(treat):.4f} ± ")
    text = Path(outcome["markdown"]).read_text()
    assert text.index("## Findings") < text.index("Pareto") and "**sasrec**" in text
    assert "reference: history, then popularity" in text and "new target" in text
    for plot in ("pareto.png", "budget.png", "gamma_clusters.png"):
        assert (out / plot).stat().st_size > 1000


@pytest.mark.slow
def test_resume_reruns_nothing_and_a_changed_config_is_refused(study, capsys):
    config, folder, outcome = study
    before = {p: p.stat().st_mtime_ns for p in (folder / CONFIRM_DIR).glob("*/seed-*.json")}
    again = run_study(config, "demo", resume=True, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (folder / CONFIRM_DIR).glob("*/seed-*.json")} == before
    assert Path(again["markdown"]).read_text().split("## Findings")[1] == \
        Path(outcome["markdown"]).read_text().split("## Findings")[1]
    with pytest.raises(StudyError, match="train.lr: saved 0.001, now 0.5"):
        run_study(demo_config(folder.parent, "train.lr=0.5"), "demo", resume=True, progress=False)
    with pytest.raises(StudyError, match="already exists"):
        run_study(config, "demo", progress=False)


@pytest.mark.slow
def test_a_confirmation_run_reproduces_exactly_through_the_cli(study, capsys):
    _, folder, _ = study
    run = sorted((folder / CONFIRM_DIR).glob("icc-*/seed-*.json"))[0]
    assert launch.main(["reproduce", str(run), "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["match"] is True and outcome["max_abs_diff"] == 0.0


def test_bad_study_settings_are_one_line_errors(tmp_path, capsys):
    assert launch.main(["study", "--config", str(DEMO), "--name", "../escape"]) == 2
    assert "--name: got '../escape'" in capsys.readouterr().err
    assert launch.main(["study", "--config", str(DEMO), "--name", "x", "--set", "study.variants=[plain,fancy]"]) == 2
    assert "study.variants: got ['plain', 'fancy']" in capsys.readouterr().err
    assert launch.main(["study", "--config", str(DEMO), "--name", "x", "--resume",
                        "--set", f"tune.storage_path={tmp_path}"]) == 2
    assert "no study 'x'" in capsys.readouterr().err
