"""A run trained before under the same storage is copied, not trained again; one that differs only
in how it computes is named before the training starts (results.orchestration.twins). The runs are
the committed Beauty dose-responses: the study's dose stage (lean arithmetic, validation batches of
256) trained dose-beauty's 27 runs (reference arithmetic, 1024) again."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from results.orchestration.run_files import training_code
from results.orchestration.twins import (COMPUTATION_ONLY, OTHER_CODE, copy_counter, reuse_earlier_runs, settings_of,
                                        without_computation)

STUDIES = Path(__file__).resolve().parents[1] / "docs" / "studies"
EARLIER = STUDIES / "dose-beauty" / "dose" / "runs"
AGAIN = STUDIES / "amazon-beauty" / "dose-sasrec" / "dose" / "runs"
RUNS = ("control/seed-42.json", "kmeans-64-share0.2/seed-43.json")


def storage_with_earlier_runs(tmp_path: Path, code: str | None = None) -> Path:
    """dose-beauty's RUNS under `tmp_path`, as if trained by `code` (None: the committed files,
    written before run files recorded their training code)."""
    for run in RUNS:
        target = tmp_path / "dose-beauty" / "dose" / "runs" / run
        target.parent.mkdir(parents=True, exist_ok=True)
        record = json.loads((EARLIER / run).read_text())
        target.write_text(json.dumps(record if code is None else {**record, "code": code}))
    return tmp_path


def jobs_of(folder: Path, out: Path) -> list[tuple]:
    """(arm, seed, config dict, output file) of RUNS as a new dose-response would plan them."""
    jobs = []
    for run in RUNS:
        record = json.loads((folder / run).read_text())
        jobs.append((record["arm"], record["seed"], record["config"], str(out / run)))
    return jobs


def test_the_same_run_under_another_name_is_copied_not_trained(tmp_path):
    storage = storage_with_earlier_runs(tmp_path, code=training_code())
    said: list[str] = []
    jobs = [(f"renamed-{arm}", seed, config, out) for arm, seed, config, out in jobs_of(EARLIER, storage / "new")]
    assert reuse_earlier_runs(jobs, storage, said.append) == []
    assert said == [f"2 runs were trained before under {storage} with the same settings, seed and code: copied, not trained"]
    for (arm, _, config, out), run in zip(jobs, RUNS):
        copy, source = json.loads(Path(out).read_text()), json.loads((EARLIER / run).read_text())
        assert copy["arm"] == arm and copy["config"] == config and copy["test"] == source["test"]
        assert copy["copied_from"] == f"dose-beauty/dose/runs/{run}"


def test_the_copy_counter_counts_what_reuse_would_copy_and_writes_nothing(tmp_path):
    """`study --status` leaves runs that will be copied out of the hours to train."""
    storage = storage_with_earlier_runs(tmp_path, code=training_code())
    jobs = jobs_of(EARLIER, storage / "new")
    other = [(arm, seed, {**config, "train": {**config["train"], "lr": 0.5}}, out.replace("new", "other"))
             for arm, seed, config, out in jobs]
    before = sorted(storage.rglob("*"))
    count = copy_counter(storage)
    assert (count(jobs), count(other), count(jobs + other), count([])) == (2, 0, 2, 0)
    assert sorted(storage.rglob("*")) == before                                       # nothing written
    assert len(reuse_earlier_runs(jobs + other, storage, lambda line: None)) == len(other)
    assert copy_counter(tmp_path / "absent")(jobs) == 0
    assert copy_counter(storage_with_earlier_runs(tmp_path / "old"))(jobs) == 0      # no digest: trains


def test_a_run_that_differs_only_in_how_it_computes_is_named_not_copied(tmp_path):
    storage = storage_with_earlier_runs(tmp_path, code=training_code())
    said: list[str] = []
    jobs = jobs_of(AGAIN, storage / "amazon-beauty")
    assert reuse_earlier_runs(jobs, storage, said.append) == jobs                  # both still train
    (line,) = said
    assert line.startswith(f"2 of the 2 runs to train were trained before under {storage} with the same model")
    assert "but model.arithmetic: 'lean' here, 'reference' there; train.eval_batch_size: 256 here, 1024 there; train.num_threads: 1 here, 0 there (" in line
    assert OTHER_CODE not in line and "dose-beauty/dose/runs/control/seed-42.json" in line
    assert not any(Path(out).exists() for *_, out in jobs)


def test_the_same_settings_trained_by_other_code_are_named_not_copied(tmp_path):
    """A fix in the training code changes results without changing a setting (the cloze-masking
    fix did): a run file that other code wrote, or that predates the code digest, is not copied."""
    for code in (None, "0123456789ab"):
        storage = storage_with_earlier_runs(tmp_path / str(code), code=code)
        said: list[str] = []
        jobs = jobs_of(EARLIER, storage / "new")
        assert reuse_earlier_runs(jobs, storage, said.append) == jobs
        assert len(said) == 1 and f"with the same model, data and seed but {OTHER_CODE} (" in said[0]


def test_a_run_that_trains_differently_is_neither_copied_nor_named(tmp_path):
    storage = storage_with_earlier_runs(tmp_path)
    said: list[str] = []
    jobs = [(arm, seed, {**config, "train": {**config["train"], "lr": 0.003}}, out)
            for arm, seed, config, out in jobs_of(EARLIER, storage / "new")]
    assert reuse_earlier_runs(jobs, storage, said.append) == jobs and said == []


def test_only_computation_settings_are_set_aside():
    settings = settings_of(json.loads((EARLIER / RUNS[0]).read_text())["config"])
    kept = without_computation(settings)
    for section, keys in COMPUTATION_ONLY.items():
        assert all(key in settings[section] and key not in kept[section] for key in keys)
    assert kept["train"]["lr"] == settings["train"]["lr"] and kept["model"]["icc_share"] == settings["model"]["icc_share"]


def test_run_files_that_do_not_read_as_runs_are_passed_over(tmp_path):
    """Anything named seed-*.json under the storage is read: what is not a run record with a
    config this code loads is left out, and the runs still train."""
    folder = tmp_path / "other" / "dose" / "runs" / "control"
    folder.mkdir(parents=True)
    record = json.loads((EARLIER / RUNS[0]).read_text())
    for name, config in (("seed-1", []), ("seed-2", {"model": 5}), ("seed-3", {"nope": {}}), ("seed-4", None)):
        (folder / f"{name}.json").write_text(json.dumps({**record, "config": config, "code": training_code()}))
    (folder / "seed-5.json").write_text("{cut")
    said: list[str] = []
    jobs = jobs_of(EARLIER, tmp_path / "new")
    assert reuse_earlier_runs(jobs, tmp_path, said.append) == jobs and said == []


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=JSON | st.fixed_dictionaries({"model": JSON, "train": JSON}))
def test_any_config_in_a_run_file_leaves_the_runs_to_train(tmp_path_factory, config):
    storage = tmp_path_factory.mktemp("storage")
    (storage / "x").mkdir()
    record = json.loads((EARLIER / RUNS[0]).read_text())
    (storage / "x" / "seed-1.json").write_text(json.dumps({**record, "config": config, "code": training_code()}))
    jobs = jobs_of(EARLIER, storage / "new")
    assert reuse_earlier_runs(jobs, storage, lambda line: None) == jobs
