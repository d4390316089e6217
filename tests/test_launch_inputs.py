"""Bad input to the other commands (report, reproduce, clusters, tune --address): one `error:`
line naming what is wrong, exit 2, never a traceback. launch.main runs in this process."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_config_properties import SETTINGS, one_error_line, run_launch


def _trial(root: Path, name: str, params: str, results: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(params)
    if results is not None:
        (folder / "result.json").write_text(results)
    return folder


GOOD_PARAMS = json.dumps({"params": {"lr": 0.001}, "config": {"train": {"epochs": 2}}})

FOLDERS = {  # name -> (trial files as (params.json, result.json), fragment of the expected line)
    "params not JSON": (("{", None), "params.json: not readable JSON"),
    "params a list": (("[1, 2]", None), "params.json: expected a JSON object, got list"),
    "params null": (("null", None), "params.json: expected a JSON object, got NoneType"),
    "result lines not objects": ((GOOD_PARAMS, "1\n[2]\n"), "result.json:1: expected a JSON object"),
    "result bad in the middle": ((GOOD_PARAMS, '{"epoch": 1}\n{oops\n{"epoch": 2}\n'), "result.json:2: not JSON"),
}


@pytest.mark.parametrize("case", sorted(FOLDERS))
@pytest.mark.parametrize("command", ["report", "reproduce"])
def test_damaged_trial_folders_are_named_in_one_line(tmp_path, command, case):
    (params, results), fragment = FOLDERS[case]
    _trial(tmp_path, "trial_0001", params, results)
    line = one_error_line(*run_launch(command, str(tmp_path))[::2])
    assert fragment in line and str(tmp_path) in line, line


@pytest.mark.parametrize("command", ["report", "reproduce"])
def test_missing_empty_or_file_experiment_is_one_line(tmp_path, command):
    assert "does not exist" in one_error_line(*run_launch(command, str(tmp_path / "nope"))[::2])
    assert "holds no trial folders" in one_error_line(*run_launch(command, str(tmp_path))[::2])
    (tmp_path / "file").write_text("x")
    assert str(tmp_path / "file") in one_error_line(*run_launch(command, str(tmp_path / "file"))[::2])


def test_reproduce_names_a_bad_trial_or_seed_count(tmp_path):
    _trial(tmp_path, "trial_0001", GOOD_PARAMS, '{"epoch": 1, "valid_ndcg_10": 0.1, "trial_id": "t1"}\n')
    line = one_error_line(*run_launch("reproduce", str(tmp_path), "--trial", "zzz")[::2])
    assert "--trial: got 'zzz'; allowed: best or one of t1" in line, line
    line = one_error_line(*run_launch("reproduce", str(tmp_path), "--seeds", "-1")[::2])
    assert "seeds: got -1" in line, line


@pytest.mark.parametrize("args, fragment", [
    (("--dataset", "nope"), "data.name: got 'nope'"),
    (("--dataset", "ml-100k", "--n-clusters", "1"), "clusters.n_clusters: got 1"),
    (("--dataset", "ml-100k", "--set", "clusters.dim=.inf"), "clusters.dim: got inf"),
])
def test_clusters_with_bad_arguments(args, fragment):
    assert fragment in one_error_line(*run_launch("clusters", *args)[::2])


@pytest.mark.parametrize("address", ["nowhere", "host:", ":1", "host:99999", "host:0", "host:²", "ray://h:x"])
def test_tune_with_a_malformed_address(tmp_path, address):
    line = one_error_line(*run_launch("tune", "--address", address, "--name", "a",
                                      "--set", f"tune.storage_path={tmp_path}")[::2])
    assert f"--address {address!r}: expected auto, HOST:PORT" in line, line
    assert not (tmp_path / "a").exists()                    # the name was released again


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["epoch", "valid_ndcg_10", "trial_id", "test_ndcg_10",
                                                              "training_iteration", "finished", "time_total_s"]),
                                             inner, max_size=5), max_leaves=10)
lines = st.lists(json_values.map(json.dumps) | st.text(alphabet=string.printable, max_size=20), max_size=4)


@settings(SETTINGS, max_examples=150)
@given(params=json_values.map(json.dumps) | st.text(max_size=20), results=lines)
def test_any_trial_files_give_a_table_or_one_error_naming_the_folder(tmp_path_factory, params, results):
    from results.load import ExperimentError, load_experiment

    root = tmp_path_factory.mktemp("exp")
    _trial(root, "trial_0001", params, "\n".join(results))
    try:
        table = load_experiment(root)
    except ExperimentError as error:
        assert "\n" not in str(error) and str(root) in str(error), str(error)
    else:
        assert len(table) == 1
