"""Time to quality of the training windows: train.windows last vs sliding, seeds side by side.

Each run trains one configuration (default: the issue-23 protocol, plain SASRec on ml-100k,
hidden 64, 2 blocks, 1 head, max_len 50, dropout 0.2, full softmax, Adam 1e-3, batch 256,
patience 5) with early stopping on validation NDCG@10, and tests the best epoch's weights.
Seconds are the process's CPU seconds (time.process_time, one torch thread), validation
included, so a loaded machine changes them little. Prints per run: targets and optimizer
steps per epoch, best epoch, test NDCG@10 / Hit@10, CPU seconds, and the CPU seconds until
validation NDCG@10 first reaches each threshold; then the validation curve (NDCG@10 against
cumulative CPU seconds) of every run. `--out FILE` also writes the runs as JSON.

    python bench/time_to_quality.py --windows last,sliding --seeds 42,43 --out runs.json
    python bench/time_to_quality.py --windows sliding --seeds 44 --set train.window_stride=25
    python bench/time_to_quality.py --smoke         # a minute: ml-100k, tiny model, 2 epochs (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

WINDOWS = ("last", "sliding")
#: by default the "CPU s to ..." columns are these shares of the best validation NDCG@10 among the
#: runs in the table (any dataset); `--thresholds 0.08,0.09,0.10` gives absolute ones (ml-100k's)
RELATIVE_THRESHOLDS = (0.90, 0.95, 0.99)
PROTOCOL = ["model.variant=plain", "model.backbone=sasrec", "model.hidden_size=64", "model.num_blocks=2",
            "model.num_heads=1", "model.max_len=50", "model.dropout=0.2", "model.loss=ce",
            "train.lr=0.001", "train.batch_size=256", "train.patience=5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=C.DATASETS)
    p.add_argument("--windows", default="last,sliding", help="comma-separated: " + ", ".join(WINDOWS))
    p.add_argument("--seeds", default="42,43", help="comma-separated ints")
    p.add_argument("--epochs", type=int, default=60, help="epoch cap")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU seconds are per process)")
    p.add_argument("--device", default="cpu", choices=("cpu",), help="CPU seconds are what is measured")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    p.add_argument("--out", default="", help="also write every run (curve included) to this JSON file")
    p.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                   help="train nothing: print the tables of runs saved with --out (runs made in parallel)")
    p.add_argument("--budgets", default="10,25,50,75,100,150",
                   help="comma-separated CPU seconds: the table of the best validation NDCG@10 reached within each")
    p.add_argument("--thresholds", default="",
                   help="comma-separated validation NDCG@10 values for the 'CPU s to' columns (default: 90, 95 "
                        "and 99 %% of the best any run in the table reached)")
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 epochs, seed 42 (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs = "42", 2
        args.set = ["model.hidden_size=16", "model.max_len=20", *args.set]
    args.seed_list = C.parse_seeds(args.seeds)
    if args.epochs < 1:
        p.error(f"--epochs: got {args.epochs}; allowed: >= 1")
    args.window_list = C.parse_list(args.windows, WINDOWS, "--windows")
    try:
        args.budget_list = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        p.error(f"--budgets: got {args.budgets!r}; allowed: comma-separated numbers")
    try:
        args.threshold_list = tuple(float(t) for t in args.thresholds.split(",") if t.strip())
    except ValueError:
        p.error(f"--thresholds: got {args.thresholds!r}; allowed: comma-separated numbers")
    if any(not 0 < t <= 1 for t in args.threshold_list):
        p.error(f"--thresholds: got {args.thresholds!r}; allowed: NDCG@10 values in (0, 1]")
    return args


def run_one(args: argparse.Namespace, data, windows: str, seed: int) -> dict:
    """One training run; the curve holds (epoch, cumulative CPU s, validation NDCG@10)."""
    from model.pipeline import build_trainer

    overrides, _ = C.data_overrides(args.dataset, args.data_root, args.cache_dir)
    config = C.make_config([*overrides, *PROTOCOL, f"train.epochs={args.epochs}", f"train.seed={seed}",
                            f"train.windows={windows}", f"train.device={args.device}", f"train.num_threads={args.threads}", *args.set])
    start = time.process_time()
    trainer = build_trainer(config, data)
    block = trainer.batches.block[trainer.batches.rows]
    targets = int(((block[:, 1:] > 0) & (block[:, :-1] > 0)).sum())
    curve = []

    def record(report) -> None:
        curve.append([report.epoch, round(time.process_time() - start, 2), round(report.valid["ndcg_10"], 5)])
        print(f"  {windows} seed {seed} epoch {report.epoch}: {curve[-1][1]:.0f} CPU s, "
              f"valid NDCG@10 {curve[-1][2]:.4f}", file=sys.stderr, flush=True)

    result = trainer.fit(record)
    print(f"  {windows} seed {seed}: best epoch {result.best_epoch}/{result.epochs}, "
          f"test NDCG@10 {result.test['ndcg_10']:.4f}", file=sys.stderr, flush=True)
    return {"windows": windows, "seed": seed, "stride": config.train.window_stride,
            "batch_size": config.train.batch_size,
            "samples": int(trainer.batches.rows.shape[0]), "targets": targets,
            "steps": trainer.batches.n_batches(config.train.batch_size),
            "best_epoch": result.best_epoch, "epochs": result.epochs,
            "valid_ndcg_10": result.valid["ndcg_10"], "test_ndcg_10": result.test["ndcg_10"],
            "test_hit_10": result.test["hit_10"], "side": "ours", "cpu_s": round(time.process_time() - start, 2),
            "curve": curve}


def seconds_to(curve: list, threshold: float) -> str:
    hit = next((s for _, s, v in curve if v >= threshold), None)
    return "-" if hit is None else f"{hit:.0f}"


SUMMARY_COLUMNS = ["side", "windows", "batch", "seed", "samples", "targets/epoch", "steps/epoch", "best/epochs",
                   "valid NDCG@10", "test NDCG@10", "test Hit@10", "CPU s to best", "CPU s", "CPU s/epoch"]


def thresholds(runs: list[dict], given: tuple[float, ...] = ()) -> list[tuple[str, float]]:
    """(column, validation NDCG@10) of each "CPU s to" column: `given` as they are, else
    RELATIVE_THRESHOLDS of the best validation NDCG@10 any run of the table reached."""
    if given:
        return [(f"to {t:.2f}" if round(t, 2) == t else f"to {t:g}", t) for t in given]
    best = max((v for r in runs for _, _, v in r["curve"]), default=0.0)
    return [(f"to {100 * share:g} % ({share * best:.4f})", share * best) for share in RELATIVE_THRESHOLDS]


def summary_table(runs: list[dict], given: tuple[float, ...] = ()) -> tuple[list[str], list[list]]:
    """The per-run table's columns and rows, with its "CPU s to" columns."""
    marks = thresholds(runs, given)
    rows = [row + [seconds_to(r["curve"], t) for _, t in marks] for row, r in zip(summary_rows(runs), runs)]
    return SUMMARY_COLUMNS + [name for name, _ in marks], rows


def side(run: dict) -> str:
    """Which implementation made a run: "ours" (this script) or a peer's (bench/recbole_peer.py)."""
    return run.get("side", "ours")


def windows_label(run: dict) -> str:
    """The windows a run trained on; a sliding run with its own stride says it ("sliding/10")."""
    stride = run.get("stride") or 0
    return f"{run['windows']}/{stride}" if run["windows"] == "sliding" and stride else run["windows"]


def summary_rows(runs: list[dict]) -> list[list]:
    return [[side(r), windows_label(r), r["batch_size"], r["seed"], r["samples"], r["targets"], r["steps"],
             f"{r['best_epoch']}/{r['epochs']}" + ("" if r.get("finished", True) else " unfinished"), round(r["valid_ndcg_10"], 4), round(r["test_ndcg_10"], 4),
             round(r["test_hit_10"], 4), round(r["curve"][r["best_epoch"] - 1][1]), round(r["cpu_s"]),
             round(r["cpu_s"] / r["epochs"], 2)] for r in runs]


def curve_rows(runs: list[dict]) -> list[list]:
    return [[side(r), windows_label(r), r["batch_size"], r["seed"], epoch, seconds, ndcg]
            for r in runs for epoch, seconds, ndcg in r["curve"]]


def grouped(runs: list[dict]) -> dict[tuple, list[dict]]:
    """Runs by (side, windows, batch), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((side(r), windows_label(r), r["batch_size"]), []).append(r)
    return groups


def budget_rows(runs: list[dict], budgets: list[float]) -> list[list]:
    """Per (side, windows, batch): the best validation NDCG@10 reached within each CPU budget,
    averaged over the seeds (0 before a run's first epoch ends)."""
    return [[*key, len(rs), *(round(sum(max((v for _, s, v in r["curve"] if s <= b), default=0.0)
                                           for r in rs) / len(rs), 4) for b in budgets)]
            for key, rs in grouped(runs).items()]


def mean_rows(runs: list[dict]) -> list[list]:
    """Per (side, windows, batch): means over its seeds, with the per-seed test NDCG@10."""
    groups = grouped(runs)

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4)

    return [[*key, len(rs), mean([r["valid_ndcg_10"] for r in rs]), mean([r["test_ndcg_10"] for r in rs]),
             " / ".join(f"{r['test_ndcg_10']:.4f}" for r in rs), mean([r["test_hit_10"] for r in rs]),
             round(sum(r["curve"][r["best_epoch"] - 1][1] for r in rs) / len(rs)),
             round(sum(r["cpu_s"] / r["epochs"] for r in rs) / len(rs), 2)]
            for key, rs in groups.items()]


def write_runs(path: str, runs: list[dict]) -> None:
    with open(path, "w") as handle:
        json.dump({"command": C.command_line(), "machine": C.machine(), "runs": runs}, handle, indent=1)


def merged(paths: list[str]) -> tuple[list[dict], list[str]]:
    """The runs of several --out files and a note naming each file's command and machine."""
    runs, notes = [], []
    for path in paths:
        with open(path) as handle:
            saved = json.load(handle)
        batch = re.search(r"train\.batch_size=(\d+)", saved["command"])      # files saved before the key
        runs += [{"batch_size": int(batch.group(1)) if batch else 256, **r} for r in saved["runs"]]
        notes.append(f"{path}: `{saved['command']}` on {saved['machine']}")
    return runs, notes


def print_tables(runs: list[dict], device: str, notes: list[str], load: str,
                 budgets: tuple[float, ...] = (10, 25, 50, 75, 100, 150), marks: tuple[float, ...] = ()) -> None:
    print(C.header("Time to quality: training windows", device, notes, load))
    print(C.markdown_table(*summary_table(runs, marks)))
    print(C.markdown_table(["side", "windows", "batch", "seeds", "valid NDCG@10", "test NDCG@10",
                            "test NDCG@10 per seed", "test Hit@10", "CPU s to best", "CPU s/epoch"],
                           mean_rows(runs)))
    print(C.markdown_table(["side", "windows", "batch", "seeds", *(f"{b:g} CPU s" for b in budgets)],
                           budget_rows(runs, list(budgets))))
    print(C.markdown_table(["side", "windows", "batch", "seed", "epoch", "CPU s", "valid NDCG@10"], curve_rows(runs)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        runs, notes = merged(args.merge)
        print_tables(runs, "cpu", notes, C.load_average(), tuple(args.budget_list), args.threshold_list)
        return 0
    load, device = C.start(args)
    if device is None:
        return 2
    overrides, _ = C.data_overrides(args.dataset, args.data_root, args.cache_dir)
    data = C.prepare(C.make_config([*overrides, *args.set]))
    runs = []
    for seed in args.seed_list:
        for windows in args.window_list:
            runs.append(run_one(args, data, windows, seed))
            if args.out:                                     # after every run: a stopped bench keeps its runs
                write_runs(args.out, runs)
    notes = [f"{args.dataset}; " + ", ".join(PROTOCOL + args.set) + f"; epoch cap {args.epochs}",
             "CPU s: process CPU seconds (training + validation every epoch + test), one torch thread",
             "to x: CPU s until validation NDCG@10 first reaches x (- = never)"]
    print_tables(runs, device, notes, load, tuple(args.budget_list), args.threshold_list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
