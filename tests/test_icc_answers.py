"""`launch.py dose --summary`: every dose-response under a folder in one table, computed from the
run files, agreeing with each dose-response's own report (here: the committed ones)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import launch
from results.icc_answers import ANSWERS_CSV, ANSWERS_MD, markdown
from results.orchestration.answers import collect_answers

STUDIES = Path(__file__).resolve().parents[1] / "docs" / "studies"


def copy_dose(name: str, storage: Path, keep: int | None = None) -> Path:
    """The committed dose-response `name` (its plan and run files; the first `keep` runs only)."""
    target = storage / name
    (target / "dose" / "runs").mkdir(parents=True)
    shutil.copy(STUDIES / name / "study_config.json", target)
    runs = sorted((STUDIES / name / "dose" / "runs").glob("*/seed-*.json"))
    for run in runs[:keep]:
        (target / "dose" / "runs" / run.parent.name).mkdir(exist_ok=True)
        shutil.copy(run, target / "dose" / "runs" / run.parent.name)
    return target


def test_the_table_agrees_with_the_dose_responses_own_report(tmp_path):
    target = copy_dose("dose-scientific", tmp_path)
    shutil.copy(STUDIES / "dose-scientific" / "dose" / "dose.md", target / "dose")
    (entry,) = collect_answers(tmp_path)
    assert entry["report"] == "dose-scientific/dose/dose.md"                     # linked from the table
    assert (entry["dataset"], entry["backbone"], entry["runs"], entry["planned"]) == ("amazon-scientific", "sasrec", 75, 75)
    report = pd.read_csv(STUDIES / "dose-scientific" / "dose" / "confirmed.csv")
    mine = pd.DataFrame(entry["confirmed"])
    assert list(zip(mine["clustering"], mine["metric"], mine["verdict"])) == list(
        zip(report["clustering"], report["metric"], report["verdict"]))
    assert mine["relative"].tolist() == pytest.approx(report["relative"].tolist(), rel=1e-12)
    assert mine["p_holm"].tolist() == pytest.approx(report["p_holm"].tolist(), rel=1e-9)
    text = (STUDIES / "dose-scientific" / "dose" / "dose.md").read_text()
    assert all(f"- {sentence}" in text for sentence in entry["answer"]) and len(entry["answer"]) == 2


def test_a_dose_response_part_way_shows_its_runs_and_no_verdict(tmp_path, capsys):
    copy_dose("dose-scientific", tmp_path, keep=10)
    assert launch.main(["dose", "--summary", "--json", "--set", f"tune.storage_path={tmp_path}"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (entry,) = out["dose_responses"]
    assert (entry["runs"], entry["planned"], entry["answer"]) == (10, 75, [])
    page = (tmp_path / ANSWERS_MD).read_text()
    assert "| amazon-scientific | sasrec | dose-scientific | 10 of 75 |" in page and "screen not whole yet" in page
    assert f"--set tune.storage_path={tmp_path}`" in page                        # the command that regenerates it
    assert (tmp_path / ANSWERS_CSV).is_file()


def test_summary_flags_that_clash_or_a_missing_folder_are_one_line_errors(tmp_path, capsys):
    assert launch.main(["dose", "--summary", "--name", "x", "--set", f"tune.storage_path={tmp_path}"]) == 2
    assert "--summary: reads every dose-response under tune.storage_path; drop --name" in capsys.readouterr().err
    assert launch.main(["dose", "--summary", "--set", f"tune.storage_path={tmp_path / 'none'}"]) == 2
    assert f"--summary: no folder {tmp_path / 'none'} (tune.storage_path)" in capsys.readouterr().err
    assert launch.main(["dose", "--set", f"tune.storage_path={tmp_path}"]) == 2
    assert "--name: a dose-response needs a name" in capsys.readouterr().err


def test_an_empty_folder_gives_an_empty_table(tmp_path):
    assert collect_answers(tmp_path) == []


def test_the_committed_table_is_what_the_command_writes_from_the_committed_runs():
    """docs/studies/icc-answers.md is current: re-run `dose --summary` after committing runs."""
    command = "python launch.py dose --summary --set tune.storage_path=docs/studies"
    assert (STUDIES / ANSWERS_MD).read_text() == markdown(collect_answers(STUDIES), command)


def test_a_folder_whose_saved_config_does_not_load_is_skipped_and_named(tmp_path, caplog):
    copy_dose("dose-scientific", tmp_path, keep=4)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "study_config.json").write_text(json.dumps({"model": {"backbone": "nope"}}))
    assert [a["name"] for a in collect_answers(tmp_path)] == ["dose-scientific"]
    assert f"skipping {tmp_path / 'old'}" in caplog.text and "model.backbone" in caplog.text


def test_a_study_whose_llmesr_arm_only_errored_has_no_dose_stage_and_is_named(tmp_path, caplog):
    """A study's dose stage is built around its searched LLM-ESR arm; an arm where every trial
    errored has no best trial, so the summary skips that stage, names it, and lists the rest."""
    from results.orchestration.layout import DONE_MARK, SEARCH_DIR, claim
    from test_study import demo_config
    from tuning.config import config_to_dict

    copy_dose("dose-scientific", tmp_path, keep=2)
    config = demo_config(tmp_path, "study.dose_backbones=[sasrec]")
    folder, _ = claim(config, "broken", resume=False)
    trial = folder / SEARCH_DIR / "llmesr-sasrec" / "trainable_0a1b2c3d_1"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"config": config_to_dict(config.replace({"model.variant": "llmesr"}))}))
    (trial / "error.txt").write_text("Failure # 1 (occurred at 2026-12-03_14-00-00)\nRuntimeError: out of memory\n")
    (trial.parent / DONE_MARK).write_text("")
    assert [a["name"] for a in collect_answers(tmp_path)] == ["dose-scientific"]
    assert f"skipping {folder}/dose-sasrec: search arm 'llmesr-sasrec'" in caplog.text


def test_a_study_dose_stage_links_the_report_its_findings_wrote(tmp_path):
    """A study writes its dose stage's report with its findings (<study>/findings/<stage>/dose.md),
    not in the stage's own folder; the summary links it there."""
    shutil.copytree(STUDIES / "amazon-beauty", tmp_path / "amazon-beauty")
    (entry,) = collect_answers(tmp_path)
    assert entry["name"] == "amazon-beauty/dose-sasrec"
    assert entry["report"] == "amazon-beauty/findings/dose-sasrec/dose.md"
    shutil.rmtree(tmp_path / "amazon-beauty" / "findings")
    assert collect_answers(tmp_path)[0]["report"] is None             # findings not written (or elsewhere)


def test_two_dose_responses_that_train_the_same_runs_are_marked_one_piece_of_evidence(tmp_path):
    """The Beauty study's tuned arm chose the settings dose-beauty carried over from Scientific, so
    its dose stage trained dose-beauty's runs again (other arithmetic, batches and threads): the
    summary says so on both, and on no dose-response that trains other runs."""
    shutil.copytree(STUDIES / "amazon-beauty", tmp_path / "amazon-beauty")
    copy_dose("dose-beauty", tmp_path, keep=2)
    copy_dose("dose-scientific", tmp_path, keep=2)
    same = {a["name"]: a["same_runs_as"] for a in collect_answers(tmp_path)}
    assert same["dose-scientific"] == []
    (other, differ), = same["dose-beauty"]
    assert other == "amazon-beauty/dose-sasrec"
    assert "model.arithmetic: 'reference' here, 'lean' in amazon-beauty/dose-sasrec" in differ
    assert [name for name, _ in same["amazon-beauty/dose-sasrec"]] == ["dose-beauty"]
    text = markdown(collect_answers(tmp_path), "cmd")
    assert text.count("one piece of evidence, not two") == 2
