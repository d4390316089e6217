"""Search efficiency on amazon-scientific: the seed's grid against Optuna (TPE) + ASHA.

Grid (the seed's): gamma in {0.01, 0.05, 0.1, 0.5, 1.0} x {sasrec, bert4rec, gru4rec}, each
trained in-process with `Trainer` for up to `--epochs` epochs with early stopping (`--patience`
on validation NDCG@10), exactly like a tuning trial. Its cost is ALL its trial-epochs (a grid
only knows its best once every cell is done); its target is 99 % of its best validation NDCG@10
(any epoch of any cell).

Search: `tuning.runner.run_experiment` with the same base config (same per-trial settings), space
backbone in the three backbones and gamma log-uniform in [0.01, 1.0], `--num-samples` trials, ASHA
on the per-epoch validation NDCG@10, one run per search seed. From the trials' result.json the
reported epochs are put in time order (Ray's `timestamp`, then the trial's own time); counted:
trial-epochs = reported (trial, epoch) results up to and including the first whose validation
NDCG@10 reaches the target (epochs still running in parallel trials are not counted), and wall
time = that result's timestamp minus the start of the run_experiment call (Ray start and the
data load included). Ratio = search trial-epochs / grid trial-epochs (goal <= 25 %).

    .venv/bin/python bench/search_efficiency.py --reduced    # ~25 min on 2 CPU cores (see REDUCED)
    .venv/bin/python bench/search_efficiency.py              # issue 7's setting (200 epochs, patience 20)
    .venv/bin/python bench/search_efficiency.py --smoke      # wiring check: 2 grid cells, 1 seed of 2 trials, 1 epoch
Each grid cell's history is cached in <cache-dir>/bench/grid-<settings hash>/ as it finishes\n(an interrupted run continues there; --fresh-grid recomputes them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

GAMMAS = (0.01, 0.05, 0.1, 0.5, 1.0)
TARGET_SHARE = 0.99
# The documented reduced setting: a small model without self-distillation (alpha 0: the 10
# teacher sequences per user are ~half the CPU cost) and short training, so the whole benchmark
# (15 grid cells + 3 searches) fits in about 25 minutes on the 2-core development machine.
REDUCED = dict(epochs=3, patience=1, max_len=10, hidden=16, adapter_hidden=32, blocks=1, batch_size=256,
               alpha=0.0, num_samples=8, grace_period=1, reduction_factor=2.0, concurrent=2)
SMOKE = dict(REDUCED, epochs=1, patience=1, num_samples=2, seeds="0", backbones="sasrec", gammas="0.1,1.0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=200, help="max epochs per trial (ASHA's max_t)")
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--adapter-hidden", type=int, default=768)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--alpha", type=float, default=0.1, help="self-distillation weight (0 = off)")
    p.add_argument("--num-samples", type=int, default=15, help="search trials per seed (the grid has 15)")
    p.add_argument("--seeds", default="0,1,2", help="search (TPE) seeds")
    p.add_argument("--grace-period", type=int, default=5)
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--concurrent", type=int, default=2, help="search trials at once (1 CPU each)")
    p.add_argument("--backbones", default=",".join(C.BACKBONES))
    p.add_argument("--gammas", default=",".join(str(g) for g in GAMMAS))
    p.add_argument("--threads", type=int, default=1, help="torch threads of the in-process grid (search trials get 1)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--storage", default="", help="experiment folder root (default: a temp folder, removed)")
    p.add_argument("--fresh-grid", action="store_true", help="recompute the grid even if cached")
    p.add_argument("--reduced", action="store_true", help="the documented ~25-minute CPU setting: " + str(REDUCED))
    p.add_argument("--smoke", action="store_true", help="wiring check: 2 grid cells, 1 seed of 2 trials, 1 epoch")
    args = p.parse_args(argv)
    preset = SMOKE if args.smoke else REDUCED if args.reduced else {}
    for key, value in preset.items():
        setattr(args, key, value)
    if min(args.epochs, args.max_len - 1, args.hidden, args.adapter_hidden, args.blocks, args.batch_size,
           args.num_samples, args.grace_period, args.concurrent) < 1 or min(args.patience, args.alpha) < 0:
        p.error("--epochs, --hidden, --adapter-hidden, --blocks, --batch-size, --num-samples, --grace-period, "
                "--concurrent must be >= 1, --max-len >= 2, --patience and --alpha >= 0")
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
        args.gamma_list = [float(g) for g in args.gammas.split(",") if g.strip()]
    except ValueError:
        p.error("--seeds: comma-separated ints; --gammas: comma-separated floats")
    if not args.seed_list or not args.gamma_list or min(args.gamma_list) <= 0:
        p.error("--seeds and --gammas must be non-empty; gammas > 0")
    args.backbone_list = C.parse_list(args.backbones, C.BACKBONES, "--backbones")
    return args


def base_overrides(args: argparse.Namespace) -> list[str]:
    """The per-trial settings shared by the grid and the search."""
    overrides, _ = C.data_overrides("amazon-scientific", args.data_root, args.cache_dir)
    return [*overrides, f"model.max_len={args.max_len}", f"model.hidden_size={args.hidden}",
            f"model.adapter_hidden={args.adapter_hidden}", f"model.num_blocks={args.blocks}",
            f"model.alpha={args.alpha}",
            f"train.batch_size={args.batch_size}", f"train.epochs={args.epochs}",
            f"train.patience={args.patience}", "train.device=auto"]


# ---- grid ----------------------------------------------------------------------------------
def run_cell(data, backbone: str, gamma: float, args: argparse.Namespace) -> dict:
    from model.pipeline import build_trainer

    config = C.make_config([*base_overrides(args), f"model.backbone={backbone}", f"model.gamma={gamma}",
                            f"train.num_threads={args.threads}"])
    trainer = build_trainer(config, data)
    history = []
    while not trainer.should_stop():
        report = trainer.train_epoch()
        history.append({"epoch": report.epoch, "ndcg_10": float(report.valid["ndcg_10"]),
                        "seconds": float(report.seconds)})
    print(f"  grid {backbone} gamma={gamma}: {len(history)} epochs, best "
          f"{max(h['ndcg_10'] for h in history):.4f}", file=sys.stderr, flush=True)
    return {"backbone": backbone, "gamma": gamma, "history": history}


def run_grid(args: argparse.Namespace) -> list[dict]:
    """Every grid cell's history; each cell is cached as soon as it finishes, so an interrupted
    run continues where it stopped (keyed by the shared settings, backbone and gamma)."""
    key = hashlib.sha256(json.dumps(base_overrides(args)).encode()).hexdigest()[:12]
    folder = Path(args.cache_dir) / "bench" / f"grid-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    data, cells = None, []
    for backbone in args.backbone_list:
        for gamma in args.gamma_list:
            path = folder / f"{backbone}-gamma{gamma:g}.json"
            if path.is_file() and not args.fresh_grid:
                cells.append(json.loads(path.read_text()))
                print(f"  grid {backbone} gamma={gamma}: cached in {path}", file=sys.stderr)
                continue
            data = data or C.prepare(C.make_config(base_overrides(args)))
            cells.append(run_cell(data, backbone, gamma, args))
            path.write_text(json.dumps(cells[-1], indent=1))
    return cells


def grid_figures(cells: list[dict]) -> dict:
    best = max((h["ndcg_10"], c["backbone"], c["gamma"]) for c in cells for h in c["history"])
    target = TARGET_SHARE * best[0]
    epochs = sum(len(c["history"]) for c in cells)
    seconds = sum(h["seconds"] for c in cells for h in c["history"])
    count, reached = 0, None            # in the grid's own (sequential) order, for information
    for c in cells:
        for h in c["history"]:
            count += 1
            if reached is None and h["ndcg_10"] >= target:
                reached = count
    return {"best": best[0], "best_cell": f"{best[1]}, gamma {best[2]}", "target": target,
            "epochs": epochs, "seconds": seconds, "own_order_epochs": reached}


# ---- search --------------------------------------------------------------------------------
def search_events(experiment: Path) -> list[dict]:
    """Every reported epoch of every trial (deduplicated), in time order."""
    events = {}
    for path in experiment.glob("*/result.json"):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if "epoch" in r and "valid_ndcg_10" in r:
                events.setdefault((path.parent.name, int(r["epoch"])), {
                    "trial": path.parent.name, "epoch": int(r["epoch"]), "ndcg_10": float(r["valid_ndcg_10"]),
                    "timestamp": float(r.get("timestamp", 0)), "trial_time": float(r.get("time_total_s", 0))})
    return sorted(events.values(), key=lambda e: (e["timestamp"], e["trial_time"]))


def run_search(seed: int, args: argparse.Namespace, storage: str, target: float) -> list:
    from tuning.config import config_from_dict, config_to_dict
    from tuning.runner import run_experiment

    base = C.make_config([*base_overrides(args), f"tune.storage_path={storage}",
                          f"tune.name=search-seed{seed}-{int(time.time())}", f"tune.num_samples={args.num_samples}",
                          f"tune.max_concurrent_trials={args.concurrent}", "tune.cpus_per_trial=1",
                          "tune.trials_per_gpu=0", f"tune.grace_period={args.grace_period}",
                          f"tune.reduction_factor={args.reduction_factor}", f"tune.search_seed={seed}",
                          f"tune.n_startup_trials={min(4, args.num_samples)}", "tune.max_failures=0"])
    data = config_to_dict(base)
    data["tune"]["space"] = {"backbone": {"type": "categorical", "values": list(args.backbone_list)},
                             "gamma": {"type": "float", "low": min(args.gamma_list),
                                       "high": max(args.gamma_list), "log": True}}
    started = time.time()
    summary = run_experiment(config_from_dict(data), progress=False)
    wall_total = time.time() - started
    events = search_events(Path(summary["experiment"]))
    best_so_far, hit = -1.0, None
    for i, e in enumerate(events, start=1):
        best_so_far = max(best_so_far, e["ndcg_10"])
        if hit is None and best_so_far >= target:
            hit = (i, e["timestamp"] - started)
    print(f"  search seed {seed}: {len(events)} trial-epochs, best {best_so_far:.4f}, hit {hit}",
          file=sys.stderr, flush=True)
    return [seed, summary["trials"], summary["stopped_early"], len(events), round(wall_total, 1),
            round(best_so_far, 4), hit[0] if hit else "not reached", round(hit[1], 1) if hit else "-"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = C.load_average()
    C.quiet_environment()
    C.set_torch_threads(args.threads)
    cells = run_grid(args)
    grid = grid_figures(cells)
    storage = args.storage or tempfile.mkdtemp(prefix="icc-search-")
    try:
        rows = [run_search(seed, args, storage, grid["target"]) for seed in args.seed_list]
    finally:
        if not args.storage:
            shutil.rmtree(storage, ignore_errors=True)
    clusters = C.make_config(base_overrides(args)).clusters
    hits = [r[6] for r in rows if isinstance(r[6], int)]
    for r in rows:
        r.append(f"{100 * r[6] / grid['epochs']:.1f} %" if isinstance(r[6], int) else "-")
    notes = [f"amazon-scientific; per trial: max {args.epochs} epochs, patience {args.patience}, max_len "
             f"{args.max_len}, hidden {args.hidden}, adapter {args.adapter_hidden}, {args.blocks} block(s), "
             f"batch {args.batch_size}, alpha {args.alpha}, ICC {clusters.method} {clusters.n_clusters} clusters; gammas {args.gamma_list} x {args.backbone_list}",
             f"grid: {len(cells)} cells, {grid['epochs']} trial-epochs, {grid['seconds']:.0f} s "
             f"(in-process, sequential, {args.threads} threads); best valid NDCG@10 {grid['best']:.4f} "
             f"({grid['best_cell']}); target = 99 % = {grid['target']:.4f}; in its own order the grid "
             f"first reached the target after {grid['own_order_epochs']} trial-epochs",
             f"search: Optuna TPE ({min(4, args.num_samples)} random start-up trials) + ASHA (grace "
             f"{args.grace_period}, rf {args.reduction_factor:g}), {args.num_samples} trials per seed, "
             f"{args.concurrent} at once, 1 CPU each; gamma log-uniform [{min(args.gamma_list)}, "
             f"{max(args.gamma_list)}]",
             "trial-epochs to target: reported epochs in time order up to the first reaching the target; "
             "wall to target: from the run_experiment call (Ray start + data load included)"]
    if hits:
        mean = sum(hits) / len(hits)
        notes.append(f"mean ratio over the {len(hits)} seed(s) that reached the target: "
                     f"{100 * mean / grid['epochs']:.1f} % of the grid's trial-epochs (goal <= 25 %)")
    print(C.header("Search efficiency: grid vs Optuna + ASHA", "cpu", notes, load))
    print(C.markdown_table(["search seed", "trials", "ASHA-stopped", "trial-epochs (all)", "wall s (all)",
                            "best valid NDCG@10", "trial-epochs to target", "wall s to target",
                            "ratio to grid"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
