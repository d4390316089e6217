"""Runs trained before, elsewhere under the same storage: copied, or named, before any training.

A dose or confirmation run is fixed by its training settings and seed (model.pipeline.run_settings,
the rule `trained_as` applies within one folder) and by the code that trains it. A run file under
the same storage with exactly those settings, written by the same training code (its `code`
digest, run_files.training_code), is copied instead of trained again. A run file that differs
only in how the run is computed (COMPUTATION_ONLY: the arithmetic, the evaluation batch, threads,
device), or that other training code wrote (a fix may change results without changing a setting),
is not copied, but named with what differs before the training starts. Why: seeded searchers
draw the same first candidates on every dataset, so a study's tuned arm can be an earlier
dose-response's base. The Beauty study's dose stage trained dose-beauty's 27 runs again (6 CPU
hours), differing only in model.arithmetic and train.eval_batch_size, and nothing said so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

from results.orchestration.run_files import read_run, settings_of, training_code, write_json

#: settings that change how a run is computed, not what it learns (results agree to rounding)
COMPUTATION_ONLY = {"model": ("arithmetic",), "train": ("eval_batch_size", "num_threads", "device")}
OTHER_CODE = "trained by other training code (or before run files recorded it)"

Job = tuple[str, int, dict[str, Any], str]          # (arm, seed, config dict, output file)
Earlier = tuple[Path, dict[str, Any], dict[str, Any]]     # (run file, its settings, its record)


def without_computation(settings: dict[str, Any]) -> dict[str, Any]:
    return {section: {key: value for key, value in values.items() if key not in COMPUTATION_ONLY.get(section, ())}
            for section, values in settings.items()}


def _key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def index_runs(root: Path) -> tuple[dict[str, Earlier], dict[str, Earlier]]:
    """Every readable run file under `root`, by its exact settings and by its settings without
    COMPUTATION_ONLY (the first file found for each, in path order, preferring this code's)."""
    exact: dict[str, Earlier] = {}
    near: dict[str, Earlier] = {}
    for path in sorted(root.rglob("seed-*.json")):
        record = read_run(path)
        if record is None or not isinstance(record["config"], dict):
            continue
        try:
            settings = settings_of(record["config"])
        except (TypeError, ValueError, KeyError):
            continue                        # a config this code no longer reads: not comparable
        earlier = (path, settings, record)
        for index, key in ((exact, _key(settings)), (near, _key(without_computation(settings)))):
            if key not in index or (not _this_code(index[key]) and _this_code(earlier)):
                index[key] = earlier
    return exact, near


def _this_code(earlier: Earlier) -> bool:
    return earlier[2].get("code") == training_code()


def computation_differences(mine: dict[str, Any], theirs: dict[str, Any], there: str = "there") -> list[str]:
    """Each COMPUTATION_ONLY setting in which two runs' settings differ: 'section.key: mine here,
    theirs there'."""
    return [f"{section}.{key}: {mine[section].get(key)!r} here, {theirs[section].get(key)!r} {there}"
            for section, keys in COMPUTATION_ONLY.items() for key in keys
            if mine[section].get(key) != theirs[section].get(key)]


def differences(mine: dict[str, Any], earlier: Earlier) -> list[str]:
    """What sets an earlier run apart from this one: its COMPUTATION_ONLY settings, other code."""
    return computation_differences(mine, earlier[1]) + ([] if _this_code(earlier) else [OTHER_CODE])


def _exact_twin(exact: dict[str, Earlier], settings: dict[str, Any], out: str) -> Earlier | None:
    """The earlier run a job copies: same settings and seed, this training code, another file."""
    same = exact.get(_key(settings))
    return same if same is not None and _this_code(same) and same[0] != Path(out) else None


def copy_counter(root: Path) -> Callable[[list[Job]], int]:
    """A counter of the jobs `reuse_earlier_runs` would copy rather than train (nothing is
    written), the run files under `root` indexed once, on first use: `study --status` leaves
    those out of the hours still to train."""
    @functools.cache
    def exact() -> dict[str, Earlier]:
        return index_runs(root)[0]

    def count(jobs: list[Job]) -> int:
        if not jobs or not root.is_dir():
            return 0
        return sum(_exact_twin(exact(), settings_of(wanted), out) is not None for _, _, wanted, out in jobs)
    return count


def reuse_earlier_runs(jobs: list[Job], root: Path, say: Callable[[str], None]) -> list[Job]:
    """Copy each job whose exact run (settings and training code) another file under `root`
    holds; name (through `say`) the jobs an earlier run matches but for how it computes or the
    code that trained it; return the jobs still to train."""
    if not jobs or not root.is_dir():
        return jobs
    exact, near = index_runs(root)
    left, copied, named = [], 0, []
    for arm, seed, wanted, out in jobs:
        settings = settings_of(wanted)
        same = _exact_twin(exact, settings, out)
        if same is not None:
            write_json(Path(out), {**same[2], "arm": arm, "config": wanted,
                                   "copied_from": same[0].relative_to(root).as_posix()})
            copied += 1
            continue
        left.append((arm, seed, wanted, out))
        earlier = near.get(_key(without_computation(settings)))
        if earlier is not None:
            named.append((earlier[0], differences(settings, earlier)))
    if copied:
        say(f"{copied} runs were trained before under {root} with the same settings, seed and code: copied, not trained")
    if named:
        path, what = named[0]
        say(f"{len(named)} of the {len(left)} runs to train were trained before under {root} with the same model, "
            f"data and seed but {'; '.join(what)} (e.g. {path.relative_to(root)}); they train again. Where "
            f"only how they compute differs, their results match to rounding: set those settings to the "
            f"earlier values to copy them instead")
    return left
