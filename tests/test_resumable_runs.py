"""A study's or dose-response's run stopped part way (a session's end, a killed worker) continues
from its last epoch's checkpoint and ends exactly where the uninterrupted run ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA, TEST_CACHE
from model.pipeline import (build_trainer, read_checkpoint, run_settings, run_settings_text, train_once,
                            write_checkpoint)
from results.orchestration.confirm import checkpoint_path, continued_note, run_confirmation
from tuning.config import config_to_dict, load_config

RUN = ["data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={TEST_CACHE}",
       "model.variant=icc", "model.icc_share=0.1", "clusters.method=kmeans", "clusters.n_clusters=8",
       "clusters.silhouette_sample=0", "model.hidden_size=16", "model.max_len=20", "model.num_blocks=1",
       "model.adapter_hidden=32", "model.teacher=epoch", "train.epochs=3", "train.patience=0",
       "train.batch_size=256", "train.device=cpu", "train.num_threads=1"]


def _stopped_after_one_epoch(config, checkpoint: Path):
    """What a worker killed during epoch 2 leaves behind: the checkpoint of epoch 1."""
    from datasets.prepare import prepare_dataset

    trainer = build_trainer(config, prepare_dataset(config.data, progress=False))
    trainer.train_epoch()
    write_checkpoint(checkpoint, run_settings_text(config), trainer)
    return trainer


@pytest.mark.parametrize("arithmetic", ["train.precision=fp32", "train.precision=bf16", "model.arithmetic=lean"])
def test_a_run_stopped_after_an_epoch_continues_from_its_checkpoint_exactly(tmp_path, arithmetic):
    config = load_config(None, [*RUN, arithmetic])
    whole = train_once(config)
    out = tmp_path / "control" / "seed-42.json"
    _stopped_after_one_epoch(config, checkpoint_path(out))
    run_confirmation(("control", 42, config_to_dict(config), str(out)))
    record = json.loads(out.read_text())
    assert record["test"] == whole.test and record["valid"] == whole.valid
    assert (record["best_epoch"], record["epochs"]) == (whole.best_epoch, whole.epochs) == (record["best_epoch"], 3)
    assert [h["train_loss"] for h in record["history"]] == [h["train_loss"] for h in whole.history]
    assert "continued from the checkpoint of epoch 1" in record["notes"]
    assert continued_note(record) == "; continued from the checkpoint of epoch 1"      # on the progress line
    assert continued_note({**record, "notes": ["max_len capped"]}) == continued_note({}) == ""
    assert not checkpoint_path(out).exists()                    # kept the result, dropped the checkpoint


def test_a_checkpoint_is_used_only_by_the_run_that_wrote_it(tmp_path):
    config = load_config(None, [*RUN, "train.epochs=1"])
    checkpoint = tmp_path / "seed-42.partial.pt"
    _stopped_after_one_epoch(config, checkpoint)
    assert read_checkpoint(checkpoint, run_settings_text(config))["epoch"] == 1
    other_seed = config.replace({"train.seed": 43})
    assert read_checkpoint(checkpoint, run_settings_text(other_seed)) is None
    assert read_checkpoint(checkpoint, run_settings_text(config.replace({"model.icc_share": 0.2}))) is None
    assert run_settings_text(config.replace({"dose.seeds": [1, 2]})) == run_settings_text(config)  # the plan is no setting
    moved = config.replace({"tune.storage_path": "/elsewhere", "tune.name": "renamed"})
    assert run_settings_text(moved) == run_settings_text(config)                      # nor where the files live
    # the run file's rule and the checkpoint's are one: the same sections, the same values
    assert json.loads(run_settings_text(config)) == run_settings(config_to_dict(config))
    checkpoint.write_bytes(b"half a file")
    assert read_checkpoint(checkpoint, run_settings_text(config)) is None
    assert read_checkpoint(tmp_path / "none.partial.pt", run_settings_text(config)) is None


def test_a_checkpoint_that_names_its_data_locations_still_continues_its_run(tmp_path):
    """Checkpoints written before the locations left the run's key (or on another machine) carry
    data paths in their settings text; the run is the same, so it continues."""
    config = load_config(None, [*RUN, "train.epochs=1"])
    checkpoint = tmp_path / "seed-42.partial.pt"
    trainer = _stopped_after_one_epoch(config, checkpoint)
    with_paths = json.loads(run_settings_text(config))
    with_paths["data"].update(data_root="/other/machine/data", cache_dir="/other/machine/cache")
    write_checkpoint(checkpoint, json.dumps(with_paths, sort_keys=True), trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config))["epoch"] == 1
    with_paths["model"]["max_len"] = config.model.max_len + 1                # a training setting still counts
    write_checkpoint(checkpoint, json.dumps(with_paths, sort_keys=True), trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config)) is None
    write_checkpoint(checkpoint, "not json", trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config)) is None


def test_a_checkpoint_from_before_a_setting_existed_continues_at_its_default(tmp_path):
    """Older code wrote no value for a setting added since; its default keeps the old behaviour,
    so the run continues. The same setting at another value is another run."""
    config = load_config(None, [*RUN, "train.epochs=1"])
    checkpoint = tmp_path / "seed-42.partial.pt"
    trainer = _stopped_after_one_epoch(config, checkpoint)
    older = json.loads(run_settings_text(config))
    del older["train"]["window_stride"]                     # added after the first runs; this run has the default
    write_checkpoint(checkpoint, json.dumps(older, sort_keys=True), trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config))["epoch"] == 1
    assert read_checkpoint(checkpoint, run_settings_text(config.replace({"train.window_stride": 10}))) is None
    del older["model"]["icc_share"]                         # this run's 0.1 is not the default 0: another run
    write_checkpoint(checkpoint, json.dumps(older, sort_keys=True), trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config)) is None
    older["model"]["icc_share"] = config.model.icc_share
    older["train"]["a_setting_since_removed"] = 1                           # a value this code cannot honour
    write_checkpoint(checkpoint, json.dumps(older, sort_keys=True), trainer)
    assert read_checkpoint(checkpoint, run_settings_text(config)) is None


def test_checkpoints_are_named_beside_their_run_and_outside_the_run_globs(tmp_path):
    out = tmp_path / "kmeans-16-share0.05" / "seed-44.json"
    assert checkpoint_path(out) == tmp_path / "kmeans-16-share0.05" / "seed-44.partial.pt"
    assert not checkpoint_path(out).match("seed-*.json")


def test_a_pool_run_says_each_epoch_only_when_asked(tmp_path, capsys):
    """A dose or confirmation run takes up to half an hour on a CPU: with progress on, its worker
    prints a line per epoch, so a long pool shows it is alive between results."""
    config = load_config(None, [*RUN, "train.epochs=2"])
    out = tmp_path / "control" / "seed-42.json"
    run_confirmation(("control", 42, config_to_dict(config), str(out)), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "control seed 42: epoch" in line]
    history = json.loads(out.read_text())["history"]
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines] == \
        [f"epoch {h['epoch']}/2, valid NDCG@10 {h['valid_ndcg_10']:.4f}" for h in history]
    run_confirmation(("control", 42, config_to_dict(config), str(tmp_path / "quiet.json")))
    assert "epoch" not in capsys.readouterr().err


def test_also_select_tests_a_second_epoch_choice_of_the_same_run_through_a_resume(tmp_path):
    """train.also_select: one run, two epoch choices. The run file's `also` (kept across a resume
    from the epoch-1 checkpoint) is the run with select_metric set to that metric: its best epoch,
    validation and test; the run's own choice and curves are those of a run without it."""
    tail = "tail_item_ndcg_10"
    config = load_config(None, [*RUN, f"train.also_select=[{tail}]"])
    plain = train_once(load_config(None, RUN))
    by_tail = train_once(load_config(None, [*RUN, f"train.select_metric={tail}"]))
    out = tmp_path / "icc" / "seed-42.json"
    _stopped_after_one_epoch(config, checkpoint_path(out))
    run_confirmation(("icc", 42, config_to_dict(config), str(out)))
    record = json.loads(out.read_text())
    assert record["test"] == plain.test and record["best_epoch"] == plain.best_epoch
    assert record["also"][tail] == {"best_epoch": by_tail.best_epoch, "valid": by_tail.valid, "test": by_tail.test}
    curve = [h["valid"][tail] for h in plain.history]
    assert by_tail.best_epoch == curve.index(max(curve)) + 1 != plain.best_epoch     # two different epochs


def test_also_select_names_a_bad_metric_and_a_repeated_one():
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"train.also_select\[1\]: got 'tail'; allowed: one of hit_5"):
        load_config(None, ["train.also_select=[ndcg_10,tail]"])
    with pytest.raises(ConfigError, match="each metric once"):
        load_config(None, ["train.also_select=[hit_10,hit_10]"])
