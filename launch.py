"""icc-tune's one entry point: prepare data, build clusters, train, tune, report, reproduce.

    python launch.py prepare   --dataset ml-100k [--config F] [--set k=v ...] [--json]
    python launch.py clusters  --dataset NAME --method kmeans --n-clusters 64 [--json]
    python launch.py train     --config F [--set k=v ...] [--json]
    python launch.py tune      --config F [--set k=v ...] [--address auto|HOST:PORT|ray://...]
                               [--name N] [--resume] [--json]
    python launch.py report    EXP [--json]
    python launch.py reproduce EXP [--trial best|pareto|ID] [--seeds N] [--set data.LOCATION=PATH] [--json]
    python launch.py study     --config F --name N [--resume | --status | --report-only] [--findings DIR] [--json]
    python launch.py dose      --config F --name N [--resume | --report-only] [--json]
    python launch.py dose      --summary [--set tune.storage_path=DIR] [--json]
    python launch.py demo

Every subcommand prints a table for people; with --json its last line is one JSON object.
This file is the only place that reads the command line; everything below takes a typed Config.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from results.console import (emit, emit_summary, print_answers, print_epoch, print_study, print_study_status,
                             print_table)
from runtime import quiet_environment

REPO = Path(__file__).resolve().parent
#: exit status of a tune run or study stopped by Ctrl-C (128 + SIGINT, as a shell reports it); resumable
INTERRUPTED = 130

# ---------------------------------------------------------------- commands

def _config(args: argparse.Namespace, extra: list[str] = ()):  # type: ignore[assignment]
    from tuning.config import load_config

    overrides = list(extra) + list(getattr(args, "set", None) or [])
    return load_config(getattr(args, "config", None), overrides)


def cmd_prepare(args: argparse.Namespace) -> None:
    extra = [f"data.name={args.dataset}"] if args.dataset else []
    config = _config(args, extra)
    from datasets.prepare import describe, prepare_dataset

    data = prepare_dataset(config.data, progress=not args.json)
    emit(f"dataset {config.data.name}", describe(data), args.json)


def cmd_clusters(args: argparse.Namespace) -> None:
    extra = [f"data.name={args.dataset}"] if args.dataset else []
    if args.method:
        extra.append(f"clusters.method={args.method}")
    if args.n_clusters is not None:
        extra.append(f"clusters.n_clusters={args.n_clusters}")
    config = _config(args, extra)
    from model.pipeline import run_clusters
    from datasets.prepare import prepare_dataset

    data = prepare_dataset(config.data, progress=not args.json)
    artifact = run_clusters(config, data)
    emit(f"clusters of {config.data.name}", artifact.summary(), args.json)
    _warn_clusters(artifact)


def cmd_train(args: argparse.Namespace) -> None:
    config = _config(args)
    from model.pipeline import train_once

    result = train_once(config, on_epoch=None if args.json else print_epoch, progress=not args.json)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    payload = {
        "valid": result.valid,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 2),
        "notes": result.notes,
    }
    keys = ("ndcg_10", "new_target_ndcg_10", "hit_10", "tail_item_ndcg_10", "tail_user_ndcg_10",
            "sampled_ndcg_10")
    table = {f"{split} {k}": payload[split].get(k, float("nan")) for split in ("valid", "test") for k in keys}
    table.update(best_epoch=result.best_epoch, epochs=result.epochs, seconds=payload["seconds"])
    print_table(f"{config.model.backbone} on {config.data.name}", table)
    if args.json:
        print(json.dumps(payload, default=str))


def cmd_tune(args: argparse.Namespace) -> None:
    extra = [f"tune.name={args.name}"] if args.name else []
    config = _config(args, extra)
    from tuning.runner import AllTrialsErrored, run_experiment
    from tuning.summary import ExperimentInterrupted
    from tuning.config import given_keys

    given = given_keys(args.config, args.set or [])       # --resume: these must match the saved config
    try:
        summary = run_experiment(config, address=args.address, resume=args.resume, progress=not args.json,
                                 given=given)
    except ExperimentInterrupted as stop:
        emit_summary(f"experiment {stop.summary.get('experiment')} (interrupted)", stop.summary, args.json)
        print(f"error: {stop}", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    except AllTrialsErrored as failed:                  # the summary, then one line and exit 2
        emit_summary(f"experiment {failed.summary.get('experiment')} (every trial errored)", failed.summary, args.json)
        raise
    emit_summary(f"experiment {summary.get('experiment')}", summary, args.json)


def _warn_clusters(artifact: Any) -> None:
    """A degenerate clustering's warning on stderr (clusters and demo say it alike)."""
    warning = artifact.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _warn(notes: list[str]) -> None:
    """Print the warnings among `notes` on stderr (report and demo say them alike)."""
    for note in notes:
        if note.startswith("warning:"):
            print(note, file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> None:
    from results.report import write_report

    report = write_report(args.experiment)
    if report.get("summary"):
        print(report["summary"])
    best = report.get("best") or {}
    print_table("report", {"html": report["html"], "tables": len(report["tables"]),
                           "best trial": best.get("trial_id"),
                           "best valid ndcg_10": best.get("valid", {}).get("valid_ndcg_10"),
                           "its test ndcg_10": best.get("test", {}).get("test_ndcg_10"),
                           **({"pareto trials": ", ".join(report["pareto"]),
                               "hypervolume (origin)": report["hypervolume"]} if "pareto" in report else {})})
    _warn(report.get("notes", []))
    if args.json:
        payload = {k: report[k] for k in ("html", "tables", "best", "notes", "objectives", "pareto", "hypervolume")
                   if k in report}
        print(json.dumps(payload, default=str))


def cmd_reproduce(args: argparse.Namespace) -> None:
    from results.orchestration.reproduce import reproduce

    if args.experiment.endswith(".json"):      # one confirmation run of a study
        from results.orchestration.reproduce import reproduce_run

        outcome = reproduce_run(args.experiment, tuple(args.set or ()))
        emit(f"reproduce {args.experiment}", {k: outcome[k] for k in ("run", "match", "max_abs_diff", "device")}
             if not args.json else outcome, False)
        if args.json:
            print(json.dumps(outcome, default=str))
        return
    outcome = reproduce(args.experiment, trial=args.trial, seeds=args.seeds, progress=not args.json,
                        locations=tuple(args.set or ()))
    if "trials" in outcome and not args.json:          # --trial pareto: one line per trial
        print_table("reproduce pareto: each trial",
                    {o["trial_id"]: f"match={o['match']} abs_diff={o['abs_diff']:.3g}" for o in outcome["trials"]})
    print_table(f"reproduce {args.trial}", {k: v for k, v in outcome.items() if k != "trials"})
    if args.json:
        print(json.dumps(outcome, default=str))


def _study_command(args: argparse.Namespace) -> str:
    """The command that regenerates this study's findings (written into them)."""
    words = ["python", "launch.py", "study"] + (["--config", args.config] if args.config else [])
    words += ["--name", args.name] + [part for value in args.set or [] for part in ("--set", value)]
    words += ["--report-only" if args.report_only else "--resume"]
    words += ["--findings", str(args.findings)] if args.findings else []
    return " ".join(shlex.quote(word) for word in words)


def cmd_study(args: argparse.Namespace) -> None:
    """Search every (variant, backbone) arm, confirm each arm's best over seeds, write findings."""
    config = _config(args)
    from results.orchestration.study import report_study, run_study
    from tuning.summary import ExperimentInterrupted
    from tuning.config import given_keys

    given = given_keys(args.config, args.set or [])       # --resume: these must match the saved config
    if args.status and args.report_only:
        raise ValueError("--status and --report-only: give one (--status prints the table, "
                         "--report-only writes the findings; neither runs anything)")
    if args.status:
        _study_status(config, args, given)
        return
    if args.report_only:
        print_study(args.name, report_study(config, args.name, findings_dir=args.findings,
                                           command=_study_command(args), given=given), args.json)
        return
    try:
        outcome = run_study(config, args.name, resume=args.resume, address=args.address,
                            findings_dir=args.findings, progress=True, command=_study_command(args), given=given)
    except (ExperimentInterrupted, KeyboardInterrupt):
        # the study resumes as a whole (its arms' searches, confirmations and findings), not one arm
        print(f"error: study {args.name!r} was interrupted; continue it with: {_study_command(args)}",
              file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    print_study(args.name, outcome, args.json)


def _study_status(config: Any, args: argparse.Namespace, given: Any) -> None:
    """`study --status`: what is done and what is left, read from the folder; runs nothing."""
    from results.orchestration.progress import study_status
    from results.orchestration.layout import claim
    from tuning.lock import running_driver

    folder, saved = claim(config, args.name, resume=True, given=given, flag="--status")
    print_study_status(args.name, folder, study_status(saved, folder), running_driver(folder), args.json)


def cmd_dose(args: argparse.Namespace) -> None:
    """ICC at each loss share x clustering and without it, over paired seeds: no search, no Ray."""
    config = _config(args)
    if args.summary:
        return _dose_summary(config, args)
    if not args.name:
        raise ValueError("--name: a dose-response needs a name (or --summary for every one under tune.storage_path)")
    from results.orchestration.dose import run_dose
    from tuning.config import given_keys

    outcome = run_dose(config, args.name, resume=args.resume, progress=not args.json,
                       given=given_keys(args.config, args.set or []), report_only=args.report_only)
    print_table(f"dose-response {args.name}", {k: v for k, v in outcome.items() if k != "answer"})
    if outcome["answer"]:
        print("\n" + "\n".join(outcome["answer"]))
    if args.json:
        print(json.dumps(outcome, default=str))


def _dose_summary(config: Any, args: argparse.Namespace) -> None:
    """`dose --summary`: every dose-response under tune.storage_path, one table (icc-answers.md)."""
    from results.orchestration.answers import write_answers

    clashing = [flag for flag, given in (("--name", args.name), ("--resume", args.resume),
                                         ("--report-only", args.report_only)) if given]
    if clashing:
        raise ValueError(f"--summary: reads every dose-response under tune.storage_path; drop {', '.join(clashing)}")
    storage = Path(config.tune.storage_path)
    written = write_answers(storage, f"python launch.py dose --summary --set tune.storage_path={storage}")
    print_answers(written)
    if args.json:
        print(json.dumps(written, default=str))


def cmd_demo(args: argparse.Namespace) -> None:
    """The README's `make demo`: prepare the bundled data, cluster, tune on ml-100k, report."""
    from model.pipeline import run_clusters
    from datasets.prepare import describe, prepare_dataset
    from results.report import write_report
    from tuning.runner import run_experiment
    from tuning.config import load_config

    demo = load_config(REPO / "configs" / "demo.yaml", args.set or [])
    for name in ("ml-100k", "amazon-scientific"):
        config = load_config(REPO / "configs" / "demo.yaml", [*(args.set or []), f"data.name={name}"])
        data = prepare_dataset(config.data, progress=True)
        print_table(f"dataset {name}", describe(data))
        artifact = run_clusters(config, data)
        print_table(f"clusters of {name}", artifact.summary())
        _warn_clusters(artifact)
    summary = run_experiment(demo, progress=True)
    print_table("tuning", summary)
    report = write_report(summary["experiment"])
    if report.get("summary"):
        print("\n" + report["summary"])
    _warn(report.get("notes", []))
    print(f"\ndashboard: {report.get('html')}")


# ---------------------------------------------------------------- parser

def _common(parser: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        parser.add_argument("--config", help="YAML config file (see configs/)")
        parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                            help="override one config value, e.g. model.gamma=0.1 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="prepare (or load from cache) a dataset")
    p.add_argument("--dataset", help="ml-100k, amazon-scientific, amazon-beauty, llmesr or csv")
    _common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("clusters", help="cluster a dataset's item embeddings")
    p.add_argument("--dataset")
    p.add_argument("--method", choices=("kmeans", "hdbscan"))
    p.add_argument("--n-clusters", type=int)
    _common(p)
    p.set_defaults(func=cmd_clusters)

    p = sub.add_parser("train", help="train one configuration")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="run (or resume) a Ray Tune experiment")
    p.add_argument("--address", help="existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT")
    p.add_argument("--name", help="experiment name (folder under tune.storage_path)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted experiment as saved; settings given by --config/--set must match it")
    _common(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("report", help="tables, plots and dashboard of an experiment")
    p.add_argument("experiment", help="experiment folder")
    _common(p, config=False)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="re-run a trial from scratch and compare")
    p.add_argument("experiment", help="experiment folder, or a study's confirm/<arm>/seed-<s>.json")
    p.add_argument("--trial", default="best",
                   help="best, pareto (every trial on the validation Pareto front) or a trial id")
    p.add_argument("--seeds", type=int, default=0, help="extra seeds (+ the gamma = 0 control)")
    p.add_argument("--set", action="append", metavar="data.LOCATION=PATH",
                   help="where the data lies on this machine, e.g. data.data_root=../shared/data (repeatable; "
                        "a trial saves the paths of the machine that ran it); nothing else may change")
    _common(p, config=False)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("study", help="search every variant x backbone arm, confirm over seeds, report findings")
    p.add_argument("--name", required=True, help="study name (folder under tune.storage_path)")
    p.add_argument("--resume", action="store_true", help="continue the study (same config)")
    p.add_argument("--address", help="existing Ray cluster for the search: auto, HOST:PORT or ray://...")
    p.add_argument("--findings", help="folder for the findings (default: <study>/findings)")
    p.add_argument("--status", action="store_true",
                   help="print what is done and what is left, per stage, and run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="write the findings from the runs on disk and run nothing (a study part way or running)")
    _common(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("dose", help="ICC's dose-response: loss shares x clusterings against no ICC, paired seeds")
    p.add_argument("--name", help="name (folder under tune.storage_path)")
    p.add_argument("--resume", action="store_true", help="continue (runs already on disk are kept)")
    p.add_argument("--summary", action="store_true",
                   help="every dose-response under tune.storage_path in one table (icc-answers.md), running nothing")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from the runs on disk and run nothing (one still going or stopped)")
    _common(p)
    p.set_defaults(func=cmd_dose)

    p = sub.add_parser("demo", help="prepare the bundled data, tune on ml-100k and report")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_environment()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as error:
        # ConfigError and DataError are ValueErrors; an unreachable --address a ConnectionError,
        # a missing, unreadable or full disk another OSError: a clear one-line answer, no traceback.
        line = _one_line(error)
        print(f"error: {line}", file=sys.stderr)
        if getattr(args, "json", False):       # the promised last JSON line, for scripts
            print(json.dumps({"error": line, "key": error_key(line)}))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; a tune run or a dose-response continues with --resume --name NAME", file=sys.stderr)
        return INTERRUPTED
    return 0


#: the setting (model.gamma, tune.space.lr, study.seeds[0]) or option (--trial) an error line starts with
ERROR_KEY = re.compile(r"(--[a-z][a-z0-9-]*|[a-z_]+(?:\.[A-Za-z0-9_]+)+(?:\[\d+\])*):")


def error_key(line: str) -> str | None:
    """The setting or option an error line names first (its leading `key:`), else None."""
    match = ERROR_KEY.match(line)
    return match.group(1) if match else None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        text += "; free some space, then continue a tune run with --resume --name NAME"
    return text


if __name__ == "__main__":
    sys.exit(main())
