"""Where a study keeps its parts and how its folder is claimed: the folder and file names, the
arms' names, and `claim` / `claim_with_plan` (a new study, or a resume that may grow its plan).

Why its own module: the study, its dose stage, its status and the ICC answer table all read
these names; in study.py they made the dose stage and the status import the module that runs
them, an import cycle held together by imports inside functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from results.orchestration.confirm import StudyError
from results.orchestration.run_files import comparable, write_json
from settings import dotted_keys, dotted_value

STUDY_FILE = "study_config.json"
#: settings a resume may change: which arms and runs exist or how many at once, never how one
#: trains (a study may grow arm by arm: its most telling arms first, the rest on a later resume)
STUDY_PLAN = ("study.variants", "study.search_seeds", "study.front_seeds", "study.confirm_workers",
              "study.dose_backbones", "dose")
SEARCH_DIR = "search"
FINDINGS_DIR = "findings"
DONE_MARK = ".search-done"


# ---- arms -------------------------------------------------------------------------------------
DOSE_STAGE_PREFIX = "dose-"


def dose_stage(backbone: str) -> str:
    """The folder name of a study's dose stage for `backbone`: its runs under the study, its
    report under the findings (`study.dose_backbones`)."""
    return DOSE_STAGE_PREFIX + backbone


def arm_name(variant: str, backbone: str, search_seed: int | None = None) -> str:
    """icc-sasrec for an arm's first search, icc-sasrec-search7 for its search with seed 7."""
    from results.study_plots import SEARCH_SUFFIX

    return f"{variant}-{backbone}" + ("" if search_seed is None else f"{SEARCH_SUFFIX}{search_seed}")


def arms(config: Any) -> list[tuple[str, str, int | None]]:
    """(variant, backbone, extra search seed or None) of every search, variants in the order
    plain, llmesr, icc; an arm's first search (study.search_seeds[0], or tune.search_seed) has
    seed None."""
    extra = config.study.search_seeds[1:]
    return [(v, b, s) for b in config.study.backbones for v in config.study.variants for s in [None, *extra]]


# ---- folder and resume ------------------------------------------------------------------------
def local_study_folder(config: Any, name: str) -> Path:
    """The study's folder under tune.storage_path; the study keeps its stages on local disk."""
    from tuning.experiment_folder import is_uri

    root = config.tune.storage_path
    if is_uri(root):
        raise StudyError(f"tune.storage_path: got {root!r}; the study keeps its stages in a local "
                         f"folder (use `launch.py tune` for cloud storage)")
    return Path(root).expanduser().resolve() / name


def claim(config: Any, name: str, resume: bool, given: Any = None, kind: str = "study",
          flag: str = "--resume") -> tuple[Path, Any]:
    """Create the study folder (atomically: a second start with the same name loses) and return
    it with the config; with resume, the saved config, refused when a setting the user gave
    (`given`, as `launch.py` collects from --config and --set; None: every setting) differs
    from it, so `--resume --name N` alone continues the study as saved (like `tune`). `kind`
    and `flag` name what is claimed and how in the errors (a dose-response by --report-only)."""
    from tuning.config import config_from_dict, config_to_dict
    from tuning.experiment_folder import changed_setting, make_folder
    from settings import check_folder_name

    check_folder_name("--name", name)
    folder = local_study_folder(config, name)
    wanted = config_to_dict(config)
    wanted["tune"]["name"] = name
    saved_path = folder / STUDY_FILE
    if resume:
        if not saved_path.is_file():
            raise StudyError(f"{flag}: no {kind} {name!r} in {str(folder.parent)!r} ({STUDY_FILE} missing)")
        try:
            saved = comparable(json.loads(saved_path.read_text()))
        except (OSError, ValueError) as exc:      # cut, hand-edited, or a setting this code refuses
            raise StudyError(f"{flag}: the saved plan {str(saved_path)!r} does not load ({exc}); restore it "
                             f"(it is the {kind}'s config) or start a new --name") from None
        diff = changed_setting(saved, wanted, given)
        if diff:
            raise StudyError(f"{flag}: the config differs from the one {kind} {name!r} started with "
                             f"({diff}); resume without --config and --set to continue it as saved, "
                             f"or start a new --name")
        return folder, config_from_dict(saved)
    make_folder(folder.parent, "tune.storage_path", config.tune.storage_path)
    try:
        folder.mkdir()
    except FileExistsError:
        raise StudyError(f"{kind} {name!r} already exists in {str(folder.parent)!r}; use --resume to "
                         f"continue it or another --name") from None
    save_plan(config, folder, name)
    return folder, config_from_dict(wanted)          # as a resume will read it back


def claim_with_plan(config: Any, name: str, resume: bool, given: Any, plan: tuple[str, ...],
                    kind: str = "study", flag: str = "--resume") -> tuple[Path, Any, bool]:
    """`claim`, where the settings under `plan` (a section such as "dose", or a key such as
    "study.front_seeds") say which runs exist, not how one trains: on resume those the user gave
    replace the saved ones (nothing is lost: runs are known by their training settings), and
    every other given setting must match as before. Returns the folder, the config, and whether
    the plan changed (`save_plan` keeps it for the next bare `--resume`, under the driver lock)."""
    from tuning.config import config_to_dict

    every = given if given is not None else dotted_keys(config_to_dict(config))
    planned = [key for key in every if in_plan(key, plan)]
    folder, saved = claim(config, name, resume, [key for key in every if key not in planned], kind, flag)
    if not resume or not planned:
        return folder, saved, False
    mine, before = config_to_dict(config), config_to_dict(saved)
    keys: list[str] = []
    for key in planned:                                  # a whole section: each of its fields
        keys += [f"{key}.{field}" for field in mine[key]] if "." not in key else [key]
    grown = saved.replace({key: dotted_value(mine, key) for key in keys})
    after = config_to_dict(grown)
    return folder, grown, any(dotted_value(after, key) != dotted_value(before, key) for key in keys)


def save_plan(config: Any, folder: Path, name: str) -> None:
    """The plan a later bare `--resume` continues."""
    from tuning.config import config_to_dict

    kept = config_to_dict(config)
    kept["tune"]["name"] = name
    write_json(folder / STUDY_FILE, kept)


def in_plan(key: str, plan: tuple[str, ...]) -> bool:
    """Whether a dotted setting is one of `plan`'s entries (a key, or a section such as "dose")."""
    return any(key == p or key.startswith(p + ".") for p in plan)
