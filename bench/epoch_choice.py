"""What a tail-aware epoch gives: the same training runs tested at the epoch of the highest
validation tail-item NDCG@10 (train.select_metric) against the epoch of the highest overall
NDCG@10, paired by seed (results.epoch_choice), beside the training-free references.

Each --pair is CHOSEN=BASELINE, two folders of run files (seed-N.json, as a dose-response or a
study's confirmation writes them) of one configuration differing only in train.select_metric,
patience 0; each --within is one folder of runs trained with train.also_select, which hold both
choices themselves. It reads run files and trains nothing.

    python bench/epoch_choice.py \
        --pair docs/studies/tail-epoch-scientific/dose/runs/control=docs/studies/amazon-scientific-2/confirm/control-sasrec \
        --references docs/studies/amazon-scientific-2/references.json --out docs/bench/epoch_choice.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common as C

from results.epoch_choice import METRICS, also_runs, compare_epoch_choice
from results.orchestration.run_files import read_runs

SMOKE_RUNS = C.REPO / "docs" / "studies" / "amazon-scientific-2" / "confirm" / "control-sasrec"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", action="append", default=[], metavar="CHOSEN=BASELINE",
                   help="two folders of run files: the runs with the other select_metric, then the baseline's")
    p.add_argument("--references", default="", help="a study's references.json: the training-free scorers on test")
    p.add_argument("--out", default="", help="also write the table here (Markdown)")
    p.add_argument("--within", action="append", default=[], metavar="DIR",
                   help="a folder of runs trained with train.also_select: each run's --metric epoch against its own")
    p.add_argument("--metric", default="tail_item_ndcg_10", help="--within: the also_select metric")
    p.add_argument("--smoke", action="store_true", help="committed runs against themselves (no change; CI)")
    args = p.parse_args(argv)
    if args.smoke and not args.pair:
        args.pair = [f"{SMOKE_RUNS}={SMOKE_RUNS}"]
    if not args.pair and not args.within:
        p.error("--pair: give at least one CHOSEN=BASELINE, or --within DIR (or --smoke)")
    for pair in args.pair:
        if pair.count("=") != 1 or not all(Path(side).is_dir() for side in pair.split("=")):
            p.error(f"--pair: got {pair!r}; allowed: CHOSEN=BASELINE, two existing folders of run files")
    for folder in args.within:
        if not Path(folder).is_dir():
            p.error(f"--within: got {folder!r}; allowed: an existing folder of run files")
    return args


def pair_rows(pair: str) -> list[list[str]]:
    """One row per metric of the pair: both epochs, the chosen value and its paired change."""
    chosen_dir, baseline_dir = (Path(side) for side in pair.split("="))
    chosen, baseline = (_runs(folder) for folder in (chosen_dir, baseline_dir))
    return comparison_rows(f"{chosen_dir.name} vs {baseline_dir.name}", compare_epoch_choice(chosen, baseline))


def within_rows(folder: str, metric: str) -> list[list[str]]:
    """The rows of one folder's runs at their also_select `metric` epoch against their own."""
    runs = _runs(Path(folder))
    return comparison_rows(f"{Path(folder).name} at its {metric} epoch", compare_epoch_choice(also_runs(runs, metric), runs))


def _runs(folder: Path) -> list[dict]:
    return read_runs(sorted(folder.glob("seed-*.json")))


def comparison_rows(name: str, found: dict) -> list[list[str]]:
    """One row per metric: both epochs, the chosen epoch's mean and its paired change."""
    label = f"{name} ({len(found['seeds'])} seeds)"
    epochs = f"{found['baseline_best_epoch']:.1f} -> {found['best_epoch']:.1f}" if found["seeds"] else "-"
    return [[label, epochs, metric, f"{m['control_mean']:.4f}", f"{m['chosen_mean']:.4f}", m["change_text"],
             "" if m["p_value"] is None else f"{m['p_value']:.3f}"]
            for metric, m in found["metrics"].items()]


def reference_rows(path: str) -> list[list[str]]:
    if not path:
        return []
    test = json.loads(Path(path).read_text())["references"]["test"]
    return [[f"reference: {name}", "-", metric, "", f"{scores[metric]:.4f}", "", ""]
            for name, scores in sorted(test.items()) for metric in METRICS if metric in scores]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = ([row for pair in args.pair for row in pair_rows(pair)]
            + [row for folder in args.within for row in within_rows(folder, args.metric)] + reference_rows(args.references))
    table = C.header("Test metrics at a tail-aware epoch against the NDCG@10 epoch, same training runs") + "\n" + \
        C.markdown_table(["runs", "best epoch (NDCG@10 -> chosen)", "test metric", "at NDCG@10 epoch",
                          "at chosen epoch", "change [95 % CI]", "paired p"], rows)
    C.emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
