"""The private Ray Tune and Optuna attributes icc-tune relies on (tuning/adapters.py), checked on
the installed versions: an upgrade that removes or renames one fails here, naming it."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from tuning import adapters

REPO = Path(__file__).resolve().parents[1]
PRIVATE = ("_storage", "_trial_id", "_experiment_analysis", "_ot_trials", "_ot_study", "_completed_trials",
           "_study_name", "_space", "_brackets", "_rungs")


def _space(trial):
    trial.suggest_float("x", 0.0, 1.0)


@pytest.fixture
def study_and_trial():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    return study, study.ask()


def test_an_optuna_study_has_its_storage(study_and_trial):
    study, _ = study_and_trial
    assert isinstance(adapters.study_storage_of(study), optuna.storages.BaseStorage)


def test_optuna_trials_carry_their_storage_id(study_and_trial):
    study, trial = study_and_trial
    storage = adapters.study_storage_of(study)
    assert storage.get_trial(adapters.storage_trial_id(trial)).number == trial.number
    frozen = study.get_trials(deepcopy=False)[0]
    assert adapters.storage_trial_id(frozen) == adapters.storage_trial_id(trial)


def test_an_rdb_storage_unpickled_with_a_moved_url_opens_the_new_one(tmp_path):
    """Ray's pickled searcher of an experiment carried elsewhere reopens its study where it is
    now: RDBStorage's __setstate__ connects to the pickled url, which the adapter swaps."""
    import pickle

    original = optuna.storages.RDBStorage.__setstate__
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    storage = optuna.storages.RDBStorage(f"sqlite:///{old / 'optuna.db'}")
    optuna.create_study(study_name="carried", storage=storage)
    blob = pickle.dumps(storage)
    old.rename(new)                                          # carried: the first path is gone
    with adapters.storage_url_moved(optuna.storages.RDBStorage, f"sqlite:///{old / 'optuna.db'}",
                                    f"sqlite:///{new / 'optuna.db'}"):
        moved = pickle.loads(blob)
    assert moved.url == f"sqlite:///{new / 'optuna.db'}"
    assert [s.study_name for s in optuna.study.get_all_study_summaries(storage=moved)] == ["carried"]
    assert not old.exists()
    other = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'other.db'}")
    with adapters.storage_url_moved(optuna.storages.RDBStorage, "sqlite:////elsewhere/optuna.db", "sqlite:///x.db"):
        assert pickle.loads(pickle.dumps(other)).url == other.url          # other urls unchanged
    assert optuna.storages.RDBStorage.__setstate__ is original                      # put back on leaving


def test_a_result_grid_keeps_its_trial_records():
    from ray.tune import ResultGrid

    records = SimpleNamespace(trials=[], experiment_path="/nowhere")
    assert adapters.grid_trials(ResultGrid(records)) == []


def test_optuna_search_keeps_its_trials_study_and_space():
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=_space, metric="m", mode="max", study_name="adapters")
    assert searcher.suggest("t1") is not None
    assert isinstance(adapters.search_trials(searcher)["t1"], optuna.Trial)
    assert adapters.search_completed(searcher) == set()
    study = adapters.search_study(searcher)
    assert isinstance(study, optuna.Study)
    assert adapters.search_study_name(searcher) == study.study_name
    assert adapters.search_space(searcher) is _space
    adapters.set_search_study(searcher, study)
    assert adapters.search_study(searcher) is study


def _asha(max_t: int = 4):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric="m", mode="max", max_t=max_t, grace_period=1,
                         reduction_factor=2.0)


def test_asha_keeps_its_rung_records_in_its_brackets():
    """tuning.asha saves and restores these; a restored scheduler cuts as the saved one would."""
    from ray.tune.schedulers import TrialScheduler

    first, second = SimpleNamespace(trial_id="t1"), SimpleNamespace(trial_id="t2")
    scheduler = _asha()
    scheduler.on_trial_add(None, first)
    assert scheduler.on_trial_result(None, first, {"epoch": 1, "m": 0.5}) == TrialScheduler.CONTINUE
    rungs = adapters.asha_rungs(scheduler)
    assert [[m for m, _ in bracket] for bracket in rungs] == [[4, 2, 1]]
    assert rungs[0][-1][1] == {"t1": 0.5} and rungs[0][0][1] == {}
    fresh = _asha()
    assert adapters.set_asha_rungs(fresh, rungs) and adapters.asha_rungs(fresh) == rungs
    fresh.on_trial_add(None, second)
    assert fresh.on_trial_result(None, second, {"epoch": 1, "m": 0.1}) == TrialScheduler.STOP   # below t1
    empty = _asha()
    empty.on_trial_add(None, second)
    assert empty.on_trial_result(None, second, {"epoch": 1, "m": 0.1}) == TrialScheduler.CONTINUE
    assert not adapters.set_asha_rungs(_asha(max_t=8), rungs)        # other milestones: left alone


def test_private_attributes_are_used_only_in_the_adapter_module():
    pattern = re.compile(r"\.(" + "|".join(PRIVATE) + r")\b")
    paths = [REPO / "launch.py", *(p for package in ("datasets", "cluster_prep", "model", "tuning", "results")
                                   for p in (REPO / package).rglob("*.py"))]
    found = [f"{path.relative_to(REPO)}:{number}" for path in paths if path.name != "adapters.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"private Ray/Optuna attributes outside tuning/adapters.py: {found}"
