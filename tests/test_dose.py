"""ICC's dose-response: the plan of runs, the equivalence test, and a real tiny run that resumes."""

from __future__ import annotations

import json

import pytest

from results.stats import equivalence, paired, verdict
from settings import ConfigError
from tuning.config import load_config


def test_tost_calls_close_pairs_equivalent_and_wide_ones_not():
    control = [0.100, 0.102, 0.098, 0.101, 0.099]
    close = [c + d for c, d in zip(control, (0.0002, -0.0001, 0.0001, 0.0, -0.0002))]
    wide = [c + d for c, d in zip(control, (0.004, -0.005, 0.006, -0.004, 0.003))]
    tight = equivalence(close, control, margin=0.02)
    assert tight["p_value"] < 0.05 and tight["bound"] == pytest.approx(0.002)
    assert equivalence(wide, control, margin=0.02)["p_value"] > 0.05
    assert equivalence(close[:1], control[:1], margin=0.02)["p_value"] is None       # one seed: no test
    assert verdict(paired(close, control), tight) == "equivalent (within +/-2 %)"
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


@pytest.mark.parametrize("override, key", [
    ("dose.clusterings=[dbscan-3]", "dose.clusterings"), ("dose.clusterings=[kmeans-x]", "dose.clusterings"),
    ("dose.shares=[0.0]", "dose.shares"), ("dose.shares=[1.5]", "dose.shares"), ("dose.seeds=[42]", "dose.seeds"),
])
def test_bad_dose_settings_fail_in_one_line(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


@pytest.mark.slow
def test_a_tiny_dose_response_runs_reports_and_resumes(tmp_path):
    from conftest import SHARED_DATA, TEST_CACHE
    from results.orchestration.dose import load_runs, pending_jobs, run_dose

    config = load_config(None, [
        "data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
        "model.variant=llmesr", "model.hidden_size=16", "model.max_len=20", "model.num_blocks=1",
        "model.adapter_hidden=32", "model.loss=ce", "model.teacher=epoch", "clusters.silhouette_sample=0",
        "train.epochs=1", "train.batch_size=256", "train.device=cpu", f"tune.storage_path={tmp_path}",
        "dose.shares=[0.1]", "dose.clusterings=[kmeans-8]", "dose.seeds=[42,43]", "dose.workers=2"])
    out = run_dose(config, "tiny", progress=False)
    runs = load_runs(tmp_path / "tiny")
    assert out["runs"] == 4 and out["doses"] == 1 and len(runs) == 4
    assert {r["arm"] for r in runs} == {"control", "kmeans-8-share0.1"}
    dosed = [r for r in runs if r["arm"] != "control"]
    assert all(abs(r["history"][0]["loss_shares"]["icc"] - 0.1) < 0.05 for r in dosed)      # the dose it bought
    assert all(r["history"][0]["loss_shares"]["icc"] == 0.0 for r in runs if r["arm"] == "control")
    table = (tmp_path / "tiny" / "dose" / "dose.md").read_text()
    assert "| kmeans-8 | 0.1 | 2 |" in table and (tmp_path / "tiny" / "dose" / "dose.png").is_file()
    assert "Training length: 4 of 4 runs (100 %) had their best validation epoch at the 1-epoch cap" in table
    saved = config.replace({"tune.name": "tiny"})                         # the config the folder holds
    assert pending_jobs(saved, tmp_path / "tiny") == []                       # a resume has nothing to do
    before = {p: p.stat().st_mtime for p in (tmp_path / "tiny" / "dose" / "runs").rglob("*.json")}
    run_dose(config, "tiny", resume=True, progress=False)
    assert {p: p.stat().st_mtime for p in before} == before
    assert json.loads(sorted(before)[0].read_text())["config"]["dose"]["seeds"] == [42, 43]
    gone = sorted(before)[-1]                                    # a dose-response stopped part way:
    gone.unlink()
    partial = run_dose(config, "tiny", report_only=True, progress=False)
    assert partial["runs"] == 3 and partial["missing"] == 1 and not gone.exists()      # reported, not run
    assert "Partial: 1 of 4 planned runs" in (tmp_path / "tiny" / "dose" / "dose.md").read_text()
    assert "| one seed: no test yet |" in (tmp_path / "tiny" / "dose" / "dose.md").read_text()
