"""Runs trained before, elsewhere under the same storage: copied, or named, before any training.

A dose or confirmation run is fixed by its training settings and seed (model.pipeline.run_settings,
the rule `trained_as` applies within one folder). Another dose-response or study under the same
storage may already hold a run file with exactly those settings: it is copied instead of trained
again. A run file that differs only in how the run is computed (COMPUTATION_ONLY: the arithmetic,
the evaluation batch, threads, device) gives the same results to rounding; it is not copied (its
numbers are not this run's), but it is named, with the settings that differ, before the training
starts. Why: seeded searchers draw the same first candidates on every dataset, so a study's tuned
arm can be an earlier dose-response's base. The Beauty study's dose stage trained dose-beauty's 27
runs again (6 CPU hours), differing only in model.arithmetic and train.eval_batch_size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: settings that change how a run is computed, not what it learns (results agree to rounding)
COMPUTATION_ONLY = {"model": ("arithmetic",), "train": ("eval_batch_size", "num_threads", "device")}

Job = tuple[str, int, dict[str, Any], str]          # (arm, seed, config dict, output file)


def settings_of(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The run settings of a config dict (saved by any version of this code)."""
    from model.pipeline import run_settings
    from results.orchestration.run_files import comparable

    return run_settings(comparable(config_dict))


def without_computation(settings: dict[str, Any]) -> dict[str, Any]:
    return {section: {key: value for key, value in values.items() if key not in COMPUTATION_ONLY.get(section, ())}
            for section, values in settings.items()}


def _key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def index_runs(root: Path) -> tuple[dict[str, Path], dict[str, tuple[Path, dict[str, Any]]]]:
    """Every readable run file under `root`, by its exact settings and by its settings without
    COMPUTATION_ONLY (the first file found for each, in path order)."""
    from results.orchestration.run_files import read_run

    exact: dict[str, Path] = {}
    near: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(root.rglob("seed-*.json")):
        record = read_run(path)
        if record is None:
            continue
        try:
            settings = settings_of(record["config"])
        except (TypeError, ValueError, KeyError):
            continue                        # a config this code no longer reads: not comparable
        exact.setdefault(_key(settings), path)
        near.setdefault(_key(without_computation(settings)), (path, settings))
    return exact, near


def computation_differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """'section.key: mine here, theirs there' for each COMPUTATION_ONLY setting that differs."""
    return [f"{section}.{key}: {mine[section].get(key)!r} here, {theirs[section].get(key)!r} there"
            for section, keys in COMPUTATION_ONLY.items() for key in keys
            if mine[section].get(key) != theirs[section].get(key)]


def reuse_earlier_runs(jobs: list[Job], root: Path, say: Any) -> list[Job]:
    """Copy each job whose exact run another file under `root` holds; name (through `say`, one
    line each) the jobs that differ from an earlier run only in COMPUTATION_ONLY settings; return
    the jobs still to train."""
    from results.orchestration.run_files import read_run, write_json

    if not jobs or not root.is_dir():
        return jobs
    exact, near = index_runs(root)
    left, copied, twins = [], 0, []
    for arm, seed, wanted, out in jobs:
        settings = settings_of(wanted)
        source = exact.get(_key(settings))
        record = read_run(source) if source is not None and source != Path(out) else None
        if record is not None:
            write_json(Path(out), {**record, "arm": arm, "config": wanted,
                                   "copied_from": source.relative_to(root).as_posix()})
            copied += 1
            continue
        left.append((arm, seed, wanted, out))
        twin = near.get(_key(without_computation(settings)))
        if twin is not None:
            twins.append((twin[0], computation_differences(settings, twin[1])))
    if copied:
        say(f"{copied} runs were trained before under {root} with the same settings and seed: copied, not trained")
    if twins:
        say(f"{len(twins)} of the {len(left)} runs to train were trained before under {root} with only "
            f"how they compute changed ({'; '.join(twins[0][1])}; e.g. {twins[0][0].relative_to(root)}): "
            f"their results would match to rounding; set those to the earlier values to copy them instead")
    return left
