"""The study: does the item-cluster constraint help, on which backbone, at what cost to the tail?

One command runs three stages, each resumable (a crash or Ctrl-C loses at most the runs in
flight; `--resume` skips everything already on disk):

1. Search. One arm per (variant, backbone): plain, llmesr (gamma 0) and icc (gamma > 0, with the
   study's `icc_space` added). Every arm gets the same trial budget (`study.trials_per_arm`) and
   the same Optuna TPE + ASHA search over `tune.space` that `launch.py tune` runs: baselines are
   tuned as hard as the method (Rendle et al. 2019). Arm folders: <study>/search/<arm>/. Every
   arm's first search is searched and confirmed (stage 2) before the extra `study.search_seeds`
   are (`search_waves`).
2. Confirmation (results.orchestration.confirm). The best trial of each arm (one definition:
   results.tables.ranked) re-runs from scratch with every seed of `study.seeds` for the full
   epoch budget (train.epochs, no early stopping: a dip after epoch 1 must not end a run that
   would have recovered), testing the best-validation epoch's weights; the same seeds for every
   arm, so arms can be compared by paired tests. Each ICC arm's confirmed config also runs without
   ICC and nothing else changed (arm `control-<backbone>`): the tuned arms differ in lr and
   dropout too, the control isolates the constraint. One JSON file per run:
   <study>/confirm/<arm>/seed-<s>.json; a file made from another config (an older protocol) is
   stale and runs again.
   With `study.dose_backbones`, each of those backbones' confirmed LLM-ESR arm then gets ICC's
   dose-response (results.orchestration.dose: the `dose` section's shares x clusterings against
   no ICC, around the arm's tuned config): runs in <study>/dose-<backbone>/.
3. Findings. results.findings writes the report (Markdown and HTML first, then tables and plots),
   the dose-responses' reports beside it. `report_study` (`--report-only`) writes them from
   whatever is on disk, running nothing, so a study run across sessions can be read part way.

The study's folder also holds study_config.json: the config it was started with. `--resume --name N`
continues with that config (as `tune --resume` does); a setting given with it that differs from
the saved one is refused, naming the key (the saved one would silently win). Ctrl-C stops the
study as a whole: `launch.py study` prints the study's resume command and exits 130.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from model.config import ModelConfig
from model.icc import WEIGHTS as ICC_WEIGHTS, icc_on
from results.orchestration.confirm import (StudyError, load_confirmations, load_front_runs,
                                           run_confirmations, say)
from results.orchestration.dose import arm_dose_base, run_arm_dose, tabulate_doses
from results.orchestration.layout import (DONE_MARK, FINDINGS_DIR, SEARCH_DIR, STUDY_PLAN, arm_name, arms, claim,
                                          claim_with_plan, dose_stage, in_plan, save_plan)
from results.orchestration.progress import study_status
from settings import dotted_keys
from tuning.experiment_folder import CONFIG_FILE
from tuning.lock import driver_lock


# ---- arms -------------------------------------------------------------------------------------
def arm_config(config: Any, variant: str, backbone: str, search_root: Path, search_seed: int | None = None) -> Any:
    """The arm's tune config: the variant and backbone fixed (the variant's switches decided
    afresh), icc_space added to the space of icc arms, the searcher seeded by the study."""
    space = dict(config.tune.space)
    if variant == "icc":
        space.update(config.study.icc_space)
    for key in ("variant", "backbone"):
        space.pop(key, None)
    seed = (config.study.search_seeds or [config.tune.search_seed])[0] if search_seed is None else search_seed
    changes = {"model.variant": variant, "model.backbone": backbone, "tune.space": space,
               "tune.name": arm_name(variant, backbone, search_seed), "tune.search_seed": int(seed),
               "tune.num_samples": config.study.trials_per_arm, "tune.storage_path": str(search_root)}
    if variant == "icc" and not icc_on({w: getattr(config.model, w) for w in ICC_WEIGHTS}):
        changes["model.gamma"] = ModelConfig.gamma     # the default weight, unless icc_space searches one
    return config.replace(changes)


def findings_folder(findings_dir: str | Path | None) -> Path | None:
    """The --findings folder, made now (None: the default, <study>/findings), so a file or an
    unwritable place in the way is one line before the search, not after it."""
    from tuning.experiment_folder import make_folder

    return make_folder(Path(findings_dir), "--findings", str(findings_dir)) if findings_dir else None


# ---- stage 1: search --------------------------------------------------------------------------
def arm_plans(config: Any, folder: Path) -> dict[str, Any]:
    """arm -> its tune config, every arm's space checked (before Ray starts)."""
    from tuning.space_checks import validate_space

    plans = {arm_name(v, b, s): arm_config(config, v, b, folder / SEARCH_DIR, s) for v, b, s in arms(config)}
    for plan in plans.values():
        validate_space(plan.tune.space, plan)
    return plans


def run_search(plans: dict[str, Any], folder: Path, address: str | None, progress: bool) -> dict[str, Path]:
    """Run (or finish) the search of each arm in `plans`; return arm -> experiment folder."""
    from tuning.runner import connect, run_experiment

    search_root = folder / SEARCH_DIR
    check_search_seeds(plans, search_root)
    todo = {arm: plan for arm, plan in plans.items() if not (search_root / arm / DONE_MARK).is_file()}
    for arm in todo:                 # before Ray starts
        restart_a_cut_start(arm, search_root / arm, progress)
    if todo:
        import ray

        started = connect(address)
        try:
            for arm, plan in todo.items():
                exists = (search_root / arm / CONFIG_FILE).is_file()
                say(progress, f"search {arm}: {'resuming' if exists else 'starting'} "
                               f"({plan.tune.num_samples} trials)")
                summary = run_experiment(plan, resume=exists, progress=False, trial_lines=progress,
                                         given=trial_settings(plan))
                (search_root / arm / DONE_MARK).write_text(json.dumps(summary, default=str))
                best = summary.get("best") or {}
                say(progress, f"search {arm}: done, {summary['terminated']} finished, "
                               f"{summary['stopped_early']} stopped by ASHA, {summary['errored']} errored; "
                               f"best valid NDCG@10 {best.get('valid_ndcg_10')}")
        finally:
            if started:
                ray.shutdown()
    return {arm: search_root / arm for arm in plans}


def search_waves(plans: dict[str, Any], search_root: Path) -> list[dict[str, Any]]:
    """A backbone's searches in two waves, each confirmed before the next starts: every arm's
    first search (the winners the study compares, an ICC arm against its control), then the
    extra `study.search_seeds` (the search-seed spread). A study cut short then holds its
    comparison; the Beauty study ran a second plain search before any ICC search. Within a wave
    a search part way runs first (finishing it keeps what it trained, which a fresh machine
    would lose), then the plan's order."""
    from results.study_plots import arm_search_seed

    def part_way_first(wave: dict[str, Any]) -> dict[str, Any]:
        return {arm: wave[arm] for arm in sorted(wave, key=lambda a: not (search_root / a / CONFIG_FILE).is_file())}
    first = {arm: plan for arm, plan in plans.items() if arm_search_seed(arm) is None}
    extra = {arm: plan for arm, plan in plans.items() if arm_search_seed(arm) is not None}
    return [part_way_first(wave) for wave in (first, extra) if wave]


def search_and_confirm(config: Any, folder: Path, wave: dict[str, Any], address: str | None,
                       progress: bool) -> dict[str, Path]:
    """One wave: the confirmation of its searches already done first (work ready to run whose
    answer stands alone, e.g. a second searcher seed's confirmed score on a resumed study), then
    its other searches, then their confirmation. Returns every arm's search folder."""
    done = {arm: folder / SEARCH_DIR / arm for arm in wave if (folder / SEARCH_DIR / arm / DONE_MARK).is_file()}
    if done and len(done) < len(wave):
        run_confirmations(config, folder, done, progress)
    found = run_search(wave, folder, address, progress)
    run_confirmations(config, folder, found, progress)
    return found


def restart_a_cut_start(arm: str, part: Path, progress: bool) -> None:
    """A search folder without Ray's run state (experiment_state-*.json) cannot continue. Where
    no trial reported anything, the driver was stopped while the search started (a session's end
    kills it at any moment): nothing trained is lost, so the folder goes and the search starts
    again. Where trials reported, the folder was copied part way (only finished arms travel):
    one line saying so, the folder left for the user."""
    if not (part / CONFIG_FILE).is_file() or any(part.glob("experiment_state-*.json")):
        return
    if any(path.stat().st_size for path in part.glob("trial_*/result.json")):
        raise StudyError(f"search {arm}: {part} was copied part way without Ray's run state "
                         f"(experiment_state-*.json), so its search cannot continue; delete that "
                         f"folder to search the arm again (a finished arm needs no run state)")
    say(progress, f"search {arm}: its start was cut short before Ray saved any state and no trial had "
                  f"reported, so it starts again")
    shutil.rmtree(part)


def check_search_seeds(plans: dict[str, Any], search_root: Path) -> None:
    """An arm searched already keeps its searcher seed: a resume may add search seeds
    (`study.search_seeds`) after the first, not change the one an arm's search ran with (its
    folder would still hold the other seed's search under the new seed's name)."""
    for arm, plan in plans.items():
        saved = search_root / arm / CONFIG_FILE
        if not saved.is_file():
            continue
        seed = json.loads(saved.read_text()).get("tune", {}).get("search_seed")
        if seed is not None and int(seed) != plan.tune.search_seed:
            raise StudyError(f"study.search_seeds: search {arm} ran with searcher seed {seed}, the plan now gives "
                             f"it {plan.tune.search_seed}; a resume may add search seeds after the first "
                             f"({seed}), not change it")


def trial_settings(plan: Any) -> list[str]:
    """The settings a search arm's resume must find unchanged: all but the study's plan
    (STUDY_PLAN), which a resume may change while an arm is part way; Ray saved the arm's config
    with the plan of its start, and no trial reads it."""
    from tuning.config import config_to_dict

    return [key for key in dotted_keys(config_to_dict(plan)) if not in_plan(key, STUDY_PLAN)]


# ---- stage 3 and the whole study --------------------------------------------------------------
def references(config: Any, folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Training-free references on the study's data, split and protocol (cached in the folder,
    keyed by what they depend on: results.references)."""
    from results.references import cached_references

    return cached_references(config, folder / "references.json")


def run_dose_stage(config: Any, folder: Path, found: dict[str, Path], backbone: str, out: Path,
                   progress: bool) -> dict[str, Any]:
    """Stage 2b (`study.dose_backbones`): ICC's dose-response around the backbone's confirmed
    LLM-ESR arm; runs in <study>/dose-<backbone>/, its report in <findings>/dose-<backbone>/."""
    arm = arm_name("llmesr", backbone)
    say(progress, f"dose-response around {arm}")
    return run_arm_dose(config, folder / dose_stage(backbone), found[arm], out / dose_stage(backbone), progress)


def report_dose_stage(config: Any, folder: Path, experiment: Path, backbone: str, out: Path) -> dict[str, Any] | None:
    """`run_dose_stage` from the runs on disk, training and copying nothing; None before the
    stage has begun (no folder yet)."""
    runs = folder / dose_stage(backbone)
    if not runs.is_dir():
        return None
    written, confirmed = tabulate_doses(arm_dose_base(config, experiment), runs, out / dose_stage(backbone))
    return {**written, "confirmed": confirmed}


def report_study(config: Any, name: str, findings_dir: str | Path | None = None,
                 command: str | None = None, given: Any = None) -> dict[str, Any]:
    """The findings of the study named `name` from what is on disk, running nothing (`study
    --report-only`): the finished searches, the confirmation and front runs written so far and
    each dose stage's runs, with the cost table saying what is still to come. No driver lock: a
    report may be written while the study runs, as a dose-response's may."""
    from results.findings import write_findings

    out = findings_folder(findings_dir)
    folder, config = claim(config, name, resume=True, given=given, flag="--report-only")
    out = out or folder / FINDINGS_DIR
    searched = {arm: folder / SEARCH_DIR / arm for arm in arm_plans(config, folder)
                if (folder / SEARCH_DIR / arm / DONE_MARK).is_file()}
    if not searched:
        raise StudyError(f"--report-only: no search arm of study {name!r} has finished yet, so there is "
                         f"nothing to report; --status says where it stands")
    doses = {}
    for backbone in config.study.dose_backbones:
        llmesr = arm_name("llmesr", backbone)
        report = report_dose_stage(config, folder, searched[llmesr], backbone, out) if llmesr in searched else None
        if report:
            doses[backbone] = report
    written = write_findings(config, folder, searched, load_confirmations(folder), references(config, folder), out,
                             command=command, front_runs=load_front_runs(folder), doses=doses,
                             cost=study_status(config, folder))
    return {"study": str(folder), "arms": sorted(searched), **written}


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
    folder, config, plan_changed = claim_with_plan(config, name, resume, given, STUDY_PLAN)
    with driver_lock(folder, name):                  # one driver per study (its confirmations too)
        if plan_changed:
            save_plan(config, folder, name)
        plans = arm_plans(config, folder)
        refs = references(config, folder)
        out = out or folder / FINDINGS_DIR
        experiments: dict[str, Path] = {}
        doses: dict[str, dict[str, Any]] = {}
        for backbone in config.study.backbones:      # one backbone at a time: its answer comes early
            group = {arm: plan for arm, plan in plans.items() if plan.model.backbone == backbone}
            waves = search_waves(group, folder / SEARCH_DIR)
            for wave, arms_of_wave in enumerate(waves):
                found = search_and_confirm(config, folder, arms_of_wave, address, progress)
                experiments.update(found)
                if wave == 0 and backbone in config.study.dose_backbones:      # around the first LLM-ESR arm
                    doses[backbone] = run_dose_stage(config, folder, found, backbone, out, progress)
                written = write_findings(config, folder, experiments, load_confirmations(folder), refs, out,
                                         command=command, front_runs=load_front_runs(folder), doses=doses,
                                         cost=study_status(config, folder))
                step = "" if len(waves) == 1 else (" (its first searches)" if wave == 0 else " (its extra search seeds)")
                say(progress, f"findings after {backbone}{step}: {written['markdown']}")
    return {"study": str(folder), "arms": sorted(experiments), **written}
