"""What the command line prints for people: two-column tables, row tables, an experiment's
summary with its Pareto set, one progress line per epoch; with --json the last line of stdout is
one JSON object. launch.py is the only caller; nothing here reads argv."""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items())
    return str(value)


def print_table(title: str, rows: dict[str, Any]) -> None:
    """A two-column table for people."""
    width = max((len(k) for k in rows), default=0)
    print(f"\n{title}\n" + "-" * max(len(title), 20))
    for key, value in rows.items():
        print(f"{key:<{width}}  {fmt_value(value)}")


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """A table of rows (one dict each, the same keys) for people, columns aligned."""
    columns = list(rows[0]) if rows else []
    cells = [columns] + [[fmt_value(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    print(f"\n{title}\n" + "-" * max(len(title), 20))
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def print_answers(written: dict[str, Any]) -> None:
    """`dose --summary`: one row per dose-response, then each finished family's answer in words."""
    columns = ("name", "dataset", "backbone", "runs", "planned", "hours")
    print_rows(f"dose-responses: {written['markdown']}",
               [{c: d[c] for c in columns} for d in written["dose_responses"]])
    from results.icc_answers import same_runs_line

    for entry in written["dose_responses"]:
        if entry["answer"]:
            said = [*entry["answer"], *(same_runs_line(*same) for same in entry.get("same_runs_as", []))]
            print(f"\n{entry['name']} ({entry['dataset']}, {entry['backbone']}):\n" + "\n".join(said))


def emit(title: str, payload: dict[str, Any], as_json: bool) -> None:
    print_table(title, payload)
    if as_json:
        print(json.dumps(payload, default=str))


def emit_summary(title: str, summary: dict[str, Any], as_json: bool) -> None:
    """The experiment summary, its Pareto set (several objectives) as a table of its own."""
    print_table(title, {k: v for k, v in summary.items() if k != "pareto"})
    front = summary.get("pareto")
    if front is not None:
        objectives = summary["objectives"]
        print(f"\nPareto set over {', '.join(objectives)} (each at the trial's best epoch): {len(front)} trials")
        print("  ".join(["trial_id", "state", *objectives]))
        for row in front:
            print("  ".join([row["trial_id"], row["state"], *(fmt_value(row[name]) for name in objectives)]))
    if as_json:
        print(json.dumps(summary, default=str))


def print_epoch(report) -> None:
    """One progress line per epoch on stderr (validation, full ranking), so a long run shows
    where it stands and how the tail moves."""
    v = report.valid
    print(f"epoch {report.epoch:3d}  loss {report.train_loss:.4f}  valid ndcg_10 {v['ndcg_10']:.4f}"
          f"  new_target_ndcg_10 {v['new_target_ndcg_10']:.4f}"
          f"  tail_item_ndcg_10 {v['tail_item_ndcg_10']:.4f}  best {report.best_valid_ndcg_10:.4f}"
          f" (epoch {report.best_epoch})  {report.seconds:.1f} s", file=sys.stderr, flush=True)


def print_study(name: str, outcome: dict[str, Any], as_json: bool) -> None:
    """`study` (run or --report-only): the findings' headline sentences, then where they lie."""
    if outcome.get("sentences"):
        print("\n" + "\n".join(outcome["sentences"]))
    payload = {k: outcome[k] for k in ("study", "arms", "html", "markdown")}
    payload["findings"] = outcome["markdown"]
    emit(f"study {name}", payload, as_json)


def print_study_status(name: str, folder: Any, rows: list[dict[str, Any]], driver: str | None, as_json: bool) -> None:
    """`study --status`: one row per stage part, whether a driver runs it, what hours_left means."""
    print_rows(f"study {name}: {folder}" + (f" (running: driver {driver})" if driver else ""),
               [{**row, "hours_left": "?" if row["hours_left"] is None else row["hours_left"]} for row in rows])
    print("hours_left: training hours still to go at the pace of the runs done (the part's own, or a part "
          "that trains alike; before a confirmation, front or dose run has run, the arm's search trials that "
          "trained to their own end; an ICC part with none yet, its backbone's LLM-ESR part: the same model plus "
          "one loss term); ? = nothing comparable has run yet; runs in parallel take less wall time; to_copy: runs "
          "still to do that an earlier run file under the same storage holds, copied instead of trained")
    wall = rows[-1].get("wall_hours_left") if rows else None
    if wall:
        print(f"wall time left: about {wall:.1f} h on this machine's CPUs (each part's hours_left over the runs it "
              f"trains at once: tune.max_concurrent_trials or CPUs / tune.cpus_per_trial for a search, "
              f"study.confirm_workers, dose.workers)")
    if as_json:
        print(json.dumps({"study": str(folder), "stages": rows}, default=str))
