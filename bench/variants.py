"""Plain backbone vs LLM-ESR vs ICC (gamma 0.1) over several seeds, fixed settings (no search).

`llmesr-paper` is LLM-ESR with its code's cross-attention (no residual); `llmesr` and `icc` use
this project's default (each view's sequence added back). The training-free reference rows
(last item's text, popularity, history then popularity) show what the inputs alone reach under
the same evaluator. `launch.py study` is the tuned, paired comparison; this is the quick one.

Each run trains one configuration with early stopping on validation NDCG@10 and tests the best
epoch's weights (full ranking, history masked). Prints mean ± std over seeds of overall,
tail-item and tail-user NDCG@10 and Hit@10 on test (full ranking), plus the sampled-100 protocol's
NDCG@10 overall and on tail items.

    python bench/variants.py --dataset amazon-scientific --seeds 42,43,44 --epochs 30 --patience 5
    python bench/variants.py --smoke      # a minute: ml-100k, 1 seed, 1 epoch, tiny model (CI)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runtime import worker_process  # noqa: E402

VARIANTS = {                        # model.variant sets every switch consistently
    "plain": ["model.variant=plain"],
    "llmesr-paper": ["model.variant=llmesr", "model.cross_residual=false"],
    "llmesr": ["model.variant=llmesr"],
    "icc": ["model.variant=icc", "model.gamma=0.1"],
}
KEYS = ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "new_target_ndcg_10", "hit_10", "tail_item_hit_10",
        "tail_user_hit_10", "new_target_hit_10", "sampled_ndcg_10", "sampled_tail_item_ndcg_10")


def run_one(job: tuple[str, str, int, list[str]]) -> tuple[str, int, dict, int, float]:
    """One variant and seed in its own process (one torch thread)."""
    worker_process(threads=1)
    from model.pipeline import train_once
    from tuning.config import load_config

    variant, config_path, seed, overrides = job
    config = load_config(config_path, [*overrides, *VARIANTS[variant], f"train.seed={seed}"])
    start = time.perf_counter()
    result = train_once(config)
    return variant, seed, result.test, result.best_epoch, time.perf_counter() - start


def reference_rows(config_path: str, overrides: list[str]) -> dict[str, list]:
    """The training-free scorers on the same test split (deterministic: one run each)."""
    from datasets.prepare import prepare_dataset
    from model.baselines import reference_metrics
    from tuning.config import load_config

    config = load_config(config_path, overrides)
    data = prepare_dataset(config.data)
    found = reference_metrics(data, "test", config.model.max_len, config.eval.repeats)
    return {f"reference: {name}": [metrics] for name, metrics in found.items()}


SMOKE = {"dataset": "ml-100k", "seeds": "42", "epochs": 1, "patience": 1, "max_len": 10, "workers": 1,
         "set": ["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    p.add_argument("--dataset", default="amazon-scientific")
    p.add_argument("--seeds", default="42,43,44")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (one thread each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--smoke", action="store_true", help="ml-100k, 1 seed, 1 epoch, tiny model (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, [*value, *args.set] if key == "set" else value)
    overrides = [f"data.name={args.dataset}", f"train.epochs={args.epochs}",
                 f"train.patience={args.patience}", f"model.max_len={args.max_len}",
                 "train.num_threads=1", *args.set]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: got {', '.join(unknown)}; allowed: {', '.join(VARIANTS)}")
    jobs = [(v, args.config, s, overrides) for v in variants for s in seeds]
    rows: dict[str, list] = {v: [] for v in variants}
    rows.update(reference_rows(args.config, overrides))
    with ProcessPoolExecutor(args.workers) as pool:
        for variant, seed, test, best_epoch, seconds in pool.map(run_one, jobs):
            rows[variant].append(test)
            print(f"{variant:7s} seed {seed}: test ndcg_10 {test['ndcg_10']:.4f}, best epoch "
                  f"{best_epoch}, {seconds:.0f} s", flush=True)
    print(f"\n{args.dataset}, test, full ranking, mean ± std over seeds {args.seeds}; "
          f"overrides: {' '.join(overrides)}\n")
    print("| variant | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 1) + "|")
    for variant, tests in sorted(rows.items(), key=lambda kv: kv[0].startswith("reference")):
        cells = []
        for key in KEYS:
            values = [t[key] for t in tests]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""   # no spread of one seed
            cells.append(f"{statistics.mean(values):.4f}{spread}")
        print(f"| {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
