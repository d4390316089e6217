"""`launch.py study` end to end on a tiny config: the findings agree with the runs they came from."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

import launch
from results.load import load_experiment
from results.orchestration.confirm import CONFIRM_DIR, StudyError
from results.orchestration.layout import SEARCH_DIR
from results.orchestration.study import run_study
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
    printed, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
        code = launch.main(["study", "--config", str(DEMO), "--name", "demo", "--json",
                            *[arg for value in sets for arg in ("--set", value)]])
    assert code == 0, printed.getvalue()[-2000:] + said.getvalue()[-2000:]
    outcome = json.loads(printed.getvalue().strip().splitlines()[-1])
    outcome["progress_lines"] = said.getvalue().splitlines()
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
def test_each_search_says_each_finished_trial_and_the_count(study):
    """A search arm of an hour says so trial by trial (tuning.trial_lines), not only at its end;
    so does the confirmation pool, run by run, with the time it has left."""
    config, _, outcome = study
    for arm in outcome["arms"]:
        lines = [line for line in outcome["progress_lines"] if line.startswith(f"[search {arm} ")]
        planned = config.study.trials_per_arm
        assert [line.split("; ")[1].split(" trials done")[0] for line in lines] == \
            [f"{done} of {planned}" for done in range(1, planned + 1)], lines
        assert all(" finished at epoch " in line and "(valid NDCG@10 0." in line for line in lines), lines
        assert "left" in lines[0] and "left" not in lines[-1], lines
    runs = [line for line in outcome["progress_lines"] if "] confirmation " in line and ": test NDCG@10 " in line]
    assert len(runs) == len(config.study.seeds) * (len(config.study.variants) + 1), runs   # + the ICC control
    assert all(line.endswith(" left)") for line in runs[:-1]) and runs[-1].endswith("; done)"), runs


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
    for plot in ("pareto.png", "budget.png", "gamma_clusters.png", "fronts.png"):
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


@pytest.mark.slow
def test_a_resume_may_add_front_seeds_and_confirms_every_front_trial(study):
    """Growing the plan (study.front_seeds) on resume keeps every run done and adds the front's."""
    from results.orchestration.confirm import FRONT_DIR, arm_best_row, front_rows

    config, folder, outcome = study
    before = {p: p.stat().st_mtime_ns for p in (folder / CONFIRM_DIR).glob("*/seed-*.json")}
    again = run_study(config.replace({"study.front_seeds": [42, 43]}), "demo", resume=True, progress=False,
                      given=["study.front_seeds"])
    assert {p: p.stat().st_mtime_ns for p in before} == before
    for variant in config.study.variants:
        arm, experiment = f"{variant}-sasrec", folder / SEARCH_DIR / f"{variant}-sasrec"
        best = str(arm_best_row(experiment)["trial_id"])
        others = [str(row["trial_id"]) for row in front_rows(experiment) if str(row["trial_id"]) != best]
        made = sorted(str(p.relative_to(folder / FRONT_DIR / arm)) for p in (folder / FRONT_DIR / arm).glob("*/seed-*.json"))
        assert made == sorted(f"{tid}/seed-{seed}.json" for tid in others for seed in (42, 43))
        for path in (folder / FRONT_DIR / arm).glob("*/seed-*.json"):
            run = json.loads(path.read_text())
            row = load_experiment(experiment).set_index("trial_id").loc[path.parent.name]
            assert run["config"]["train"]["lr"] == row["lr"] and run["arm"] == f"{arm}@{path.parent.name}"
    out = Path(again["markdown"]).parent
    on_test = pd.read_csv(out / "fronts_on_test.csv")
    assert len(on_test) >= 3 and set(on_test["seeds"]) == {2}
    assert "The fronts on test: every front trial confirmed over seeds [42, 43]" in Path(again["markdown"]).read_text()
    assert json.loads((folder / "study_config.json").read_text())["study"]["front_seeds"] == [42, 43]


@pytest.mark.slow
def test_a_resume_may_add_a_dose_response_around_the_tuned_llmesr_arm(study):
    """Issue 21 item 1 inside the study: `study.dose_backbones` runs the dose-response around the
    backbone's confirmed LLM-ESR arm (its best trial, the confirmation protocol), keeps every
    run already done, and the findings show its primary family and link its report."""
    from results.orchestration.confirm import arm_best_row
    from results.orchestration.dose import load_runs

    config, folder, _ = study
    plan = {"study.dose_backbones": ["sasrec"], "dose.shares": [0.2], "dose.clusterings": ["kmeans-4"],
            "dose.seeds": [42, 43], "dose.confirm_seeds": [44, 45], "dose.workers": 2}
    before = {p: p.stat().st_mtime_ns for p in (folder / CONFIRM_DIR).glob("*/seed-*.json")}
    again = run_study(config.replace(plan), "demo", resume=True, progress=False, given=list(plan))
    assert {p: p.stat().st_mtime_ns for p in before} == before
    runs = load_runs(folder / "dose-sasrec")
    assert sorted((r["arm"], r["seed"]) for r in runs) == sorted(
        (arm, seed) for arm in ("control", "kmeans-4-share0.2") for seed in (42, 43, 44, 45))
    for run in runs:                      # the arm's confirmation runs are the control's, not trained twice
        copied = run["arm"] == "control" and run["seed"] in config.study.seeds
        assert ("copied_from" in run) == copied
        if copied:
            assert run["test"] == json.loads((folder / CONFIRM_DIR / "llmesr-sasrec" / f"seed-{run['seed']}.json").read_text())["test"]
    best = arm_best_row(folder / SEARCH_DIR / "llmesr-sasrec")
    for run in runs:                      # the tuned arm's config with the study's budget (patience 0 here)
        assert run["config"]["train"]["lr"] == best["lr"] and run["config"]["train"]["patience"] == config.train.patience
        assert run["epochs"] == config.train.epochs and run["config"]["train"]["seed"] == run["seed"]
        assert run["config"]["model"]["icc_share"] == (0.2 if run["arm"] != "control" else 0.0)
    out = Path(again["markdown"]).parent
    text = Path(again["markdown"]).read_text()
    assert "## ICC's dose-response around each tuned LLM-ESR arm" in text
    assert "(dose-sasrec/dose.md)" in text and (out / "dose-sasrec" / "dose.md").is_file()
    assert "| kmeans-4 | 20 % | test NDCG@10 | 4 |" in text and (out / "dose-sasrec.png").is_file()
    assert "Answer: ICC " in text and "test tail-item NDCG@10" in text.split("Answer: ICC ")[1].splitlines()[0]
    assert [line for line in again["sentences"] if line.startswith("Dose-response (sasrec): ICC ")]   # printed by the command
    from results.orchestration.answers import collect_answers

    found = {a["name"]: a for a in collect_answers(folder.parent)}    # `dose --summary` finds the stage
    assert (found["demo/dose-sasrec"]["runs"], found["demo/dose-sasrec"]["planned"]) == (8, 8)
    report = pd.read_csv(out / "dose-sasrec" / "confirmed.csv")                 # what the stage's report says
    assert [(r["clustering"], r["metric"], r["verdict"]) for r in found["demo/dose-sasrec"]["confirmed"]] == list(
        zip(report["clustering"], report["metric"], report["verdict"]))


def _left_out_of_git() -> list[str]:
    """The file patterns .gitignore leaves out of a committed study (Ray's run state, checkpoints)."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return [line.removeprefix("docs/studies/**/").rstrip("/") for line in lines if line.startswith("docs/studies/**/")]


def _without_hours(findings: str) -> str:
    """The findings with the Cost section's training hours blanked: a run trained again takes
    another few seconds, and the hours are measured, so only they may differ."""
    head, cost = findings.split("## Cost", 1)
    cost, tail = cost.split("\n## ", 1)
    cost = re.sub(r"\d+\.\d+(?= hours)|(?<=\| )[0-9.]+(?= \|$)", "H", cost, flags=re.M)
    return f"{head}## Cost{cost}\n## {tail}"


@pytest.mark.slow
def test_a_study_committed_without_rays_state_continues_on_another_machine(study, tmp_path):
    """What git keeps of a study (trials' params and results, runs, plan) is enough to continue
    it elsewhere: nothing done reruns, and a missing confirmation trains on this machine's data,
    not at the searching machine's paths that Ray saved in every trial. A search arm copied part
    way, without Ray's state, is one line saying what to do."""
    config, folder, _ = study
    copy = tmp_path / "demo"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*_left_out_of_git()))
    assert not list(copy.rglob("experiment_state-*")) and not list(copy.rglob("checkpoint_*"))
    here = config.replace({"tune.storage_path": str(tmp_path)})
    before = Path(run_study(here, "demo", resume=True, progress=False)["markdown"]).read_text()   # as other tests left it
    for params in (copy / SEARCH_DIR).glob("*/trial_*/params.json"):
        saved = json.loads(params.read_text())
        saved["config"]["data"].update(cache_dir="/searched/elsewhere/cache", data_root="/searched/elsewhere/data")
        params.write_text(json.dumps(saved))
    lost = copy / CONFIRM_DIR / "icc-sasrec" / "seed-43.json"
    original = json.loads(lost.read_text())
    lost.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (copy / CONFIRM_DIR).glob("*/seed-*.json")}
    again = run_study(here, "demo", resume=True, progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    rerun = json.loads(lost.read_text())
    assert rerun["config"]["data"]["data_root"] == config.data.data_root
    assert rerun["test"] == original["test"]                        # the same run, trained here
    assert _without_hours(Path(again["markdown"]).read_text()) == _without_hours(before)   # hours: measured
    (copy / SEARCH_DIR / "icc-sasrec" / ".search-done").unlink()        # as if copied mid-search
    with pytest.raises(StudyError, match="search icc-sasrec: .* without Ray's run state"):
        run_study(here, "demo", resume=True, progress=False)


@pytest.mark.slow
def test_status_of_a_finished_study_says_every_stage_is_done(study, capsys):
    from test_study_status import status_json

    config, folder, _ = study
    stages = status_json(capsys, folder.parent, "demo")["stages"]
    searches = [s for s in stages if s["stage"] == "search"]
    assert len(searches) == 3 and all(s["done"] == s["planned"] == config.study.trials_per_arm for s in searches)
    confirmations = {s["part"]: s for s in stages if s["stage"] == "confirmation"}
    assert confirmations["icc-sasrec + control-sasrec"]["done"] == 2 * len(config.study.seeds)
    assert stages[-1]["state"] == "done" and stages[-1]["done"] == stages[-1]["planned"] and stages[-1]["hours"] > 0
    assert all(s["hours_left"] == 0.0 for s in stages) and stages[-1]["parts_not_estimated"] == 0



@pytest.mark.slow
def test_report_only_writes_findings_part_way_and_trains_nothing(study, tmp_path, capsys):
    """A study read part way: the findings use the runs on disk, say first what is still to
    come, and give the command that wrote them; no run is trained to fill a gap."""
    _, folder, _ = study
    copy = tmp_path / "demo"
    shutil.copytree(folder, copy)
    missing = copy / CONFIRM_DIR / "plain-sasrec" / "seed-43.json"
    missing.unlink()
    runs = len(list((copy / CONFIRM_DIR).glob("*/seed-*.json")))
    out = tmp_path / "read"
    args = ["study", "--name", "demo", "--report-only", "--findings", str(out), "--json",
            "--set", f"tune.storage_path={tmp_path}"]
    assert launch.main(args) == 0
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["markdown"] == str(out / "findings.md") and not missing.exists()
    text = (out / "findings.md").read_text()
    seeds = len(json.loads((copy / "study_config.json").read_text())["study"]["seeds"])
    assert f"still to come: confirmation plain-sasrec ({seeds - 1} of {seeds})" in text
    assert f"{runs} confirmation runs" in text
    assert len(pd.read_csv(out / "confirmation_runs.csv")) == runs
    assert f"--report-only --findings {out}`" in text


@pytest.mark.slow
def test_a_study_grows_arm_by_arm_and_keeps_each_search_seed(tmp_path):
    """`study.variants` and `study.search_seeds` may grow on resume: a study can run its most
    telling arm first and add the others later, nothing done runs again; an arm's searcher seed
    may not change under it."""
    first = run_study(demo_config(tmp_path, "study.variants=[llmesr]"), "grow", progress=False)
    assert first["arms"] == ["llmesr-sasrec"] and Path(first["markdown"]).is_file()
    folder = Path(first["study"])
    done = {p: p.stat().st_mtime_ns for p in [*(folder / SEARCH_DIR / "llmesr-sasrec").rglob("result.json"),
                                              *(folder / CONFIRM_DIR).glob("*/seed-*.json")]}
    grown = run_study(demo_config(tmp_path), "grow", resume=True, progress=False, given=["study.variants"])
    assert grown["arms"] == ["icc-sasrec", "llmesr-sasrec", "plain-sasrec"]
    assert {p: p.stat().st_mtime_ns for p in done} == done
    comparisons = pd.read_csv(Path(grown["markdown"]).parent / "comparisons.csv")
    assert {"ICC vs no-ICC control", "LLM-ESR vs plain"} <= set(comparisons["comparison"])
    assert json.loads((folder / "study_config.json").read_text())["study"]["variants"] == ["plain", "llmesr", "icc"]
    seed = json.loads((folder / SEARCH_DIR / "llmesr-sasrec" / "experiment_config.json").read_text())["tune"]["search_seed"]
    with pytest.raises(StudyError, match=rf"search \S+ ran with searcher seed {seed}, the plan now gives it {seed + 5}"):
        run_study(demo_config(tmp_path, f"study.search_seeds=[{seed + 5},{seed + 6}]"), "grow", resume=True,
                  progress=False, given=["study.search_seeds"])
