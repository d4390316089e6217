"""ICC's dose-response: the plan of runs, the equivalence test, and a real tiny run that resumes.
What users hand it (settings, files on disk) is in tests/test_dose_inputs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from results.stats import equivalence, paired, verdict
from tuning.config import load_config


def test_tost_calls_close_pairs_equivalent_and_wide_ones_not():
    control = [0.100, 0.102, 0.098, 0.101, 0.099]
    close = [c + d for c, d in zip(control, (0.0002, -0.0001, 0.0001, 0.0, -0.0002))]
    wide = [c + d for c, d in zip(control, (0.004, -0.005, 0.006, -0.004, 0.003))]
    tight = equivalence(close, control, margin=0.02)
    assert tight["p_value"] < 0.05 and tight["bound"] == pytest.approx(0.002)
    assert equivalence(wide, control, margin=0.02)["p_value"] > 0.05
    assert equivalence(close[:1], control[:1], margin=0.02)["p_value"] is None       # one seed: no test
    assert verdict(paired(close, control), tight) == "equivalent (within ±2 %)"
    better = [c + 0.01 + d for c, d in zip(control, (0.001, -0.001, 0.0, 0.0005, -0.0005))]
    assert verdict(paired(better, control), equivalence(better, control, 0.02)) == "better"
    assert verdict(paired(wide, control), equivalence(wide, control, 0.02)) == "inconclusive"


def test_the_plan_is_the_control_and_every_clustering_at_every_share():
    from model.icc import icc_on
    from results.orchestration.dose import dose_configs

    config = load_config("configs/dose-scientific.yaml")
    plan = dose_configs(config)
    assert len(plan) == 1 + 5 * 4 and all(sorted(seeds) == [42, 43, 44] for seeds in plan.values())
    control = plan["control"][43]
    assert not icc_on(control.model) and control.train.seed == 43 and control.train.lr == config.train.lr
    dose = plan["hdbscan-20-share0.05"][44]
    assert (dose.model.variant, dose.model.icc_share, dose.model.gamma) == ("icc", 0.05, 0.0)
    assert (dose.clusters.method, dose.clusters.min_cluster_size) == ("hdbscan", 20)
    assert dose.model.dropout == control.model.dropout and dose.train.seed == 44


def test_the_beauty_plan_is_the_scientific_one_on_other_data():
    """configs/dose-beauty.yaml carries the Scientific arm's settings over (no Beauty search yet)."""
    from dataclasses import asdict

    scientific, beauty = (asdict(load_config(f"configs/dose-{name}.yaml")) for name in ("scientific", "beauty"))
    assert (scientific["data"]["name"], beauty["data"]["name"]) == ("amazon-scientific", "amazon-beauty")
    scientific["data"].pop("name"), beauty["data"].pop("name")
    assert beauty == scientific


def test_runs_go_seed_by_seed_so_a_stopped_dose_response_leaves_whole_paired_seeds(tmp_path):
    from results.orchestration.dose import pending_jobs

    jobs = pending_jobs(load_config("configs/dose-scientific.yaml"), tmp_path)
    assert len(jobs) == 63 and [seed for _, seed, _, _ in jobs] == [42] * 21 + [43] * 21 + [44] * 21
    assert jobs[0][0] == "control" and jobs[21][0] == "control"


@pytest.mark.slow
def test_a_tiny_dose_response_runs_reports_and_resumes(tmp_path, capsys):
    from conftest import SHARED_DATA, TEST_CACHE
    from results.orchestration.dose import load_runs, pending_jobs, run_dose

    config = load_config(None, [
        "data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
        "model.variant=llmesr", "model.hidden_size=16", "model.max_len=20", "model.num_blocks=1",
        "model.adapter_hidden=32", "model.loss=ce", "model.teacher=epoch", "clusters.silhouette_sample=0",
        "train.epochs=1", "train.batch_size=256", "train.device=cpu", f"tune.storage_path={tmp_path}",
        "dose.shares=[0.1]", "dose.clusterings=[kmeans-8]", "dose.seeds=[42,43]", "dose.confirm_seeds=[44]",
        "dose.workers=2"])
    out = run_dose(config, "tiny", progress=True)                  # the screen, then the confirmation
    said = capsys.readouterr().out
    assert ("dose-response: 4 runs to go, 2 at a time, then 2 confirmation runs" in said
            and "dose-response: 2 runs to go, 2 at a time\n" in said and "dose 2/2: " in said)
    runs = load_runs(tmp_path / "tiny")
    assert out["runs"] == 6 and out["doses"] == 1 and len(runs) == 6 and {r["seed"] for r in runs} == {42, 43, 44}
    assert {r["arm"] for r in runs} == {"control", "kmeans-8-share0.1"}
    dosed = [r for r in runs if r["arm"] != "control"]
    assert all(abs(r["history"][0]["loss_shares"]["icc"] - 0.1) < 0.05 for r in dosed)      # the dose it bought
    assert all(r["history"][0]["loss_shares"]["icc"] == 0.0 for r in runs if r["arm"] == "control")
    table = (tmp_path / "tiny" / "dose" / "dose.md").read_text()
    assert "| kmeans-8 | 0.1 | 2 |" in table and (tmp_path / "tiny" / "dose" / "dose.png").is_file()
    assert "| test NDCG@10 | kmeans-8 | 0.1 | 3 |" in table                           # the primary family
    assert "Training length: 6 of 6 runs (100 %) had their best validation epoch at the 1-epoch cap" in table
    from results.references import cached_references                          # computed beside the runs
    text_ref = cached_references(config, tmp_path / "tiny" / "references.json")["test"]["last_item_text"]
    assert f"last item text {text_ref['ndcg_10']:.4f} (tail items {text_ref['tail_item_ndcg_10']:.4f})" in table
    saved = config.replace({"tune.name": "tiny"})                         # the config the folder holds
    assert pending_jobs(saved, tmp_path / "tiny") == []                       # a resume has nothing to do
    before = {p: p.stat().st_mtime for p in (tmp_path / "tiny" / "dose" / "runs").rglob("*.json")}
    run_dose(config, "tiny", resume=True, progress=False)
    assert {p: p.stat().st_mtime for p in before} == before
    assert json.loads(sorted(before)[0].read_text())["config"]["dose"]["seeds"] == [42, 43]
    again = run_dose(config, "again", progress=True)       # the same plan under another name: nothing trains
    said = capsys.readouterr().out
    assert (f"dose-response: 4 runs were trained before under {tmp_path} with the same settings, seed and code" in said
            and f"dose-response: 2 runs were trained before under {tmp_path}" in said and "dose 1/" not in said)
    assert sorted(r["copied_from"] for r in load_runs(tmp_path / "again")) == sorted(
        p.relative_to(tmp_path).as_posix() for p in before)
    assert again["runs"] == 6 and (tmp_path / "again" / "dose" / "confirmed.csv").read_text() == (
        tmp_path / "tiny" / "dose" / "confirmed.csv").read_text()
    gone = tmp_path / "tiny" / "dose" / "runs" / "kmeans-8-share0.1" / "seed-43.json"   # stopped part way:
    gone.unlink()
    partial = run_dose(config, "tiny", report_only=True, progress=False)
    assert partial["runs"] == 5 and partial["missing"] == 1 and not gone.exists()      # reported, not run
    assert "Partial: 1 of 6 planned runs" in (tmp_path / "tiny" / "dose" / "dose.md").read_text()
    assert "| one seed: no test yet |" in (tmp_path / "tiny" / "dose" / "dose.md").read_text()


SMALL_PLAN = ["dose.shares=[0.05,0.2]", "dose.clusterings=[kmeans-16,hdbscan-5]", "dose.seeds=[42,43]",
              "dose.confirm_seeds=[44,45]"]


def _record(folder, config, arm, seed, valid, test, tail=None):
    """A run file as run_confirmation writes it (metrics given, config the plan's own)."""
    from results.orchestration.dose import confirm_configs, dose_configs, run_path
    from runtime import write_atomic
    from tuning.config import config_to_dict

    plan = dose_configs(config) if seed in config.dose.seeds else confirm_configs(config, dose_configs(config), [arm])
    record = {"arm": arm, "seed": seed, "config": config_to_dict(plan[arm][seed]),
              "valid": {"ndcg_10": valid}, "test": {"ndcg_10": test, "tail_item_ndcg_10": tail or test / 3},
              "best_epoch": 5, "epochs": 10, "seconds": 1.0,
              "history": [{"epoch": 1, "loss_shares": {"icc": 0.0 if arm == "control" else 0.1}}]}
    write_atomic(run_path(folder, arm, seed), json.dumps(record))


def _whole_screen(folder, config):
    """Every screen run; the best share on validation is 0.2 under kmeans-16 and 0.05 under
    hdbscan-5, while on test 0.05 wins under kmeans-16 (the choice must not look at test)."""
    valid = {"control": 0.10, "kmeans-16-share0.05": 0.10, "kmeans-16-share0.2": 0.11,
             "hdbscan-5-share0.05": 0.12, "hdbscan-5-share0.2": 0.09}
    test = {"control": 0.08, "kmeans-16-share0.05": 0.09, "kmeans-16-share0.2": 0.081,
            "hdbscan-5-share0.05": 0.085, "hdbscan-5-share0.2": 0.07}
    for seed in config.dose.seeds:
        for arm in valid:
            wobble = (seed - 42) * 1e-3 * (1.0 if arm == "control" else 0.4)
            _record(folder, config, arm, seed, valid[arm] + wobble, test[arm] + wobble)


def test_the_best_share_is_chosen_on_validation_and_only_from_a_whole_screen(tmp_path):
    from results.orchestration.dose import best_shares, load_runs

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    assert best_shares(config, load_runs(tmp_path)) == {"kmeans-16": 0.2, "hdbscan-5": 0.05}
    (tmp_path / "dose" / "runs" / "hdbscan-5-share0.2" / "seed-43.json").unlink()
    assert best_shares(config, load_runs(tmp_path)) == {"kmeans-16": 0.2}


def test_the_confirmation_runs_the_control_and_each_best_dose_after_the_screen(tmp_path):
    from results.orchestration.dose import pending_jobs

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    screen = pending_jobs(config, tmp_path)
    assert len(screen) == 2 * 5 and {seed for _, seed, _, _ in screen} == {42, 43}
    _whole_screen(tmp_path, config)
    confirm = pending_jobs(config, tmp_path)
    assert [(arm, seed) for arm, seed, _, _ in confirm] == [
        (arm, seed) for seed in (44, 45) for arm in ("control", "kmeans-16-share0.2", "hdbscan-5-share0.05")]
    arm, seed, settings, _ = confirm[1]
    assert settings["train"]["seed"] == 44 and settings["model"]["icc_share"] == 0.2
    assert (settings["clusters"]["method"], settings["clusters"]["n_clusters"]) == ("kmeans", 16)


def test_a_run_is_known_by_its_training_settings_not_by_the_plan(tmp_path):
    """Growing the plan on resume (more seeds, another share) keeps every run already done."""
    from results.orchestration.dose import pending_jobs

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    grown = config.replace({"dose.shares": [0.05, 0.2, 0.5], "dose.confirm_seeds": [44, 45, 46]})
    assert {arm for arm, _, _, _ in pending_jobs(grown, tmp_path)} == {"kmeans-16-share0.5", "hdbscan-5-share0.5"}
    retrained = config.replace({"train.lr": 0.003})
    assert len(pending_jobs(retrained, tmp_path)) == 10
    # nor by where the folder lives or what it is called: a moved or renamed dose-response keeps its runs
    moved = config.replace({"tune.storage_path": "/elsewhere", "tune.name": "renamed", "tune.num_samples": 99})
    def runs(plan):
        return [(arm, seed) for arm, seed, _, _ in pending_jobs(plan, tmp_path)]
    assert runs(moved) == runs(config) and {seed for _, seed in runs(config)} == {44, 45}   # the confirmation only
    # nor by where its inputs and cache lie (a Ray trial writes them absolute), but by what the data is
    relocated = config.replace({"data.data_root": str(Path(config.data.data_root).resolve()),
                                "data.cache_dir": "/another/machine/cache"})
    assert runs(relocated) == runs(config)
    assert len(runs(config.replace({"data.tail_item_share": 0.7}))) == 10


def test_the_primary_family_is_each_best_dose_on_every_seed_with_its_own_holm(tmp_path):
    from results.dose_report import markdown, runs_frame
    from results.orchestration.dose import load_runs, summarize_confirmed, summarize_doses
    from results.stats import holm

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    assert "Not chosen yet" not in markdown(config, [], runs_frame(load_runs(tmp_path)), 4,
                                            summarize_confirmed(config, load_runs(tmp_path)))
    for seed, bump in ((44, 0.001), (45, -0.0005)):
        for arm, value in (("control", 0.08), ("kmeans-16-share0.2", 0.082), ("hdbscan-5-share0.05", 0.086)):
            _record(tmp_path, config, arm, seed, 0.1, value + bump)
    runs = load_runs(tmp_path)
    confirmed = summarize_confirmed(config, runs)
    assert [(r["clustering"], r["share"], r["metric"], r["seeds"]) for r in confirmed] == [
        ("kmeans-16", 0.2, "ndcg_10", 4), ("kmeans-16", 0.2, "tail_item_ndcg_10", 4),
        ("hdbscan-5", 0.05, "ndcg_10", 4), ("hdbscan-5", 0.05, "tail_item_ndcg_10", 4)]
    assert [r["p_holm"] for r in confirmed] == holm([r["p_value"] for r in confirmed])
    assert all(r["seeds"] == 2 for r in summarize_doses(config, runs))          # the screen keeps its seeds
    text = markdown(config, summarize_doses(config, runs), runs_frame(runs), 0, confirmed)
    assert "## Primary: each clustering's best share, confirmed" in text and "## Screen: test NDCG@10" in text
    assert "| test tail-item NDCG@10 | hdbscan-5 | 0.05 | 4 |" in text
    from results.dose_report import answer
    said = answer(confirmed, config.dose.margin)
    assert len(said) == 2 and all(f"- {sentence}" in text for sentence in said)       # the answer above the table


def test_a_verdict_of_better_or_worse_needs_the_family_adjusted_p(tmp_path):
    """A dose whose raw p is below 0.05 but whose Holm p is not says nothing in either family."""
    from results.orchestration.dose import load_runs, summarize_confirmed, summarize_doses

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    for seed, bump in ((44, 0.001), (45, -0.0005)):
        for arm, value in (("control", 0.08), ("kmeans-16-share0.2", 0.082), ("hdbscan-5-share0.05", 0.086)):
            _record(tmp_path, config, arm, seed, 0.1, value + bump)
    runs = load_runs(tmp_path)
    rows = summarize_doses(config, runs) + summarize_confirmed(config, runs)
    for row in rows:
        called = row["verdict"] in ("better", "worse")
        assert called == (row["p_holm"] < 0.05), row
    assert any(r["p_value"] < 0.05 <= r["p_holm"] for r in rows)      # the case the rule is for occurs


def test_the_primary_family_waits_for_the_whole_screen(tmp_path):
    """One clustering's best share is known before the others': its rows alone would be Holm over
    part of the family, so the primary table stays empty until every clustering has its share."""
    from results.orchestration.dose import load_runs, summarize_confirmed

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    _whole_screen(tmp_path, config)
    assert len(summarize_confirmed(config, load_runs(tmp_path))) == 4
    (tmp_path / "dose" / "runs" / "hdbscan-5-share0.2" / "seed-43.json").unlink()
    assert summarize_confirmed(config, load_runs(tmp_path)) == []
    from results.dose_report import write_dose_report
    from results.orchestration.dose import summarize_doses

    out = tmp_path / "report"
    out.mkdir()
    (out / "confirmed.csv").write_text("an older primary table\n")
    runs = load_runs(tmp_path)
    write_dose_report(config, out, runs, summarize_doses(config, runs), confirmed=[])
    assert not (out / "confirmed.csv").exists() and "Not chosen yet" in (out / "dose.md").read_text()


def test_a_report_without_references_says_why():
    from results.dose_report import references_sentence

    assert "not computed" in references_sentence(None)
    refs = {"test": {"popularity": {"ndcg_10": 0.02, "tail_item_ndcg_10": 0.0}}}
    assert references_sentence(refs).endswith("popularity 0.0200 (tail items 0.0000).")


def test_a_resume_may_grow_the_plan_but_not_change_how_runs_train(tmp_path):
    import json as js

    from results.orchestration.dose import claim_dose
    from results.orchestration.layout import STUDY_FILE, StudyError

    config = load_config("configs/dose-scientific.yaml", [*SMALL_PLAN, f"tune.storage_path={tmp_path}"])
    from results.orchestration.dose import save_plan

    folder, _, changed = claim_dose(config, "d", resume=False, given=None)
    assert not changed
    more = config.replace({"dose.confirm_seeds": [44, 45, 46], "dose.workers": 1})
    _, resumed, changed = claim_dose(more, "d", resume=True, given=["dose.confirm_seeds", "dose.workers"])
    assert changed and resumed.dose.confirm_seeds == [44, 45, 46] and resumed.dose.shares == [0.05, 0.2]
    assert js.loads((folder / STUDY_FILE).read_text())["dose"]["confirm_seeds"] == [44, 45]   # saved by the driver
    save_plan(resumed, folder, "d")
    _, again, changed = claim_dose(config, "d", resume=True, given=[])      # a bare --resume: the grown plan
    assert again.dose.confirm_seeds == [44, 45, 46] and not changed
    with pytest.raises(StudyError, match="train.lr"):
        claim_dose(config.replace({"train.lr": 0.003}), "d", resume=True, given=["train.lr"])


def test_the_missing_count_includes_the_confirmation_before_it_is_chosen(tmp_path):
    from results.orchestration.dose import missing_runs

    config = load_config("configs/dose-scientific.yaml", SMALL_PLAN)
    assert missing_runs(config, tmp_path) == 10 + 3 * 2
    _whole_screen(tmp_path, config)
    assert missing_runs(config, tmp_path) == 6


def test_a_second_dose_driver_is_refused_while_the_first_runs(tmp_path):
    """Two drivers would both take the first missing run; a report beside a driver is fine."""
    from results.orchestration.dose import claim_dose, run_dose
    from tuning.lock import ExperimentLocked, driver_lock
    from conftest import SHARED_DATA, TEST_CACHE

    sets = [*SMALL_PLAN, f"tune.storage_path={tmp_path}", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}"]
    config = load_config("configs/dose-scientific.yaml", sets)
    folder, _, _ = claim_dose(config, "d", resume=False, given=None)
    with driver_lock(folder, "d"):
        with pytest.raises(ExperimentLocked, match="d"):
            run_dose(config, "d", resume=True, progress=False, given=[])
        assert run_dose(config, "d", report_only=True, progress=False, given=[])["missing"] == 16


def test_the_time_left_follows_the_length_of_the_runs_done():
    from tuning.eta import pool_time_left as time_left

    assert time_left([600.0, 600.0], 8, 2) == "about 30 min left"          # 6 runs of 10 min, 2 at a time
    assert time_left([3600.0], 5, 1) == "about 4.0 h left" and time_left([10.0] * 3, 3, 2) == "done"
    assert time_left([600.0], 2, 4) == "about 10 min left"                 # the last run alone: one length
    # after a resume the continued runs end first, minutes after it, but each record's seconds count
    # the epochs before the resume too: the estimate is the runs' length, not the minutes since
    assert time_left([903.0, 1120.0], 21, 2) == "about 2.8 h left"
    # the screen's pool also counts the confirmation that follows it: 1 + 3 rounds of 10 min
    assert time_left([600.0] * 7, 9, 2, then=6) == "about 40 min left"
    assert time_left([600.0] * 9, 9, 2, then=6) == "about 30 min left"   # the screen done, the confirmation next


def test_tabling_a_dose_response_that_does_not_exist_names_the_flag_and_the_kind(tmp_path, capsys):
    import launch

    assert launch.main(["dose", "--name", "never-ran", "--report-only",
                        "--set", f"tune.storage_path={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "--report-only: no dose-response 'never-ran'" in err, err


def test_the_command_line_report_prints_the_answer_and_gives_it_in_json(tmp_path, capsys):
    import launch
    from conftest import SHARED_DATA, TEST_CACHE
    from results.orchestration.dose import claim_dose

    sets = [*SMALL_PLAN, f"tune.storage_path={tmp_path}", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}"]
    folder, config, _ = claim_dose(load_config("configs/dose-scientific.yaml", sets), "cli", resume=False)
    _whole_screen(folder, config)
    for seed, bump in ((44, 0.001), (45, -0.0005)):
        for arm, value in (("control", 0.08), ("kmeans-16-share0.2", 0.082), ("hdbscan-5-share0.05", 0.086)):
            _record(folder, config, arm, seed, 0.1, value + bump)
    assert launch.main(["dose", "--name", "cli", "--report-only", "--json", "--set", f"tune.storage_path={tmp_path}"]) == 0
    out = capsys.readouterr().out
    outcome = json.loads(out.strip().splitlines()[-1])
    assert (outcome["runs"], outcome["missing"]) == (16, 0) and len(outcome["answer"]) == 2
    assert all(sentence in out.split("\n{")[0] for sentence in outcome["answer"])       # printed above the JSON line
    assert outcome["answer"][0].startswith("ICC ") and "test NDCG@10" in outcome["answer"][0]


@pytest.mark.parametrize("backbone", ["gru4rec", "bert4rec"])
def test_each_backbones_plan_starts_from_its_own_tuned_llmesr_arm(backbone):
    """configs/dose-scientific-<backbone>.yaml: the SASRec dose's settings but the backbone, its
    tuned lr and dropout (the first study's best.csv), and the reduced plan."""
    import csv
    from dataclasses import asdict

    from results.orchestration.dose import planned_runs

    with open("docs/studies/amazon-scientific/best.csv") as handle:
        tuned = next(row for row in csv.DictReader(handle) if row["arm"] == f"llmesr-{backbone}")
    config = load_config(f"configs/dose-scientific-{backbone}.yaml")
    assert (config.model.backbone, config.model.variant) == (backbone, "llmesr")
    assert (config.train.lr, config.model.dropout) == (float(tuned["lr"]), float(tuned["dropout"]))
    assert planned_runs(config) == 21 + 6
    sasrec, other = asdict(load_config("configs/dose-scientific.yaml")), asdict(config)
    for section in (sasrec, other):
        section.pop("dose")
        for key in ("backbone", "dropout"):
            section["model"].pop(key)
        section["train"].pop("lr")
    assert other == sasrec


def test_the_realised_share_is_read_at_epoch_1_and_at_the_best_epoch():
    """A heavy dose's term shrinks once the embeddings sit near their centers (the committed
    Scientific runs: 20 % at epoch 1, about 5 % at the best epoch): the table shows both."""
    from results.orchestration.dose import _mean_realised_share

    def run(best, shares):
        return {"best_epoch": best, "history": [{"epoch": e + 1, "loss_shares": {"icc": s}} for e, s in enumerate(shares)]}

    runs = [run(2, [0.2, 0.06, 0.04]), run(3, [0.18, 0.08, 0.02])]
    assert _mean_realised_share(runs) == pytest.approx(0.19)
    assert _mean_realised_share(runs, at_best=True) == pytest.approx(0.04)
    assert _mean_realised_share([run(5, [0.2])], at_best=True) is None        # a history cut short: no claim
    assert _mean_realised_share([]) is None


def test_the_committed_heavy_doses_keep_little_of_their_share_by_the_best_epoch():
    """What the realised columns say on the committed amazon-scientific dose-response."""
    rows = pd.read_csv(REPO / "docs" / "studies" / "dose-scientific" / "dose" / "doses.csv")
    heavy = rows[(rows["share"] >= 0.2) & (rows["metric"] == "ndcg_10")]
    assert (heavy["realised_share"] > 0.15).all() and (heavy["realised_share_best"] < 0.07).all()
