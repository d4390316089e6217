"""Packing trials on one GPU: trials_per_gpu = 1, 2, 4, 8 vs trial-epochs per hour and GPU use.

Each setting runs `tuning.runner.run_experiment` with a fixed-config search space (every parameter a
plain value, so all trials are the same work and only the packing varies), `--trials` trials of
exactly `--epochs` epochs (patience off, ASHA's grace period = max epochs, so nothing stops
early). Counted: trial-epochs = the epochs the trials reported (read from each trial's
result.json), over the wall time of the whole run_experiment call (Ray start and data loading
included; they are the same for every setting). GPU utilisation is sampled every second from
`nvidia-smi` (or torch.cuda.utilization) in a background thread while the experiment runs.

    .venv/bin/python bench/packing.py                        # 1,2,4,8 on amazon-scientific
    .venv/bin/python bench/packing.py --smoke                # 1,2 with 2 trials of 1 epoch, tiny model
    python3 bench/packing.py --backend processes             # no Ray: k training processes share the GPU
Needs a CUDA GPU: without one it exits with status 2 and says so (`--backend processes --device
cpu` runs the same on CPU, to check the script). `--backend processes` is for a machine without
Ray (the lent GPU machine has none, and Ray's wheel does not fit what a device call carries): k
processes at a time share the GPU as k fractional-GPU trials would, Ray's scheduling left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials-per-gpu", default="1,2,4,8", help="comma-separated packing levels")
    p.add_argument("--dataset", default="amazon-scientific", choices=C.DATASETS)
    p.add_argument("--backbone", default="sasrec", choices=C.BACKBONES)
    p.add_argument("--trials", type=int, default=0, help="trials per setting (0 = 2 x the largest level)")
    p.add_argument("--epochs", type=int, default=3, help="epochs every trial runs")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--storage", default="", help="experiment folder root (default: a temp folder, removed)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    p.add_argument("--backend", default="ray", choices=("ray", "processes"),
                   help="ray: Ray Tune trials with tune.trials_per_gpu = k; processes: k plain training processes")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu only with --backend processes (checks the script where no GPU is)")
    p.add_argument("--smoke", action="store_true", help="levels 1,2; 2 trials of 1 epoch; tiny model")
    args = p.parse_args(argv)
    if args.smoke:
        args.trials_per_gpu, args.trials, args.epochs, args.max_len = "1,2", 2, 1, 10
        args.dataset = "ml-100k"
        args.set = ["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1", *args.set]
    try:
        args.levels = [int(t) for t in args.trials_per_gpu.split(",") if t.strip()]
    except ValueError:
        p.error(f"--trials-per-gpu: got {args.trials_per_gpu!r}; allowed: comma-separated ints >= 1")
    if not args.levels or min(args.levels) < 1:
        p.error(f"--trials-per-gpu: got {args.trials_per_gpu!r}; allowed: comma-separated ints >= 1")
    if args.epochs < 1 or args.trials < 0 or args.max_len < 2 or args.cpus_per_trial <= 0:
        p.error("--epochs >= 1, --trials >= 0, --max-len >= 2 and --cpus-per-trial > 0 are required")
    args.trials = args.trials or 2 * max(args.levels)
    if args.device == "cpu" and args.backend != "processes":
        p.error("--device cpu: allowed only with --backend processes")
    return args


class GpuSampler:
    """Samples GPU utilisation (%) once a second in a daemon thread until stopped."""

    def __init__(self, index: int = 0, interval: float = 1.0) -> None:
        self.index, self.interval = index, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return float(out.stdout.strip().splitlines()[0])
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        try:
            import torch

            return float(torch.cuda.utilization(self.index))
        except Exception:  # noqa: BLE001 - pynvml missing or unsupported: no sample
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def fixed_space(config) -> dict:
    """Every tuned parameter pinned to the base config's value: all trials are identical work."""
    return {"backbone": config.model.backbone, "gamma": config.model.gamma,
            "n_clusters": config.clusters.n_clusters, "lr": config.train.lr}


def trial_epochs(experiment: Path) -> int:
    """Distinct (trial, epoch) pairs reported in the trials' result.json files."""
    seen = set()
    for path in experiment.glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                if "epoch" in result:
                    seen.add((path.parent.name, int(result["epoch"])))
    return len(seen)


def utilisation_cells(samples: list[float]) -> list:
    """Mean and max GPU utilisation of a level's samples, "n/a" without any."""
    return [round(statistics.mean(samples), 1), round(max(samples), 1)] if samples else ["n/a", "n/a"]


def base_overrides(args: argparse.Namespace) -> list[str]:
    """The one fixed configuration every trial trains: all the same work, only packing varies."""
    overrides, _ = C.data_overrides(args.dataset, args.data_root, args.cache_dir)
    return [*overrides, f"model.backbone={args.backbone}", f"model.max_len={args.max_len}",
            f"train.epochs={args.epochs}", "train.patience=0", f"train.device={'cpu' if args.device == 'cpu' else 'auto'}"]


def train_job(config_dict: dict) -> int:
    """One training run in its own process (one CPU thread, as a 1-CPU trial); its epochs."""
    from runtime import worker_process

    worker_process(threads=1)
    from model.pipeline import train_once
    from tuning.config import config_from_dict

    return train_once(config_from_dict(config_dict)).epochs


def run_level_processes(k: int, args: argparse.Namespace) -> list:
    """`args.trials` runs, k processes at a time on one GPU (no Ray)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tuning.config import config_to_dict

    job = config_to_dict(C.make_config([*base_overrides(args), *args.set]))
    with GpuSampler() as sampler:
        start = time.perf_counter()
        with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn")) as pool:
            epochs = sum(pool.map(train_job, [job] * args.trials))
        wall = time.perf_counter() - start
    util = sampler.samples if args.device == "cuda" else []
    return [k, args.trials, args.trials, epochs, round(wall, 1), round(epochs / wall * 3600, 1),
            *utilisation_cells(util)]


def run_level(k: int, args: argparse.Namespace, storage: str) -> list:
    from tuning.config import config_from_dict, config_to_dict
    from tuning.runner import run_experiment

    base = C.make_config([*base_overrides(args), f"tune.storage_path={storage}", f"tune.name=packing-k{k}-{int(time.time())}",
                          f"tune.num_samples={args.trials}", f"tune.trials_per_gpu={k}",
                          f"tune.cpus_per_trial={args.cpus_per_trial}", f"tune.grace_period={args.epochs}",
                          "tune.max_failures=0", *args.set])
    data = config_to_dict(base)
    data["tune"]["space"] = fixed_space(base)
    config = config_from_dict(data)
    with GpuSampler() as sampler:
        start = time.perf_counter()
        summary = run_experiment(config, progress=False)
        wall = time.perf_counter() - start
    epochs = trial_epochs(Path(summary["experiment"]))
    util = sampler.samples
    return [k, args.trials, summary["terminated"], epochs, round(wall, 1), round(epochs / wall * 3600, 1),
            *utilisation_cells(util)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = C.load_average()
    C.quiet_environment()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/packing.py needs a CUDA GPU; none found (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    storage = args.storage or tempfile.mkdtemp(prefix="icc-packing-")
    try:
        rows = [run_level_processes(k, args) if args.backend == "processes" else run_level(k, args, storage)
                for k in args.levels]
    finally:
        if not args.storage:
            shutil.rmtree(storage, ignore_errors=True)
    notes = [f"dataset {args.dataset}, backbone {args.backbone}, max_len {args.max_len}, {args.trials} trials x "
             f"{args.epochs} epochs per setting, {args.cpus_per_trial:g} CPU per trial; fixed-config space",
             "trial-epochs/hour = reported trial-epochs / wall seconds of run_experiment x 3600 "
             "(Ray start and data load included)" if args.backend == "ray" else
             f"backend processes: k spawned training processes at a time, no Ray (one torch thread each); "
             f"trial-epochs/hour = epochs trained / wall seconds x 3600 (process start and data load included)"]
    if args.set:
        notes.append("overrides: " + " ".join(args.set))
    print(C.header("Packing: trials per GPU", args.device, notes, load))
    print(C.markdown_table(["trials_per_gpu", "trials", "finished", "trial-epochs", "wall s",
                            "trial-epochs/hour", "GPU util mean %", "GPU util max %"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
