"""What tune.prune_metric: pareto changes where ASHA cuts most: the first rung of finished
two-objective searches replayed under Ray's one-metric rule (checked against the trials the
search stopped there) and under the Pareto rule, same trials, same order (results.rung_replay).
It reads trial folders and trains nothing; what the kept trials would have become is not known.

    python bench/pareto_rungs.py docs/studies/amazon-scientific-2/search/* \
        docs/studies/amazon-beauty/search/llmesr-sasrec --out docs/bench/pareto_rungs.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common as C

from results.rung_replay import first_rung_replay, replay_row

SMOKE = [C.REPO / "docs" / "studies" / "amazon-beauty" / "search" / "llmesr-sasrec"]
COLUMNS = {
    "search": "search", "trials": "trials at rung", "replay_matches": "replayed = actual",
    "asha_keeps": "kept: ASHA on NDCG@10", "pareto_rule_on_prune_metric_keeps": "kept: its count rule on NDCG@10",
    "pareto_keeps": "kept: Pareto", "kept_by_pareto_only": "Pareto only", "kept_by_asha_only": "ASHA only",
    "tail_of_pareto_only": "valid tail NDCG@10, Pareto only (median)",
    "tail_of_asha_kept": "valid tail NDCG@10, ASHA kept (median)",
    "front_trials_stopped_there": "front trials ASHA stopped there", "of_those_pareto_keeps": "of those, Pareto keeps",
    "extra_trial_epochs_to_next_rung": "trial-epochs to the next rung, Pareto - ASHA",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="*", help="experiment folders of two-objective searches (trial_*/)")
    p.add_argument("--out", default="", help="also write the table here (Markdown)")
    p.add_argument("--smoke", action="store_true", help="the committed Beauty search alone (CI)")
    args = p.parse_args(argv)
    if args.smoke and not args.experiments:
        args.experiments = [str(path) for path in SMOKE]
    if not args.experiments:
        p.error("give at least one experiment folder (or --smoke)")
    for folder in args.experiments:
        if not (Path(folder) / "experiment_config.json").is_file():
            p.error(f"experiments: got {folder!r}; allowed: a finished search's folder holding experiment_config.json")
    return args


def row(experiment: str) -> list:
    found = replay_row(first_rung_replay(experiment))
    found["search"] = f"{Path(experiment).parent.parent.name}/{found['search']} (epoch {found['rung']})"
    return ["-" if found[key] is None else found[key] for key in COLUMNS]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [row(folder) for folder in args.experiments]
    notes = ["ASHA on NDCG@10: Ray's rule (a trial stops below the (1 - 1/rf) quantile of the values recorded "
             "at the rung before it); Pareto: tuning.pareto_asha (fewer than ceil(n/rf) of the n trials there in "
             "fronts ahead of its own); its count rule on NDCG@10: the same count on the one metric",
             "arrival order: each trial's report of the rung's epoch, by Ray's timestamp (whole seconds; "
             "a tie is ordered by trial id)"]
    table = C.header("The first ASHA rung of two-objective searches, replayed under both rules", notes=notes) + \
        "\n" + C.markdown_table(list(COLUMNS.values()), rows)
    C.emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
