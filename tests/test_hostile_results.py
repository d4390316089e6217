"""report, reproduce and the command line against damaged or odd folders and files (issue 24):
markup or a slash in a hand-edited backbone, a damaged references cache, a trial that never
finished an epoch, files where folders belong, and the JSON line scripts rely on with --json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_config_properties import SETTINGS, keys, one_error_line, override_values, run_launch

XSS = 'x"><svg onload=alert(1)>'


def trial(root: Path, trial_id: str, backbone: str = "sasrec", epochs: int = 2, error: bool = False,
          sampled: bool = True) -> Path:
    """A trial folder as Ray writes it: params.json (sampled params and the full config),
    result.json (one line per epoch; a final test report if it ran its budget), error.txt."""
    folder = root / f"trial_{trial_id}"
    folder.mkdir(parents=True)
    config = {"model": {"backbone": backbone, "gamma": 0.0, "hidden_size": 8, "max_len": 5},
              "train": {"epochs": 2, "seed": 42}}
    params = {"params": {"lr": 0.001, **({"backbone": backbone} if sampled else {})}, "config": config}
    (folder / "params.json").write_text(json.dumps(params))
    lines = [{"epoch": e, "valid_ndcg_10": 0.1 * e, "trial_id": trial_id, "time_total_s": float(e),
              "date": "2026-12-01_10-00-0" + str(e)} for e in range(1, epochs + 1)]
    if epochs == 2:
        lines[-1].update(test_ndcg_10=0.15, done=True)
    (folder / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if error:
        (folder / "error.txt").write_text("Failure # 1 (occurred at 2026-12-01_10-00-09)\nRuntimeError: boom\n")
    return folder


# ---- defect 6: markup and a slash in a backbone ----------------------------------------------------

def test_table_ids_are_escaped():
    import pandas as pd

    from results.tables import to_html

    page = to_html(pd.DataFrame({"a": [1]}), table_id=f"grid_{XSS}")
    assert "<svg" not in page and 'id="grid_x&quot;&gt;&lt;svg onload=alert(1)&gt;"' in page


@pytest.mark.parametrize("backbone", [XSS, "a/b", "../../x", ""])
@pytest.mark.parametrize("sampled", [True, False])
def test_a_hand_edited_backbone_is_one_line_naming_the_trial_and_field(tmp_path, backbone, sampled):
    """Before: markup landed unescaped in the dashboard's table id; "a/b" crashed in pandas
    ("Cannot save file into a non-existent directory"), leaving no index.html, naming neither."""
    trial(tmp_path, "aaaa0001")
    bad = trial(tmp_path, "bbbb0002", backbone=backbone, sampled=sampled)
    line = one_error_line(*run_launch("report", str(tmp_path))[::2])
    field = "params.backbone" if sampled else "config.model.backbone"
    assert f"trial folder {str(bad)!r}: params.json {field}: got {backbone!r}; allowed: sasrec, bert4rec, " \
           f"gru4rec" in line, line
    assert not list(tmp_path.rglob("*.html"))


def test_every_known_backbone_reports_with_its_grid(tmp_path):
    for n, backbone in enumerate(("sasrec", "bert4rec", "gru4rec")):
        trial(tmp_path, f"aaaa000{n}", backbone=backbone)
    code, out, err = run_launch("report", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "report" / "index.html").is_file()


# ---- defect 7: the references cache --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory) -> Path:
    """Two finished trials and an experiment_config.json whose data (a tiny CSV with a user's
    embedding file) prepares in a second, so the references can be computed for real."""
    root = tmp_path_factory.mktemp("refs")
    items = [str(i) for i in range(1, 9)]
    rows = [(f"u{u}", item, t) for u in range(6) for t, item in enumerate(items) if item != items[u]]
    (root / "inter.csv").write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    np.save(root / "emb.npy", np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32))
    experiment = root / "exp"
    trial(experiment, "aaaa0001")
    trial(experiment, "bbbb0002", backbone="gru4rec")
    data = {"name": "csv", "path": str(root / "inter.csv"), "embedder": "file",
            "embedding_path": str(root / "emb.npy"), "cache_dir": str(root / "cache"), "user_core": 1,
            "item_core": 1, "pca_dim": 4, "n_eval_negatives": 1, "n_similar_users": 2}
    (experiment / "experiment_config.json").write_text(json.dumps({"data": data, "model": {"max_len": 5}}))
    return experiment


def _report(experiment: Path) -> dict:
    from results.report import write_report

    return write_report(experiment)


def _reference_rows(experiment: Path) -> list[str]:
    import pandas as pd

    table = pd.read_csv(experiment / "report" / "best_per_backbone.csv")
    return sorted(table.loc[table["backbone"] == "reference", "trial_id"])


DAMAGE = {"cut": lambda text: text[: len(text) // 2], "empty": lambda text: "", "braces": lambda text: "{}",
          "null": lambda text: "null", "old format": lambda text: json.dumps(json.loads(text)["references"]),
          "other key": lambda text: json.dumps({**json.loads(text), "depends_on": {"max_len": 7}})}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_references_cache_is_rebuilt(tiny_experiment, damage):
    """Before: a cut or empty file failed every later report ("Expecting value: line 1 column
    1"); `{}` silently dropped the reference rows; a changed config reused stale numbers."""
    cached = tiny_experiment / "report" / "references.json"
    if not cached.is_file():
        _report(tiny_experiment)
    good = json.loads(cached.read_text())
    assert good["depends_on"]["max_len"] == 5 and set(good["references"]) == {"valid", "test"}
    cached.write_text(DAMAGE[damage](cached.read_text()))
    report = _report(tiny_experiment)
    assert not any("references" in note for note in report["notes"]), report["notes"]
    assert json.loads(cached.read_text()) == good                  # rebuilt, the same numbers
    assert _reference_rows(tiny_experiment) == ["history_then_popularity", "last_item_text", "popularity"]


def test_references_follow_what_they_depend_on(tiny_experiment):
    """A file made for the same key is used as it is (here: planted numbers come back); one made
    for another config (max_len, repeats, data options) is recomputed and replaced."""
    from results.references import cached_references, depends_on
    from runtime import write_atomic
    from tuning.config import config_from_dict

    saved = json.loads((tiny_experiment / "experiment_config.json").read_text())
    path = tiny_experiment / "report" / "refs-other.json"
    config = config_from_dict(saved)
    real = cached_references(config, path)
    planted = {split: {"popularity": {"ndcg_10": 0.5}} for split in ("valid", "test")}
    write_atomic(path, json.dumps({"depends_on": depends_on(config), "references": planted}))
    assert cached_references(config, path) == planted
    for change in ({"model": {"max_len": 2}}, {"eval": {"repeats": "exclude"}},
                   {"data": {**saved["data"], "seed": 7}}):
        other = config_from_dict({**saved, **change})
        assert depends_on(other) != depends_on(config), change
        write_atomic(path, json.dumps({"depends_on": depends_on(config), "references": planted}))
        assert cached_references(other, path) != planted
        assert json.loads(path.read_text())["depends_on"] == depends_on(other)
    assert cached_references(config, path) == real


def test_references_are_written_atomically(tiny_experiment, monkeypatch):
    """A write that fails midway (full disk at the rename) leaves the old file whole and no
    temporary file behind."""
    import runtime

    cached = tiny_experiment / "report" / "references.json"
    if not cached.is_file():
        _report(tiny_experiment)
    before = cached.read_text()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime.os, "replace", full_disk)
    with pytest.raises(OSError):
        runtime.write_atomic(cached, json.dumps({"depends_on": {}, "references": {}}))
    assert cached.read_text() == before
    assert [p.name for p in cached.parent.iterdir() if p.name.startswith(".")] == []


# ---- defect 13: messages -----------------------------------------------------------------------------

def test_reproducing_a_trial_that_never_finished_an_epoch_says_so(tmp_path):
    """Before: "train.epochs: got 0; allowed: int in [1, inf)", naming a setting nobody gave."""
    trial(tmp_path, "aaaa0001")
    trial(tmp_path, "bbbb0002", epochs=0, error=True)
    line = one_error_line(*run_launch("reproduce", str(tmp_path), "--trial", "bbbb0002")[::2])
    assert "--trial bbbb0002: the trial never finished an epoch (state errored)" in line, line


def test_report_of_a_file_says_it_is_a_file(tmp_path):
    """Before: "experiment folder 'README.md' does not exist" about a file that exists."""
    readme = tmp_path / "README.md"
    readme.write_text("# hi\n")
    line = one_error_line(*run_launch("report", str(readme))[::2])
    assert f"{str(readme)!r} is a file, not an experiment folder" in line, line


@pytest.mark.parametrize("command", ["tune", "study"])
@pytest.mark.parametrize("below", [False, True])
def test_a_storage_path_that_cannot_be_a_folder_names_the_setting(tmp_path, command, below):
    """Before: "[Errno 17] File exists: '/abs/README.md'", naming no setting."""
    readme = tmp_path / "README.md"
    readme.write_text("# hi\n")
    storage = readme / "runs" if below else readme
    line = one_error_line(*run_launch(command, "--name", "n1", "--set", f"tune.storage_path={storage}")[::2])
    assert line.startswith(f"error: tune.storage_path: got {str(storage)!r}; cannot create the folder"), line
    assert "a file is in the way" in line


def test_findings_at_a_file_is_one_line_before_any_work(tmp_path):
    """Before: the whole study ran, then "[Errno 17] File exists". (data.name=csv without a path
    makes the old code fail fast too, with a line that does not name --findings.)"""
    readme = tmp_path / "README.md"
    readme.write_text("# hi\n")
    line = one_error_line(*run_launch("study", "--name", "s1", "--set", f"tune.storage_path={tmp_path / 'runs'}",
                                      "--set", "data.name=csv", "--findings", str(readme))[::2])
    assert line.startswith(f"error: --findings: got {str(readme)!r}; cannot create the folder"), line
    assert not (tmp_path / "runs" / "s1").exists()


@pytest.mark.parametrize("argv, key", [
    (("train", "--set", "model.gamma=-1"), "model.gamma"),
    (("report", "no/such/folder"), None),
    (("reproduce", "no/such/folder", "--trial", "x"), None),
    (("prepare", "--dataset", "csv"), None),
    (("tune", "--resume"), "tune.name"),
])
def test_json_errors_end_stdout_with_one_json_object(argv, key):
    """Before: with --json an error left stdout empty, though every command promises a JSON last line."""
    code, out, err = run_launch(*argv, "--json")
    line = one_error_line(code, err)
    last = json.loads(out.splitlines()[-1])
    assert last == {"error": line.removeprefix("error: "), "key": key}


@settings(SETTINGS, max_examples=60)
@given(key=keys, raw=override_values)
def test_any_bad_override_with_json_ends_in_one_json_error(tmp_path_factory, key, raw):
    storage = tmp_path_factory.getbasetemp() / "nothing-here"
    code, out, err = run_launch("tune", "--resume", "--name", "no-such-experiment", "--json",
                                f"--set=tune.storage_path={storage}", f"--set={key}={raw}")
    line = one_error_line(code, err)
    last = json.loads(out.splitlines()[-1])
    assert set(last) == {"error", "key"} and last["error"] == line.removeprefix("error: ")
    assert last["key"] is None or last["error"].startswith(f"{last['key']}:")


def test_no_temporary_files_are_left_by_reports(tiny_experiment):
    _report(tiny_experiment)
    leftovers = [p for p in (tiny_experiment / "report").iterdir() if p.name.startswith(".")]
    assert leftovers == [] and os.path.isfile(tiny_experiment / "report" / "index.html")
