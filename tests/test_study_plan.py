"""What a study's plan may say, checked before anything runs: one-line errors for bad settings,
the arms and searches a plan makes, the budget rule, and the committed second-edition configs.
The study run end to end is in tests/test_study.py."""

from __future__ import annotations

import pytest

import launch
from test_study import DEMO, REPO, demo_config
from tuning.config import load_config


def test_bad_study_settings_are_one_line_errors(tmp_path, capsys):
    assert launch.main(["study", "--config", str(DEMO), "--name", "../escape"]) == 2
    assert "--name: got '../escape'" in capsys.readouterr().err
    assert launch.main(["study", "--config", str(DEMO), "--name", "x", "--set", "study.variants=[plain,fancy]"]) == 2
    assert "study.variants: got ['plain', 'fancy']" in capsys.readouterr().err
    assert launch.main(["study", "--config", str(DEMO), "--name", "x", "--resume",
                        "--set", f"tune.storage_path={tmp_path}"]) == 2
    assert "no study 'x'" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["icc-vs-plain:ndcg_10", "icc-vs-control:hit_10", "icc-vs-control"])
def test_a_bad_primary_family_is_a_one_line_error(entry):
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"study.primary: got '.*'; allowed: COMPARISON:METRIC"):
        load_config(DEMO, [f"study.primary=[{entry}]"])


def test_each_search_seed_gets_its_own_search_of_every_arm(tmp_path):
    """study.search_seeds: one search per arm and seed, the first keeps the arm's plain name (so a
    study started before the setting resumes), each seeded as listed."""
    from results.orchestration.layout import arm_name
    from results.orchestration.study import arm_plans
    from results.study_plots import arm_parts, arm_search_seed

    plans = arm_plans(demo_config(tmp_path, "study.search_seeds=[3,7]"), tmp_path)
    assert sorted(plans) == ["icc-sasrec", "icc-sasrec-search7", "llmesr-sasrec", "llmesr-sasrec-search7",
                             "plain-sasrec", "plain-sasrec-search7"]
    assert plans["icc-sasrec"].tune.search_seed == 3 and plans["icc-sasrec-search7"].tune.search_seed == 7
    assert plans["icc-sasrec-search7"].tune.name == "icc-sasrec-search7"
    assert arm_parts("icc-sasrec-search7") == ("icc", "sasrec") and arm_search_seed("icc-sasrec-search7") == 7
    assert arm_search_seed(arm_name("icc", "gru4rec")) is None
    single = arm_plans(demo_config(tmp_path, "tune.search_seed=5"), tmp_path)
    assert len(single) == 3 and single["icc-sasrec"].tune.search_seed == 5          # [] = tune.search_seed


def test_first_searches_make_the_first_wave_and_a_search_part_way_leads_its_wave(tmp_path):
    """The Beauty study ran a second plain search before any ICC search: a study cut short should
    hold its comparison (first searches, confirmed) before the search-seed spread."""
    from results.orchestration.study import arm_plans, search_waves

    plans = arm_plans(demo_config(tmp_path, "study.search_seeds=[0,1]"), tmp_path)
    root = tmp_path / "search"
    assert [list(wave) for wave in search_waves(plans, root)] == [
        ["plain-sasrec", "llmesr-sasrec", "icc-sasrec"],
        ["plain-sasrec-search1", "llmesr-sasrec-search1", "icc-sasrec-search1"]]
    for started in ("llmesr-sasrec-search1", "icc-sasrec"):                         # part way: not done
        (root / started).mkdir(parents=True)
        (root / started / "experiment_config.json").write_text("{}")
    waves = search_waves(plans, root)
    assert [list(wave) for wave in waves] == [
        ["icc-sasrec", "plain-sasrec", "llmesr-sasrec"],
        ["llmesr-sasrec-search1", "plain-sasrec-search1", "icc-sasrec-search1"]]
    assert waves[0]["icc-sasrec"] is plans["icc-sasrec"]
    assert [list(w) for w in search_waves(arm_plans(demo_config(tmp_path), tmp_path), root)] == [
        ["icc-sasrec", "plain-sasrec", "llmesr-sasrec"]]                          # one search seed: one wave


def test_a_wave_confirms_its_searches_already_done_before_it_searches_the_rest(tmp_path, monkeypatch):
    """A resumed Beauty study had its second plain search done and two more to search: its
    confirmation (the first search-seed spread) waited hours behind them."""
    from results.orchestration import study
    from results.orchestration.layout import DONE_MARK

    calls = []
    monkeypatch.setattr(study, "run_confirmations", lambda config, folder, found, progress: calls.append(
        ("confirm", sorted(found))))
    monkeypatch.setattr(study, "run_search", lambda wave, folder, address, progress: calls.append(
        ("search", sorted(wave))) or {arm: folder / "search" / arm for arm in wave})
    config = demo_config(tmp_path, "study.search_seeds=[0,1]")
    wave = study.search_waves(study.arm_plans(config, tmp_path), tmp_path / "search")[1]
    assert study.search_and_confirm(config, tmp_path, wave, None, False).keys() == wave.keys()
    assert calls == [("search", sorted(wave)), ("confirm", sorted(wave))]           # nothing done yet

    (tmp_path / "search" / "plain-sasrec-search1").mkdir(parents=True)
    (tmp_path / "search" / "plain-sasrec-search1" / DONE_MARK).write_text("{}")
    calls.clear()
    study.search_and_confirm(config, tmp_path, wave, None, False)
    assert calls == [("confirm", ["plain-sasrec-search1"]), ("search", sorted(wave)), ("confirm", sorted(wave))]


def test_a_budget_below_ten_trials_per_searched_dimension_is_listed_as_a_reduction(tmp_path):
    from results.findings import reductions, searched_dimensions

    config = demo_config(tmp_path)                      # lr, dropout + gamma, n_clusters, ...: 2 trials per arm
    dims = searched_dimensions(config)
    assert dims == len(config.tune.space) + len(config.study.icc_space)
    assert any(f"the rule asks {10 * dims}" in line for line in reductions(config))
    enough = demo_config(tmp_path, f"study.trials_per_arm={10 * dims}")
    assert not any("the rule asks" in line for line in reductions(enough))


def test_the_second_edition_study_config_plans_every_search_and_meets_its_budget_rule(tmp_path):
    from results.findings import reductions, searched_dimensions
    from results.orchestration.study import arm_plans

    config = load_config(REPO / "configs" / "study-scientific-2.yaml", [f"tune.storage_path={tmp_path}"])
    plans = arm_plans(config, tmp_path)
    assert len(plans) == 6 and plans["icc-sasrec-search1"].tune.search_seed == 1
    assert "n_clusters" in plans["icc-sasrec"].tune.space and "icc_share" not in plans["llmesr-sasrec"].tune.space
    assert searched_dimensions(config) == 6 and not any("the rule asks" in r for r in reductions(config))


def test_front_seeds_need_a_spread():
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"study.front_seeds: got \[42\]"):
        load_config(DEMO, ["study.front_seeds=[42]"])


def test_the_beauty_study_is_the_scientific_plan_on_other_data(tmp_path):
    """configs/study-beauty.yaml: the second edition's plan as it is, Beauty's data (computed leaner: model.arithmetic, train.eval_batch_size)."""
    from dataclasses import asdict

    scientific, beauty = (asdict(load_config(REPO / "configs" / f"study-{name}.yaml"))
                          for name in ("scientific-2", "beauty"))
    assert (scientific["data"].pop("name"), beauty["data"].pop("name")) == ("amazon-scientific", "amazon-beauty")
    # the same model computed with fewer operations; Scientific's runs began before the key existed
    assert (scientific["model"].pop("arithmetic"), beauty["model"].pop("arithmetic")) == ("reference", "lean")
    assert (scientific["train"].pop("eval_batch_size"), beauty["train"].pop("eval_batch_size")) == (1024, 256)
    assert beauty == scientific
    reduced = load_config(REPO / "configs" / "study-beauty.yaml",
                          ["study.search_seeds=[]", "study.trials_per_arm=20", "study.seeds=[42,43,44]",
                           "study.front_seeds=[]"])
    from results.findings import reductions

    assert any("the rule asks" in line for line in reductions(reduced))


def test_dose_backbones_must_be_searched_backbones_with_an_llmesr_arm():
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"study.dose_backbones: got \['gru4rec'\]; allowed: distinct backbones"):
        load_config(DEMO, ["study.dose_backbones=[gru4rec]"])
    with pytest.raises(ConfigError, match=r"has no llmesr arm"):
        load_config(DEMO, ["study.dose_backbones=[sasrec]", "study.variants=[plain,icc]"])
    assert load_config(DEMO, ["study.dose_backbones=[sasrec]"]).study.dose_backbones == ["sasrec"]


def test_a_search_whose_start_was_cut_short_starts_again_and_one_copied_part_way_is_refused(tmp_path, capsys):
    """A session's end can kill the study's driver while a search starts, after its
    experiment_config.json and before Ray's first saved state: with no trial reported, nothing is
    lost by starting again, where before the resume stopped and asked for the folder to be deleted."""
    from results.orchestration.confirm import StudyError
    from results.orchestration.study import restart_a_cut_start

    cut = tmp_path / "icc-sasrec"
    (cut / "trial_0a1b2c3d").mkdir(parents=True)
    for name in ("experiment_config.json", "optuna.db", "driver.lock", "trial_0a1b2c3d/result.json"):
        (cut / name).write_text("{}" if name.endswith(".json") and "trial_" not in name else "")
    restart_a_cut_start("icc-sasrec", cut, progress=True)
    assert not cut.exists() and "search icc-sasrec: its start was cut short" in capsys.readouterr().err

    copied = tmp_path / "plain-sasrec"
    (copied / "trial_0a1b2c3d").mkdir(parents=True)
    (copied / "experiment_config.json").write_text("{}")
    (copied / "trial_0a1b2c3d" / "result.json").write_text('{"training_iteration": 1}\n')
    with pytest.raises(StudyError, match="search plain-sasrec: .* without Ray's run state"):
        restart_a_cut_start("plain-sasrec", copied, progress=True)
    assert (copied / "trial_0a1b2c3d" / "result.json").is_file()                    # left for the user

    running = tmp_path / "llmesr-sasrec"
    running.mkdir()
    for name in ("experiment_config.json", "experiment_state-2026-12-06_01-47-51.json"):
        (running / name).write_text("{}")
    restart_a_cut_start("llmesr-sasrec", running, progress=True)
    restart_a_cut_start("absent", tmp_path / "absent", progress=True)
    assert sorted(p.name for p in running.iterdir()) == ["experiment_config.json", "experiment_state-2026-12-06_01-47-51.json"]
    assert capsys.readouterr().err == ""
