"""Search efficiency on a tabular benchmark: every model of a discrete space trained once, then
many searches replayed over the recorded learning curves through the production tuning path.

Why: tuning with Optuna + ASHA instead of a grid is meant to save cost. A live comparison is too
expensive to repeat over many seeds; a table (HPOBench, YAHPO, Syne Tune's blackbox repository)
makes each search cost seconds. Steps:

    nice -n 19 .venv/bin/python bench/tabular.py --measure      # 1 epoch per backbone: the cost
    nice -n 19 .venv/bin/python bench/tabular.py --plan         # the --record command and its duration
    nice -n 19 .venv/bin/python bench/tabular.py --record       # the table (hours; resumable)
    nice -n 19 .venv/bin/python bench/tabular.py                # replays, tables and the anytime plot
    nice -n 19 .venv/bin/python bench/tabular.py --tuner-grid   # then tune the tuner (before / after)
    nice -n 19 .venv/bin/python bench/tabular.py --smoke        # all of it on a tiny ml-100k table (CI)

On a lent GPU machine without Ray: bench/tabular_device.sh OUT SECONDS --device auto --workers 12
(records under a timeout, packs the table into OUT/table.tar.gz; unpack it into bench/out/tabular/).
Replays are kept under <table>/replays/ and reused, so an interrupted replay run loses nothing.

Table: bench/tabular_table.py; replays: bench/tabular_replay.py (tuning.runner.run_experiment with
tuning.replay.replay_trial); figures: bench/tabular_stats.py; output: bench/tabular_report.py,
written beside the table (report.md, anytime.png) and printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import tabular_front as F  # noqa: E402
import tabular_report as R  # noqa: E402
import tabular_table as T  # noqa: E402
from tabular_replay import (METHODS, MULTI_OBJECTIVE_METHODS, Event, Replay, available_methods,  # noqa: E402
                            run_replay, start_ray)
from tabular_stats import grid_figures, quartiles, replay_figures  # noqa: E402
from runtime import write_atomic  # noqa: E402

DEFAULT_OUT = str(C.REPO / "bench" / "out" / "tabular")
WORKERS = (2, 8)                     # simulated concurrent trials
#: the table: amazon-scientific, a small LLM-ESR (full softmax, teachers once per epoch)
FULL = {
    "dataset": "amazon-scientific", "epochs": 12, "seeds": 20,
    "overrides": ["model.hidden_size=32", "model.max_len=20", "model.loss=ce", "model.teacher=epoch",
                  "model.dropout=0.2", "train.batch_size=256", "train.seed=42"],
    # ICC's loss is ~0.13 per unit of gamma against ~8 for full softmax: gamma 1, 10, 100 give it
    # about 1.5 %, 14 % and 57 % of the loss (measured at hidden 32, epoch 1). 63 models x 12 epochs
    # at ~11 CPU-s an epoch with its test evaluation (--measure): about 1.2 h on 2 free cores
    "space": {"backbone": ["sasrec", "bert4rec", "gru4rec"], "gamma": [0.0, 1.0, 10.0, 100.0],
              "n_clusters": [16, 128], "lr": [0.0003, 0.001, 0.003]},
}
#: a small real table: ml-100k, the same model family and space shape as FULL (30 models x 12
#: epochs, minutes on 2 cores), for a measure that needs many replays where FULL is not recorded
ML100K = {
    "dataset": "ml-100k", "epochs": 12, "seeds": 20,
    "overrides": ["model.hidden_size=32", "model.max_len=50", "model.loss=ce", "model.teacher=epoch",
                  "model.dropout=0.2", "train.batch_size=256", "train.seed=42"],
    "space": {"backbone": ["sasrec", "gru4rec"], "gamma": [0.0, 1.0, 10.0], "n_clusters": [16, 64],
              "lr": [0.0003, 0.001, 0.003]},
}
PRESETS = {"full": FULL, "ml-100k": ML100K}
SMOKE = {
    "dataset": "ml-100k", "epochs": 3, "seeds": 1, "num_samples": 6,
    "overrides": ["model.hidden_size=16", "model.max_len=20", "model.num_blocks=1", "model.alpha=0",
                  "model.adapter_hidden=32", "model.loss=ce", "train.batch_size=256", "train.seed=42"],
    "space": {"backbone": ["sasrec", "gru4rec"], "gamma": [0.0, 1.0], "n_clusters": [8, 16], "lr": [0.001]},
}
#: tuner settings tried one at a time against the project's defaults (TuneConfig)
TUNER_GRID = {"grace_period": [1, 3], "reduction_factor": [2.0, 4.0], "n_startup_trials": [8, 16],
              "multivariate": [True]}
HELD_OUT_SEED = 1000                 # before/after of the tuner grid are compared on fresh seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--measure", action="store_true", help="record 1 epoch of one model per backbone (cost)")
    what.add_argument("--plan", action="store_true", help="print the --record command and its estimated duration")
    what.add_argument("--record", action="store_true", help="record the missing models of the table")
    what.add_argument("--tuner-grid", action="store_true", help="tune TPE + ASHA's settings on the table")
    p.add_argument("--smoke", action="store_true", help="a tiny ml-100k table, recorded and replayed (CI)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full",
                   help="the table: full (amazon-scientific, 63 models) or ml-100k (30 models, minutes)")
    p.add_argument("--seeds", type=int, default=0, help="search seeds per method (default 20; smoke 1)")
    p.add_argument("--methods", default=",".join(available_methods()),
                   help="replayed methods (the grid is always shown; bohb needs the bohb extra)")
    p.add_argument("--num-samples", type=int, default=0, help="trials per search (default: the table's models)")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once in a replay (Ray CPUs)")
    p.add_argument("--epochs", type=int, default=0, help="epoch cap of the replays (default: the table's)")
    p.add_argument("--patience", type=int, default=0, help="train.patience of the replays (0: to the cap)")
    p.add_argument("--set", action="append", default=[], metavar="tune.KEY=VALUE",
                   help="tune settings of the replays, e.g. tune.grace_period=3")
    p.add_argument("--workers", type=int, default=2, help="recording processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per recording process")
    p.add_argument("--device", default="cpu",
                   help="train.device of the recording (auto: CUDA when present; the table's key ignores it)")
    p.add_argument("--limit", type=int, default=0,
                   help="--record: at most this many of the missing models (0: all), e.g. to time-box a run")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    args = p.parse_args(argv)
    args.preset_flag = " --smoke" if args.smoke else ("" if args.preset == "full" else f" --preset {args.preset}")
    args.preset = SMOKE if args.smoke else PRESETS[args.preset]
    args.seeds = args.seeds or args.preset["seeds"]
    args.method_list = C.parse_list(args.methods, tuple(METHODS), "--methods")
    if min(args.seeds, args.concurrent, args.workers, args.threads) < 1 or min(args.num_samples, args.epochs,
                                                                               args.patience, args.limit) < 0:
        p.error("--seeds, --concurrent, --workers, --threads must be >= 1; "
                "--num-samples, --epochs, --patience, --limit >= 0")
    args.tune = tune_overrides(args.set, p)
    needs_two = [m for m in args.method_list if m in MULTI_OBJECTIVE_METHODS]
    if needs_two and len(args.tune.get("objectives", [])) < 2:
        p.error(f"--methods: {needs_two[0]} needs two objectives, e.g. "
                "--set 'tune.objectives=[valid_ndcg_10,valid_tail_item_ndcg_10]'")
    return args


def tune_overrides(texts: list[str], parser: argparse.ArgumentParser) -> dict:
    """`tune.KEY=VALUE` texts -> {KEY: value}, checked by the typed TuneConfig."""
    from tuning.config import TuneConfig
    from settings import ConfigError, from_dict, merge, parse_override

    layer: dict = {}
    for text in texts:
        layer = merge(layer, parse_override(text))
    if set(layer) - {"tune"}:
        parser.error(f"--set: only tune.* settings change a replay; got {sorted(layer)}")
    try:
        from_dict(TuneConfig, layer.get("tune", {}), prefix="tune")
    except ConfigError as err:
        parser.error(f"--set: {err}")
    return layer.get("tune", {})


def base_config(args: argparse.Namespace, epochs: int | None = None):
    """The recorded settings: dataset, preset overrides, full curves to the cap."""
    data, _ = C.data_overrides(args.preset["dataset"], args.data_root, args.cache_dir)
    cap = epochs or args.preset["epochs"]
    return C.make_config([*data, *args.preset["overrides"], f"train.epochs={cap}", "train.patience=0",
                          f"train.device={args.device}", f"train.num_threads={args.threads}"])


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- measure and plan ------------------------------------------------------------------------
def measure_space(args: argparse.Namespace) -> dict:
    """One model per backbone with ICC on (clusters built: the dearer case), the middle lr."""
    space = args.preset["space"]
    return {"backbone": space["backbone"], "gamma": [max(space["gamma"])],
            "n_clusters": [max(space["n_clusters"])], "lr": [space["lr"][len(space["lr"]) // 2]]}


def measured_costs(args: argparse.Namespace) -> dict | None:
    """CPU seconds per backbone (set-up, one epoch with its test evaluation) of --measure."""
    folder = T.table_folder(args.out, base_config(args, epochs=1), measure_space(args))
    if T.missing_models(folder, T.distinct_models(measure_space(args))):
        return None
    table = T.load_table(folder)
    return {r["params"]["backbone"]: {"setup": r["setup_cpu_seconds"], "epoch": r["epoch_cpu_seconds"][0],
                                      "wall": r["epochs"][0]["epoch_seconds"] + r["test_seconds"][0]}
            for r in table["records"].values()}


def plan_lines(args: argparse.Namespace) -> list[str]:
    base, space = base_config(args), args.preset["space"]
    folder = T.table_folder(args.out, base, space)
    models = T.distinct_models(space)
    missing = T.missing_models(folder, models)
    flags = args.preset_flag
    lines = [f"table: {folder} ({len(models) - len(missing)} of {len(models)} models recorded, "
             f"{base.train.epochs} epochs each, {args.workers} processes x {args.threads} torch thread)",
             f"record: nice -n 19 .venv/bin/python bench/tabular.py --record{flags}"]
    costs = measured_costs(args)
    if costs is None:
        lines.append(f"estimate: unknown; measure first: nice -n 19 .venv/bin/python bench/tabular.py --measure{flags}")
    else:
        every = T.estimate_seconds(costs, models, base.train.epochs, args.workers)
        todo = T.estimate_seconds(costs, missing, base.train.epochs, args.workers)
        lines.append("measured CPU seconds (set-up; one epoch with its test evaluation): " + ", ".join(
            f"{b} {c['setup']:.0f}; {c['epoch']:.0f}" for b, c in costs.items()))
        lines.append(f"estimate on {args.workers} free cores: {todo / 3600:.2f} h for the {len(missing)} "
                     f"missing models (the whole table: {every / 3600:.2f} h)")
    lines.append(f"then replays: nice -n 19 .venv/bin/python bench/tabular.py{flags}")
    return lines


# ---- replays ---------------------------------------------------------------------------------
def trials_per_search(table: dict, args: argparse.Namespace) -> int:
    """--num-samples, else the preset's, else one per distinct model (the grid's count)."""
    return args.num_samples or args.preset.get("num_samples") or len(table["records"])


def replays(table: dict, method: str, seeds: range, tune: dict, args: argparse.Namespace) -> list:
    """One replay per seed, each kept as JSON under the table's replays/ folder: an interrupted
    run keeps what finished, and Ray starts only when a replay is missing."""
    epochs, num_samples = args.epochs or table["epochs"], trials_per_search(table, args)
    out = []
    for seed in seeds:
        path = replay_path(args, method, seed, tune, epochs, num_samples)
        if path.is_file():
            out.append(load_replay(path))
            continue
        if start_ray(args.concurrent):
            args.ray_started = True          # main() ends the session it started, not a caller's
        started = time.perf_counter()
        replay = run_replay(table, method, seed, tune, epochs, args.patience, num_samples, args.concurrent)
        log(f"  {method} {tune or ''} seed {seed}: {replay.trials} trials, {len(replay.events)} trial-epochs, "
            f"{time.perf_counter() - started:.1f} s")
        write_atomic(path, json.dumps(dataclasses.asdict(replay)))
        out.append(replay)
    return out


def replay_path(args: argparse.Namespace, method: str, seed: int, tune: dict, epochs: int, num_samples: int) -> Path:
    """The saved replay of these settings (everything that changes a replay is in the name)."""
    text = json.dumps({"tune": tune, "epochs": epochs, "patience": args.patience, "samples": num_samples,
                       "concurrent": args.concurrent}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return args.table_folder / "replays" / f"{method}-{digest}-s{seed}.json"


def load_replay(path: Path) -> Replay:
    data = json.loads(path.read_text())
    data["events"] = [Event(**event) for event in data["events"]]
    return Replay(**data)


def all_replays(table: dict, methods: list[str], seeds: range, tune: dict, args: argparse.Namespace) -> dict:
    """Seed by seed over the methods, so an interrupted run leaves every method the same seeds."""
    by_method: dict[str, list] = {m: [] for m in methods}
    for seed in seeds:
        for method in methods:
            by_method[method] += replays(table, method, range(seed, seed + 1), tune, args)
    return by_method


def tune_the_tuner(table: dict, grid: dict, args: argparse.Namespace) -> tuple[str, list[str]]:
    """One knob at a time against the defaults on seeds 0..n-1; the best value of each knob
    (fewer median trial-epochs to target, else the default) combined; before and after compared
    on fresh seeds, so the choice is not judged on the seeds it was made on."""
    def median_epochs(rs: list) -> float:
        return quartiles(replay_figures(r, grid, WORKERS)["epochs_to_target"] for r in rs)[0]

    tuning_seeds = range(args.seeds)
    runs = {"defaults": replays(table, "tpe+asha", tuning_seeds, args.tune, args)}
    chosen = dict(args.tune)
    for knob, values in TUNER_GRID.items():
        best = median_epochs(runs["defaults"])
        for value in values:
            label = f"{knob}={value}"
            runs[label] = replays(table, "tpe+asha", tuning_seeds, {**args.tune, knob: value}, args)
            if median_epochs(runs[label]) < best:
                best, chosen[knob] = median_epochs(runs[label]), value
    fresh = range(HELD_OUT_SEED, HELD_OUT_SEED + args.seeds)
    final = {"before (defaults), fresh seeds": replays(table, "tpe+asha", fresh, args.tune, args),
             f"after ({chosen or 'defaults'}), fresh seeds": replays(table, "tpe+asha", fresh, chosen, args)}
    notes = [f"one knob at a time on seeds 0-{args.seeds - 1}; chosen: {chosen or 'the defaults'}; "
             f"before/after on seeds {HELD_OUT_SEED}-{HELD_OUT_SEED + args.seeds - 1}"]
    return R.tuner_table(runs, grid, WORKERS) + "\n" + R.tuner_table(final, grid, WORKERS), notes


def recorded_on(table: dict) -> str:
    """Devices, torch threads and dates of the records (GPU epoch seconds are not CPU seconds)."""
    seen = sorted({(r["recorded"].get("device", "cpu"), r["recorded"]["torch_threads"])
                   for r in table["records"].values()})
    dates = sorted(r["recorded"]["date"] for r in table["records"].values())
    where = ", ".join(f"{device} ({threads} torch thread{'s' if threads > 1 else ''})" for device, threads in seen)
    return f"{where}, {dates[0]} to {dates[-1]}"


def front_section(table: dict, by_method: dict, grid: dict, objectives: list[str], args: argparse.Namespace) -> str:
    """With two or more objectives: how much of the grid's front each method's trials cover."""
    volume = F.grid_hypervolume(table, args.epochs or table["epochs"], args.patience, objectives)
    return (f"Fronts ({', '.join(objectives)}): each trial's point at its best epoch so far; the grid's "
            f"hypervolume (origin) {volume:.6g}\n\n" + F.front_table(by_method, volume, grid["epochs"]))


def report(table: dict, folder: Path, args: argparse.Namespace, load: str) -> str:
    from tuning.config import TuneConfig
    from settings import from_dict

    epochs = args.epochs or table["epochs"]
    grid = grid_figures(table, epochs, args.patience, WORKERS)
    tune = from_dict(TuneConfig, args.tune, prefix="tune")
    notes = [f"table: {folder.name}, {grid['models']} models of {table['space']}, {table['epochs']} epochs "
             f"recorded; replays: epoch cap {epochs}, patience {args.patience}, {trials_per_search(table, args)} "
             f"trials per search, {args.concurrent} at once, seeds 0-{args.seeds - 1}",
             f"table recorded on {recorded_on(table)}: the simulated minutes use that device's epoch seconds",
             f"grid's best valid NDCG@10 {grid['best']:.4f} ({grid['best_key']}); target (99 %) {grid['target']:.4f}",
             f"tuner: grace {tune.grace_period}, rf {tune.reduction_factor:g}, n_startup_trials "
             f"{tune.n_startup_trials}, multivariate {tune.multivariate}",
             "median [IQR] over seeds; 'never' = the target was not reached (counted as infinitely costly)",
             "simulated minutes: recorded epoch seconds, trials in the replay's start order on k workers "
             "(greedy); decisions as made at the replay's concurrency; test evaluation and Ray overhead left out",
             "test NDCG@10 of the pick: the model with the best validation NDCG@10 among the search's trials, "
             "trained to its end (its recorded test at its best validation epoch)"]
    if args.tuner_grid:
        body, extra = tune_the_tuner(table, grid, args)
        title = "Tuning the tuner on the tabular benchmark (TPE + ASHA)"
    else:
        by_method = all_replays(table, args.method_list, range(args.seeds), args.tune, args)
        body, extra = R.methods_table(by_method, grid, WORKERS)
        plot = R.plot_anytime(by_method, grid, folder / "anytime.png")
        extra.append(f"anytime plot: {plot}")
        title = "Search efficiency on the tabular benchmark"
        if len(tune.objectives) > 1:
            body += "\n" + front_section(table, by_method, grid, tune.objectives, args)
    text = C.header(title, "cpu", notes + extra, load) + "\n" + body
    (folder / ("tuner-grid.md" if args.tuner_grid else "report.md")).write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = C.load_average()
    C.quiet_environment()
    if args.measure:
        T.record_table(base_config(args, epochs=1), measure_space(args), args.out, args.workers, args.threads, log)
        print("\n".join(plan_lines(args)))
        return 0
    if args.plan:
        print("\n".join(plan_lines(args)))
        return 0
    base, space = base_config(args), args.preset["space"]
    if args.record or args.smoke:
        T.record_table(base, space, args.out, args.workers, args.threads, log, args.limit)
        if args.record:
            print("\n".join(plan_lines(args)))
            return 0
    folder = T.table_folder(args.out, base, space)
    if T.missing_models(folder, T.distinct_models(space)):
        print("the table is not complete yet:\n" + "\n".join(plan_lines(args)))
        return 1
    table = T.load_table(folder)
    args.table_folder = folder
    try:
        print(report(table, folder, args, load))
    finally:
        if getattr(args, "ray_started", False):
            import ray

            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
