"""Sampled softmax against full softmax: quality and cost of `model.loss=sampled_ce`.

Trains each variant x loss x seed at the dose study's settings (configs/dose-scientific.yaml:
SASRec, hidden 64, max_len 20, lr 0.0016, dropout 0.372, up to 30 epochs, patience 5), one run
at a time, each in its own process with one torch thread, and prints a Markdown table: test
NDCG@10 overall and on tail items (best-validation weights), best epoch, epochs run and CPU
seconds per epoch (training pass + validation, the process's own CPU time).

    python bench/sampled_softmax.py --seeds 42,43 --negatives 256
    python bench/sampled_softmax.py --smoke      # seconds: 300 users, 1 epoch (CI)
    python bench/sampled_softmax.py --merge runs.jsonl   # the table again from saved run lines

Each finished run's JSON line goes to standard error as it ends, so a set stopped part way can
be tabled from the lines it left (`--merge`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common as C

CONFIG = "configs/dose-scientific.yaml"
SMOKE = dict(users=300, epochs=1, seeds="42", variants="plain", losses="ce,sampled_ce")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--variants", default="plain,llmesr")
    p.add_argument("--losses", default="ce,sampled_ce")
    p.add_argument("--seeds", default="42,43")
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--epochs", type=int, default=0, help="override train.epochs (0 = the config's)")
    p.add_argument("--users", type=int, default=0, help="first N users only (0 = all)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR, help="the prepared-data cache the other benchmarks "
                   "and the tests share (the config's own would embed the item text again)")
    p.add_argument("--merge", metavar="JSONL", help="table the run lines saved in this file instead of running")
    p.add_argument("--one", help="internal: run one VARIANT:LOSS:SEED and print its JSON line")
    return C.parse_with_smoke(p, SMOKE)


def run_one(args: argparse.Namespace) -> dict:
    """One training run in this process: test metrics, best epoch and CPU seconds per epoch."""
    C.start(argparse.Namespace(threads=1, device="cpu"))
    from model.pipeline import build_trainer
    from tuning.config import load_config

    variant, loss, seed = args.one.split(":")
    sets = [f"model.variant={variant}", f"model.loss={loss}", f"model.negatives={args.negatives}",
            f"train.seed={seed}", "train.device=cpu", "train.num_threads=1",
            f"data.data_root={args.data_root}", f"data.cache_dir={args.cache_dir}"]
    sets += [f"train.epochs={args.epochs}"] if args.epochs else []
    config = load_config(args.config, sets)
    data = C.prepare(config)
    data = data.first_users(args.users) if 0 < args.users < data.n_users else data
    trainer = build_trainer(config, data)
    cpu = []
    while not trainer.should_stop():
        start = time.process_time()
        trainer.train_epoch()
        cpu.append(time.process_time() - start)
    test = trainer.test()
    return {"variant": variant, "loss": loss, "seed": int(seed), "ndcg_10": test["ndcg_10"],
            "tail_item_ndcg_10": test["tail_item_ndcg_10"], "best_epoch": trainer.best_epoch,
            "epochs": trainer.epoch, "cpu_s_per_epoch": sum(cpu) / max(1, len(cpu))}


def main() -> None:
    args = parse_args()
    if args.one:
        print(json.dumps(run_one(args)), flush=True)
        return
    load = C.load_average()
    C.set_torch_threads(1)                     # as each run: the header's thread count says so
    runs = saved_runs(args.merge) if args.merge else run_all(args)
    print_table(runs, args, load)


def saved_runs(path: str) -> list[dict]:
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.startswith("{")]


def run_all(args: argparse.Namespace) -> list[dict]:
    """Every variant x loss x seed, one child process at a time (seed by seed)."""
    runs = []
    for seed in args.seeds.split(","):
        for variant in C.parse_list(args.variants, ("plain", "llmesr"), "--variants"):
            for loss in C.parse_list(args.losses, ("ce", "sampled_ce"), "--losses"):
                child = [sys.executable, __file__, "--one", f"{variant}:{loss}:{seed}", "--config", args.config,
                         "--negatives", str(args.negatives), "--epochs", str(args.epochs), "--users", str(args.users),
                         "--data-root", args.data_root, "--cache-dir", args.cache_dir]
                out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return runs


def print_table(runs: list[dict], args: argparse.Namespace, load: str) -> None:
    rows = [(r["variant"], r["loss"] + (f" ({args.negatives})" if r["loss"] == "sampled_ce" else ""), r["seed"],
             r["ndcg_10"], r["tail_item_ndcg_10"], r["best_epoch"], r["epochs"], r["cpu_s_per_epoch"])
            for r in runs]
    print(C.header("Sampled softmax against full softmax (amazon-scientific, SASRec)", "cpu",
                   [f"settings: {args.config}; one process per run, one torch thread, one run at a time",
                    "CPU s / epoch: the run's own process CPU time per epoch (training pass + validation)"],
                   load))
    print(C.markdown_table(["variant", "loss (negatives)", "seed", "test NDCG@10", "test tail-item NDCG@10",
                            "best epoch", "epochs run", "CPU s / epoch"], rows))


if __name__ == "__main__":
    main()
