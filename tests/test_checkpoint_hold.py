"""A trial's previous checkpoint is kept until a backed-up state names its successor (unit level;
the real driver killed in that window is tests/test_resume_faults.py::test_driver_killed_between_...)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from tuning.checkpoint_hold import PREFIX, hold, put_back
from tuning.state_backup import StateBackup


def _checkpoint(trial: Path, index: int) -> Path:
    folder = trial / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "trainer.pt").write_bytes(os.urandom(64))
    (folder / "metrics.json").write_text(json.dumps({"epoch": index + 1}))
    return folder


def test_hold_links_every_file_without_copying_and_survives_the_deletion(tmp_path):
    checkpoint = _checkpoint(tmp_path / "trial_a", 0)
    data = (checkpoint / "trainer.pt").read_bytes()
    held = hold(checkpoint)
    assert held == checkpoint.with_name(PREFIX + checkpoint.name)
    assert (held / "trainer.pt").stat().st_ino == (checkpoint / "trainer.pt").stat().st_ino
    assert hold(checkpoint) == held                                  # held once
    for path in checkpoint.iterdir():                                # what Ray's deletion does
        path.unlink()
    checkpoint.rmdir()
    assert (held / "trainer.pt").read_bytes() == data
    assert hold(checkpoint) is None                                  # nothing left to hold


def test_put_back_restores_a_deleted_checkpoint_and_drops_copies_not_needed(tmp_path):
    gone = _checkpoint(tmp_path / "trial_a", 2)
    kept = _checkpoint(tmp_path / "trial_b", 5)
    data = (gone / "trainer.pt").read_bytes()
    hold(gone), hold(kept)
    for path in gone.iterdir():
        path.unlink()
    gone.rmdir()
    (tmp_path / "trial_b" / f".{PREFIX}checkpoint_000006.partial").mkdir()    # a copy cut by the kill
    assert put_back(tmp_path) == [str(gone)]
    assert (gone / "trainer.pt").read_bytes() == data and kept.is_dir()
    assert sorted(p.name for p in tmp_path.glob("*/*")) == ["checkpoint_000002", "checkpoint_000005"]
    assert put_back(tmp_path) == []                                  # nothing held: nothing to do


def _trial(checkpoint: Path | None) -> SimpleNamespace:
    previous = None if checkpoint is None else SimpleNamespace(path=str(checkpoint),
                                                               filesystem=SimpleNamespace(type_name="local"))
    return SimpleNamespace(checkpoint=previous)


def _write_state(folder: Path, trials: dict) -> None:
    (folder / "experiment_state-2026-12-05_00-00-00.json").write_text(json.dumps({"trial_data": trials}))
    time.sleep(0.02)                                                 # past the file system's clock step


def test_a_copy_is_released_only_once_a_backed_up_state_was_written_after_it(tmp_path):
    trial = tmp_path / "trial_a"
    first = _checkpoint(trial, 0)
    backup = StateBackup(tmp_path)
    _write_state(tmp_path, {"a": str(first)})
    backup.save()
    backup.on_checkpoint(0, [], _trial(None), None)                  # a trial's first checkpoint: nothing before it
    backup.on_checkpoint(0, [], _trial(first), None)                 # Ray is about to record checkpoint 1
    held = first.with_name(PREFIX + first.name)
    assert held.is_dir()
    backup.save()                                                    # the state on disk predates the hold
    assert held.is_dir()
    _write_state(tmp_path, {"a": "checkpoint_000001"})               # Ray's state naming the successor
    backup.save()
    assert not held.exists() and first.is_dir()


def test_on_experiment_end_releases_the_last_copies(tmp_path):
    first = _checkpoint(tmp_path / "trial_a", 0)
    backup = StateBackup(tmp_path)
    backup.on_checkpoint(0, [], _trial(first), None)
    _write_state(tmp_path, {"a": "checkpoint_000001"})               # Ray's final, forced state
    backup.on_experiment_end([])
    assert not list(tmp_path.glob(f"*/{PREFIX}*"))


def test_a_backup_pickled_by_older_code_resumes_and_holds(tmp_path):
    """Ray restores the callback from the Tuner pickled when the experiment started: one started
    before the hold existed has no `_held` (the resumed study driver raised AttributeError)."""
    import pickle

    older = StateBackup(tmp_path)
    del older.__dict__["_held"]
    restored = pickle.loads(pickle.dumps(older))
    first = _checkpoint(tmp_path / "trial_a", 0)
    restored.on_checkpoint(0, [], _trial(first), None)
    _write_state(tmp_path, {"a": "checkpoint_000001"})
    restored.save()
    assert first.is_dir() and not list(tmp_path.glob(f"*/{PREFIX}*"))


def _state_entry(trial_id: str, status: str, checkpoint: Path | None) -> list[str]:
    """One `trial_data` entry of Ray's experiment state: the trial's record and its runtime, whose
    checkpoint manager is pickled (a stand-in object with the attributes read)."""
    import pickle

    latest = SimpleNamespace(checkpoint=SimpleNamespace(path=str(checkpoint))) if checkpoint else None
    manager = pickle.dumps(SimpleNamespace(latest_checkpoint_result=latest)).hex()
    return [json.dumps({"trial_id": trial_id, "status": status}),
            json.dumps({"checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK", "value": manager}})]


def test_a_missing_checkpoint_of_a_trial_still_to_run_gets_an_empty_stand_in(tmp_path):
    """A search carried without its checkpoints: each trial still to run whose named checkpoint
    is gone gets an empty folder there (the trial then restarts from scratch instead of Ray
    erroring it); finished trials, present checkpoints and trials without one are left alone."""
    from tuning.checkpoint_hold import stand_in_for_missing

    assert stand_in_for_missing(tmp_path) == []                                   # no state yet
    kept = _checkpoint(tmp_path / "trial_b", 4)
    entries = [_state_entry("a", "RUNNING", tmp_path / "trial_a" / "checkpoint_000007"),
               _state_entry("b", "PAUSED", kept),
               _state_entry("c", "TERMINATED", tmp_path / "trial_c" / "checkpoint_000029"),
               _state_entry("d", "PENDING", None),
               _state_entry("e", "PENDING", Path("/elsewhere/exp/trial_e/checkpoint_000002"))]
    (tmp_path / "experiment_state-2026-12-06_00-00-00.json").write_text(json.dumps({"trial_data": entries}))
    made = stand_in_for_missing(tmp_path)
    assert made == [str(tmp_path / "trial_a" / "checkpoint_000007"), str(tmp_path / "trial_e" / "checkpoint_000002")]
    assert all(Path(m).is_dir() and not any(Path(m).iterdir()) for m in made)
    assert sorted(p.name for p in kept.iterdir()) == ["metrics.json", "trainer.pt"]  # untouched
    assert not (tmp_path / "trial_c").exists()
    assert stand_in_for_missing(tmp_path) == []                                   # once
