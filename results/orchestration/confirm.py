"""A study's confirmation runs: the best trial of each search arm re-run from scratch with every
seed of `study.seeds` for the full epoch budget, and each ICC arm's control without ICC.

The same seeds for every arm, so arms compare by paired tests; the control (arm
`control-<backbone>`) is the ICC arm's confirmed config with the constraint switched off
(model.icc.without_icc) and nothing else changed. One JSON file per run:
<study>/confirm/<arm>/seed-<s>.json; a file made from another config is stale and runs again.
With `study.front_seeds`, every other trial on each arm's validation Pareto front (overall vs
tail-item NDCG@10) runs the same way on those seeds (<study>/front/<arm>/<trial>/seed-<s>.json),
so the fronts are compared on test, not only where the search saw them.
The dose-response (results.orchestration.dose) runs its doses through `run_confirmation` too.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterator

from model.icc import without_icc
from results.study_plots import CONTROL
from results.orchestration.run_files import read_runs, trained_as, training_code, write_json
from runtime import interrupts_raise, worker_process
from tuning.eta import pool_time_left

CONFIRM_DIR = "confirm"
FRONT_DIR = "front"



class StudyError(ValueError):
    """A study that cannot start or continue as asked (one line for the user)."""


def say(progress: bool, text: str) -> None:
    """A progress line of the study on stderr."""
    if progress:
        print(f"[study {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def arm_best_row(experiment: Path) -> Any:
    """The arm's best trial row (results.tables.ranked: highest best-epoch validation NDCG@10,
    never an errored trial)."""
    from results.load import load_experiment
    from results.tables import ranked

    order = ranked(load_experiment(experiment))
    if order.empty:
        raise StudyError(f"search arm {experiment.name!r}: no trial reported a validation NDCG@10; "
                         f"see the trials' error.txt in {str(experiment)!r}")
    return order.iloc[0]


def confirm_config(config: Any, row: Any, seed: int) -> dict[str, Any]:
    """The best trial's full config with the confirmation seed and the full epoch budget
    (patience 0: every run trains train.epochs epochs). Where the data and cache lie comes from
    the study's own config, not the trial's (Ray trials save them absolute, on the machine that
    searched): a study carried to another machine confirms with that machine's files."""
    from datasets.config import LOCATIONS
    from results.load import trial_config_dict, trial_params
    from tuning.config import config_from_dict, config_to_dict

    params, _ = trial_params(Path(row["path"]).parent, str(row["trial_id"]))
    best = config_from_dict(trial_config_dict(params))
    here = {f"data.{key}": getattr(config.data, key) for key in LOCATIONS}
    return config_to_dict(best.replace({**here, "train.seed": int(seed), "train.epochs": config.train.epochs,
                                        "train.patience": 0, "train.num_threads": 1}))


def control_config(icc_config: dict[str, Any]) -> dict[str, Any]:
    """An ICC confirmation config with the constraint switched off (model.icc.without_icc),
    every other setting, the seed included, unchanged."""
    from tuning.config import config_from_dict, config_to_dict

    return config_to_dict(without_icc(config_from_dict(icc_config)))


def confirmation_jobs(config: Any, folder: Path, experiments: dict[str, Path]) -> list[tuple]:
    """(arm, seed, config, output file) of every confirmation run that is missing or stale."""
    from results.study_plots import arm_parts, arm_search_seed

    jobs = []
    for arm, experiment in experiments.items():
        row = arm_best_row(experiment)
        variant, backbone = arm_parts(arm)
        for seed in config.study.seeds:
            wanted = {arm: confirm_config(config, row, seed)}
            if variant == "icc" and arm_search_seed(arm) is None:     # the control of the compared winner
                wanted[f"{CONTROL}-{backbone}"] = control_config(wanted[arm])
            for name, run_config in wanted.items():
                out = confirmation_path(folder, name, seed)
                if _stale(out, run_config):
                    jobs.append((name, int(seed), run_config, str(out)))
    return jobs + front_jobs(config, folder, experiments)


def _stale(out: Path, run_config: dict[str, Any]) -> bool:
    return not trained_as(out, run_config)


def front_rows(experiment: Path) -> list[Any]:
    """The arm's trials on its validation front (FRONT_METRICS; results.pareto.front_ids), best
    overall first."""
    from results.load import load_experiment
    from results.pareto import FRONT_METRICS, front_ids

    trials = load_experiment(experiment)
    return [trials[trials["trial_id"] == tid].iloc[0] for tid in front_ids(trials, FRONT_METRICS)]


def front_jobs(config: Any, folder: Path, experiments: dict[str, Path]) -> list[tuple]:
    """(arm@trial, seed, config, output file) of every front trial's missing or stale run on
    `study.front_seeds`: each arm of the first search seed; its best trial is confirmed anyway."""
    from results.study_plots import arm_search_seed

    jobs = []
    for arm, experiment in experiments.items() if config.study.front_seeds else ():
        if arm_search_seed(arm) is not None:
            continue
        best = str(arm_best_row(experiment)["trial_id"])
        for row in front_rows(experiment):
            if str(row["trial_id"]) == best:
                continue
            for seed in config.study.front_seeds:
                run_config, out = confirm_config(config, row, seed), front_path(folder, arm, str(row["trial_id"]), seed)
                if _stale(out, run_config):
                    jobs.append((f"{arm}@{row['trial_id']}", int(seed), run_config, str(out)))
    return jobs


def front_path(folder: Path, arm: str, trial_id: str, seed: int) -> Path:
    return folder / FRONT_DIR / arm / trial_id / f"seed-{seed}.json"


def load_front_runs(folder: Path) -> list[dict[str, Any]]:
    """Every front trial's confirmation run (its "arm" is `<arm>@<trial_id>`)."""
    return read_runs(sorted((folder / FRONT_DIR).glob("*/*/seed-*.json")))


def run_confirmation(job: tuple[str, int, dict[str, Any], str], progress: bool = False) -> str:
    """One confirmation run in its own process (one torch thread); writes its JSON file.
    `progress`: a line per epoch on stderr (model.pipeline.train_resumable)."""
    worker_process(threads=1)
    from model.pipeline import train_resumable
    from tuning.config import config_from_dict

    arm, seed, config_dict, out = job
    checkpoint = checkpoint_path(Path(out))
    result = train_resumable(config_from_dict(config_dict), checkpoint,
                             label=f"  {arm} seed {seed}" if progress else "")
    write_json(Path(out), {
        "arm": arm, "seed": seed, "config": config_dict, "valid": result.valid, "test": result.test,
        "best_epoch": result.best_epoch, "epochs": result.epochs, "seconds": round(result.seconds, 2),
        "code": training_code(),
        "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "loss_shares": h["loss_shares"],
                     "valid_ndcg_10": h["valid"]["ndcg_10"],
                     "valid_tail_item_ndcg_10": h["valid"]["tail_item_ndcg_10"]} for h in result.history],
        **({"notes": result.notes} if result.notes else {}),
        **({"also": result.also} if result.also else {}),
    })
    checkpoint.unlink(missing_ok=True)
    return out


def prepare_data_once(jobs: list[tuple], progress: bool) -> None:
    """Prepare (or find in the cache) each distinct dataset of `jobs` here, before the workers
    start: on a cold cache every worker would otherwise load the text model and embed the whole
    catalogue itself, N identical encodes for N workers (many on a GPU machine)."""
    from datasets.prepare import prepare_dataset
    from tuning.config import config_from_dict

    seen: set[str] = set()
    for job in jobs:
        data = job[2]["data"]
        key = json.dumps(data, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            prepare_dataset(config_from_dict(job[2]).data, progress)


def continued_note(record: dict[str, Any]) -> str:
    """"; continued from the checkpoint of epoch N" for a progress line when the run was, else ""."""
    return "".join(f"; {note}" for note in record.get("notes", []) if note.startswith("continued from"))


def checkpoint_path(out: Path) -> Path:
    """Where the run that writes `out` keeps its per-epoch checkpoint until `out` is written
    (`seed-42.json` -> `seed-42.partial.pt`; ignored by git and by the run globs)."""
    return out.with_name(out.stem + ".partial.pt")


def confirmation_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / CONFIRM_DIR / arm / f"seed-{seed}.json"


def run_confirmations(config: Any, folder: Path, experiments: dict[str, Path], progress: bool) -> None:
    """Every (arm, seed) run not yet on disk (ICC controls included), `study.confirm_workers`
    at a time."""
    from results.orchestration.twins import reuse_earlier_runs

    jobs = reuse_earlier_runs(confirmation_jobs(config, folder, experiments), folder.parent,
                              lambda line: say(progress, f"confirmation: {line}"))
    if not jobs:
        return
    say(progress, f"confirmation: {len(jobs)} runs to go, {config.study.confirm_workers} at a time")
    prepare_data_once(jobs, progress)
    with run_pool(config.study.confirm_workers) as pool:
        futures = {pool.submit(run_confirmation, job, progress): job for job in jobs}
        lengths: list[float] = []
        for done, future in enumerate(as_completed(futures), start=1):
            arm, seed = futures[future][:2]
            record = json.loads(Path(future.result()).read_text())
            lengths.append(float(record["seconds"]))
            say(progress, f"confirmation {done}/{len(jobs)}: {arm} seed {seed}: test NDCG@10 "
                           f"{record['test']['ndcg_10']:.4f} (best epoch {record['best_epoch']} of "
                           f"{record['epochs']}, {record['seconds']:.0f} s{continued_note(record)}; "
                           f"{pool_time_left(lengths, len(jobs), config.study.confirm_workers)})")


@contextmanager
def run_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """`workers` spawned training processes. On Ctrl-C (a KeyboardInterrupt in the driver, also
    when only the driver got the signal) or a SIGTERM to the driver (a scheduler's stop) the
    queued runs are dropped and the running ones ended at once: each keeps its last epoch's
    checkpoint (`<run>.partial.pt`), so a resume continues it. Otherwise a pool's exit would first
    train every queued run to its end, and a killed driver would leave its workers training
    beside the next one."""
    import multiprocessing

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        with interrupts_raise():
            yield pool
    except KeyboardInterrupt:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def load_confirmations(folder: Path) -> list[dict[str, Any]]:
    return read_runs(sorted((folder / CONFIRM_DIR).glob("*/seed-*.json")))


