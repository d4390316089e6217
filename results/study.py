"""The study: does the item-cluster constraint help, on which backbone, at what cost to the tail?

One command runs three stages, each resumable (a crash or Ctrl-C loses at most the runs in
flight; `--resume` skips everything already on disk):

1. Search. One arm per (variant, backbone): plain, llmesr (gamma 0) and icc (gamma > 0, with the
   study's `icc_space` added). Every arm gets the same trial budget (`study.trials_per_arm`) and
   the same Optuna TPE + ASHA search over `tune.space` that `launch.py tune` runs: baselines are
   tuned as hard as the method (Rendle et al. 2019). Arm folders: <study>/search/<arm>/.
2. Confirmation. The best trial of each arm (one definition: results.tables.ranked) re-runs from
   scratch with every seed of `study.seeds` for the full epoch budget (train.epochs, no early
   stopping: a dip after epoch 1 must not end a run that would have recovered), testing the
   best-validation epoch's weights; the same seeds for every arm, so arms can be compared by
   paired tests. Each ICC arm's confirmed config also runs with gamma = 0 and nothing else changed
   (arm `control-<backbone>`): the tuned arms differ in lr and dropout too, the control isolates
   the constraint. One JSON file per run: <study>/confirm/<arm>/seed-<s>.json; a file made from
   another config (an older protocol) is stale and runs again.
3. Findings. results.findings writes the report (Markdown and HTML first, then tables and plots).

The study's folder also holds study_config.json: the config it was started with. `--resume --name N`
continues with that config (as `tune --resume` does); a setting given with it that differs from
the saved one is refused, naming the key (the saved one would silently win). Ctrl-C stops the
study as a whole: `launch.py study` prints the study's resume command and exits 130.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from model.config import ModelConfig
from model.icc import WEIGHTS as ICC_WEIGHTS, icc_on, without_icc
from runtime import worker_process, write_atomic

STUDY_FILE = "study_config.json"
SEARCH_DIR = "search"
CONFIRM_DIR = "confirm"
FINDINGS_DIR = "findings"
DONE_MARK = ".search-done"


class StudyError(ValueError):
    """A study that cannot start or continue as asked (one line for the user)."""


# ---- arms -------------------------------------------------------------------------------------
def arm_name(variant: str, backbone: str) -> str:
    return f"{variant}-{backbone}"


def arms(config: Any) -> list[tuple[str, str]]:
    """(variant, backbone) of every arm, variants in the order plain, llmesr, icc."""
    return [(v, b) for b in config.study.backbones for v in config.study.variants]


def arm_config(config: Any, variant: str, backbone: str, search_root: Path) -> Any:
    """The arm's tune config: the variant and backbone fixed (the variant's switches decided
    afresh), icc_space added to the space of icc arms."""
    space = dict(config.tune.space)
    if variant == "icc":
        space.update(config.study.icc_space)
    for key in ("variant", "backbone"):
        space.pop(key, None)
    changes = {"model.variant": variant, "model.backbone": backbone, "tune.space": space,
               "tune.name": arm_name(variant, backbone), "tune.num_samples": config.study.trials_per_arm,
               "tune.storage_path": str(search_root)}
    if variant == "icc" and not icc_on({w: getattr(config.model, w) for w in ICC_WEIGHTS}):
        changes["model.gamma"] = ModelConfig.gamma     # the default weight, unless icc_space searches one
    return config.replace(changes)


# ---- folder and resume ------------------------------------------------------------------------
def study_folder(config: Any, name: str) -> Path:
    from tuning.experiment_folder import is_uri

    root = config.tune.storage_path
    if is_uri(root):
        raise StudyError(f"tune.storage_path: got {root!r}; the study keeps its stages in a local "
                         f"folder (use `launch.py tune` for cloud storage)")
    return Path(root).expanduser().resolve() / name


def comparable(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config as the current code reads it: settings added since it was saved appear
    with their defaults (which keep the old behaviour), so only real differences count."""
    from tuning.config import config_from_dict, config_to_dict

    return config_to_dict(config_from_dict(saved))


def claim(config: Any, name: str, resume: bool, given: Any = None) -> tuple[Path, Any]:
    """Create the study folder (atomically: a second start with the same name loses) and return
    it with the config; with resume, the saved config, refused when a setting the user gave
    (`given`, as `launch.py` collects from --config and --set; None: every setting) differs
    from it, so `--resume --name N` alone continues the study as saved (like `tune`)."""
    from tuning.config import config_from_dict, config_to_dict
    from tuning.experiment_folder import changed_setting, make_folder
    from settings import check_folder_name

    check_folder_name("--name", name)
    folder = study_folder(config, name)
    wanted = config_to_dict(config)
    wanted["tune"]["name"] = name
    saved_path = folder / STUDY_FILE
    if resume:
        if not saved_path.is_file():
            raise StudyError(f"--resume: no study {name!r} in {str(folder.parent)!r} ({STUDY_FILE} missing)")
        saved = comparable(json.loads(saved_path.read_text()))
        diff = changed_setting(saved, wanted, given)
        if diff:
            raise StudyError(f"--resume: the config differs from the one study {name!r} started with "
                             f"({diff}); resume without --config and --set to continue it as saved, "
                             f"or start a new --name")
        return folder, config_from_dict(saved)
    make_folder(folder.parent, "tune.storage_path", config.tune.storage_path)
    try:
        folder.mkdir()
    except FileExistsError:
        raise StudyError(f"study {name!r} already exists in {str(folder.parent)!r}; use --resume to "
                         f"continue it or another --name") from None
    _write_json(saved_path, wanted)
    return folder, config_from_dict(wanted)          # as a resume will read it back


def findings_folder(findings_dir: str | Path | None) -> Path | None:
    """The --findings folder, made now (None: the default, <study>/findings), so a file or an
    unwritable place in the way is one line before the search, not after it."""
    from tuning.experiment_folder import make_folder

    return make_folder(Path(findings_dir), "--findings", str(findings_dir)) if findings_dir else None


def _write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=1, default=str))


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[study {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- stage 1: search --------------------------------------------------------------------------
def arm_plans(config: Any, folder: Path) -> dict[str, Any]:
    """arm -> its tune config, every arm's space checked (before Ray starts)."""
    from tuning.space_checks import validate_space

    plans = {arm_name(v, b): arm_config(config, v, b, folder / SEARCH_DIR) for v, b in arms(config)}
    for plan in plans.values():
        validate_space(plan.tune.space, plan)
    return plans


def run_search(plans: dict[str, Any], folder: Path, address: str | None, progress: bool) -> dict[str, Path]:
    """Run (or finish) the search of each arm in `plans`; return arm -> experiment folder."""
    from tuning.runner import connect, run_experiment

    search_root = folder / SEARCH_DIR
    todo = {arm: plan for arm, plan in plans.items() if not (search_root / arm / DONE_MARK).is_file()}
    if todo:
        import ray

        started = connect(address)
        try:
            for arm, plan in todo.items():
                exists = (search_root / arm / "experiment_config.json").is_file()
                _say(progress, f"search {arm}: {'resuming' if exists else 'starting'} "
                               f"({plan.tune.num_samples} trials)")
                summary = run_experiment(plan, resume=exists, progress=False)
                (search_root / arm / DONE_MARK).write_text(json.dumps(summary, default=str))
                best = summary.get("best") or {}
                _say(progress, f"search {arm}: done, {summary['terminated']} finished, "
                               f"{summary['stopped_early']} stopped by ASHA, {summary['errored']} errored; "
                               f"best valid NDCG@10 {best.get('valid_ndcg_10')}")
        finally:
            if started:
                ray.shutdown()
    return {arm: search_root / arm for arm in plans}


# ---- stage 2: confirmation --------------------------------------------------------------------
def best_trial(experiment: Path) -> Any:
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
    (patience 0: every run trains train.epochs epochs)."""
    from results.load import trial_config_dict, trial_params
    from tuning.config import config_from_dict, config_to_dict

    params, _ = trial_params(Path(row["path"]).parent, str(row["trial_id"]))
    best = config_from_dict(trial_config_dict(params))
    return config_to_dict(best.replace({"train.seed": int(seed), "train.epochs": config.train.epochs,
                                        "train.patience": 0, "train.num_threads": 1}))


CONTROL = "control"


def control_config(icc_config: dict[str, Any]) -> dict[str, Any]:
    """An ICC confirmation config with the constraint switched off (model.icc.without_icc),
    every other setting, the seed included, unchanged."""
    from tuning.config import config_from_dict, config_to_dict

    return config_to_dict(without_icc(config_from_dict(icc_config)))


def confirmation_jobs(config: Any, folder: Path, experiments: dict[str, Path]) -> list[tuple]:
    """(arm, seed, config, output file) of every confirmation run that is missing or stale."""
    jobs = []
    for arm, experiment in experiments.items():
        row = best_trial(experiment)
        variant, backbone = arm.split("-", 1)
        for seed in config.study.seeds:
            wanted = {arm: confirm_config(config, row, seed)}
            if variant == "icc":
                wanted[f"{CONTROL}-{backbone}"] = control_config(wanted[arm])
            for name, run_config in wanted.items():
                out = confirmation_path(folder, name, seed)
                if not out.is_file() or comparable(json.loads(out.read_text())["config"]) != run_config:
                    jobs.append((name, int(seed), run_config, str(out)))
    return jobs


def run_confirmation(job: tuple[str, int, dict[str, Any], str]) -> str:
    """One confirmation run in its own process (one torch thread); writes its JSON file."""
    worker_process(threads=1)
    from model.pipeline import train_once
    from tuning.config import config_from_dict

    arm, seed, config_dict, out = job
    result = train_once(config_from_dict(config_dict), progress=False)
    _write_json(Path(out), {
        "arm": arm, "seed": seed, "config": config_dict, "valid": result.valid, "test": result.test,
        "best_epoch": result.best_epoch, "epochs": result.epochs, "seconds": round(result.seconds, 2),
        "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "loss_shares": h["loss_shares"],
                     "valid_ndcg_10": h["valid"]["ndcg_10"],
                     "valid_tail_item_ndcg_10": h["valid"]["tail_item_ndcg_10"]} for h in result.history],
    })
    return out


def confirmation_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / CONFIRM_DIR / arm / f"seed-{seed}.json"


def run_confirmations(config: Any, folder: Path, experiments: dict[str, Path], progress: bool) -> None:
    """Every (arm, seed) run not yet on disk (ICC controls included), `study.confirm_workers`
    at a time."""
    import multiprocessing

    jobs = confirmation_jobs(config, folder, experiments)
    if not jobs:
        return
    _say(progress, f"confirmation: {len(jobs)} runs to go, {config.study.confirm_workers} at a time")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(config.study.confirm_workers, mp_context=context) as pool:
        futures = {pool.submit(run_confirmation, job): job for job in jobs}
        for done, future in enumerate(as_completed(futures), start=1):
            arm, seed = futures[future][:2]
            record = json.loads(Path(future.result()).read_text())
            _say(progress, f"confirmation {done}/{len(jobs)}: {arm} seed {seed}: test NDCG@10 "
                           f"{record['test']['ndcg_10']:.4f} (best epoch {record['best_epoch']} of "
                           f"{record['epochs']}, {record['seconds']:.0f} s)")


def load_confirmations(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / CONFIRM_DIR).glob("*/seed-*.json"))]


# ---- stage 3 and the whole study --------------------------------------------------------------
def references(config: Any, folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Training-free references on the study's data, split and protocol (cached in the folder,
    keyed by what they depend on: results.references)."""
    from results.references import cached_references

    return cached_references(config, folder / "references.json")


def run_study(config: Any, name: str, resume: bool = False, address: str | None = None,
              findings_dir: str | Path | None = None, progress: bool = True,
              command: str | None = None, given: Any = None) -> dict[str, Any]:
    """Run (or continue) the study of `config` named `name`; return where its findings lie.
    `command`, if given, is the command line that regenerates the findings (written into them);
    `given`, the settings a resume must match (see `claim`)."""
    from results.findings import write_findings

    if not name:
        raise StudyError("the study needs a name (--name N)")
    out = findings_folder(findings_dir)          # before any work: a bad --findings costs nothing
    folder, config = claim(config, name, resume, given)
    plans = arm_plans(config, folder)
    refs = references(config, folder)
    out = out or folder / FINDINGS_DIR
    experiments: dict[str, Path] = {}
    for backbone in config.study.backbones:          # one backbone at a time: its answer comes early
        group = {arm: plan for arm, plan in plans.items() if plan.model.backbone == backbone}
        found = run_search(group, folder, address, progress)
        run_confirmations(config, folder, found, progress)
        experiments.update(found)
        written = write_findings(config, folder, experiments, load_confirmations(folder), refs, out,
                                 command=command)
        _say(progress, f"findings after {backbone}: {written['markdown']}")
    return {"study": str(folder), "arms": sorted(experiments), **written}
