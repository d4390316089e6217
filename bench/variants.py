"""Plain backbone vs LLM-ESR vs ICC (gamma 0.1) over several seeds, fixed settings (no search).

`llmesr-paper` is LLM-ESR with its code's cross-attention (no residual); `llmesr` and `icc` use
this project's default (each view's sequence added back). The training-free reference rows
(last item's text, popularity, history then popularity) show what the inputs alone reach under
the same evaluator. `launch.py study` is the tuned, paired comparison; this is the quick one.

Each run trains one configuration with early stopping on validation NDCG@10 and tests the best
epoch's weights (full ranking, history masked). Prints the mean ± 95 % CI over seeds of overall,
tail-item and tail-user NDCG@10 and Hit@10 on test (full ranking), plus the sampled-100 protocol's
NDCG@10 overall and on tail items; then each variant against the plain backbone (and ICC against
LLM-ESR), paired by seed: the relative change of the means, the difference's 95 % CI and the
paired two-sided t-test's p.

`--out DIR` writes every run as DIR/VARIANT-sSEED.json (test and validation metrics, best epoch,
process CPU seconds) the moment it ends, and skips runs already there with the same settings, so a
stopped comparison resumes; `--merge DIR` prints the tables from those files without training.

    python bench/variants.py --dataset amazon-scientific --seeds 42,43,44 --epochs 30 --patience 5
    python bench/variants.py --config configs/dose-beauty.yaml --dataset amazon-beauty --max-len 20 \\
        --epochs 30 --patience 5 --variants plain,llmesr --workers 1 --out docs/bench/beauty/variants
    python bench/variants.py --merge docs/bench/beauty/variants
    python bench/variants.py --merge docs/bench/beauty/variants --against docs/bench/beauty/variants-lean
    python bench/variants.py --smoke      # a minute: ml-100k, 1 seed, 1 epoch, tiny model (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (str(REPO), str(REPO / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _common as C  # noqa: E402
from runtime import worker_process, write_atomic  # noqa: E402

VARIANTS = {                        # model.variant sets every switch consistently
    "plain": ["model.variant=plain"],
    "llmesr-paper": ["model.variant=llmesr", "model.cross_residual=false"],
    "llmesr": ["model.variant=llmesr"],
    "icc": ["model.variant=icc", "model.gamma=0.1"],
}
KEYS = ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "new_target_ndcg_10", "hit_10", "tail_item_hit_10",
        "tail_user_hit_10", "new_target_hit_10", "sampled_ndcg_10", "sampled_tail_item_ndcg_10")
COMPARED = ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "hit_10")
PAIRS = [(v, "plain") for v in ("llmesr-paper", "llmesr", "icc")] + [("icc", "llmesr")]


def run_one(job: tuple[str, str, int, list[str]]) -> dict[str, Any]:
    """One variant and seed in its own process (one torch thread), as a record."""
    worker_process(threads=1)
    from model.pipeline import train_once
    from tuning.config import load_config

    variant, config_path, seed, overrides = job
    config = load_config(config_path, [*overrides, *VARIANTS[variant], f"train.seed={seed}"])
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_once(config)
    return {"variant": variant, "seed": seed, "config_file": config_path, "overrides": overrides,
            "test": result.test, "valid": result.valid, "best_epoch": result.best_epoch, "epochs": result.epochs,
            "cpu_s": round(time.process_time() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2)}


def record_path(folder: Path, variant: str, seed: int) -> Path:
    return folder / f"{variant}-s{seed}.json"


def load_records(folder: Path) -> list[dict[str, Any]]:
    """Every run written under `folder` (none: an empty list)."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*-s*.json"))]


def finished(jobs: list[tuple], folder: Path | None) -> list[dict[str, Any]]:
    """The records in `folder` of these jobs, made with the same config file and overrides."""
    if folder is None or not jobs:
        return []
    wanted = {(job[0], job[2]) for job in jobs}
    return [r for r in load_records(folder) if (r["variant"], r["seed"]) in wanted
            and r.get("overrides") == jobs[0][3] and r.get("config_file") == jobs[0][1]]


def pending(jobs: list[tuple], folder: Path | None, done: list[dict[str, Any]] | None = None) -> list[tuple]:
    """The jobs without a record in `folder` (or in `done`, when already read) made with the same settings."""
    have = {(r["variant"], r["seed"]) for r in (finished(jobs, folder) if done is None else done)}
    return [job for job in jobs if (job[0], job[2]) not in have]


def reference_rows(config_path: str, overrides: list[str]) -> dict[str, dict[str, float]]:
    """The training-free scorers on the same test split (deterministic: one run each)."""
    from datasets.prepare import prepare_dataset
    from model.baselines import reference_metrics
    from tuning.config import load_config

    config = load_config(config_path, overrides)
    data = prepare_dataset(config.data, progress=False)
    found = reference_metrics(data, "test", config.model.max_len, config.eval.repeats)
    return {f"reference: {name}": metrics for name, metrics in found.items()}


def _ci(values: list[float]) -> str:
    from results.stats import ci_text, mean_ci

    return ci_text(mean_ci(values))


def means_table(records: list[dict[str, Any]], references: dict[str, dict[str, float]]) -> list[str]:
    """Mean ± 95 % CI over seeds per variant and metric, then the references (one value each)."""
    lines = ["| variant | seeds | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 2) + "|"]
    for variant in [v for v in VARIANTS if any(r["variant"] == v for r in records)]:
        tests = [r["test"] for r in records if r["variant"] == variant]
        lines.append(f"| {variant} | {len(tests)} | " + " | ".join(_ci([t[k] for t in tests]) for k in KEYS) + " |")
    for name, metrics in references.items():
        lines.append(f"| {name} | - | " + " | ".join(f"{metrics.get(k, float('nan')):.4f}" for k in KEYS) + " |")
    return lines


def paired_table(records: list[dict[str, Any]]) -> list[str]:
    """Each variant against the plain backbone (and ICC against LLM-ESR) on the seeds both ran."""
    from results.stats import paired

    by = {(r["variant"], r["seed"]): r["test"] for r in records}
    lines = ["| treatment vs control | seeds | metric | control | treatment | change | difference (95 % CI) | p |",
             "|---|---|---|---|---|---|---|---|"]
    for treatment, control in PAIRS:
        seeds = sorted({s for v, s in by if v == treatment} & {s for v, s in by if v == control})
        for key in COMPARED if seeds else ():
            a, b = [by[(treatment, s)][key] for s in seeds], [by[(control, s)][key] for s in seeds]
            d = paired(a, b)
            half = f" ± {d['diff_half_width']:.4f}" if d["diff_half_width"] is not None else ""
            rel = f"{100 * d['relative']:+.1f} %" if d["relative"] is not None else "-"
            p = f"{d['p_value']:.3f}" if d["p_value"] is not None else "-"
            lines.append(f"| {treatment} vs {control} | {len(seeds)} | {key} | {sum(b) / len(b):.4f} "
                         f"| {sum(a) / len(a):.4f} | {rel} | {d['diff']:+.4f}{half} | {p} |")
    return lines


def cost_lines(records: list[dict[str, Any]]) -> list[str]:
    """Per run: best epoch, epochs run and CPU seconds, so the cost sits beside the numbers."""
    lines = ["| variant | seed | test ndcg_10 | best epoch / epochs | CPU s | CPU s per epoch |", "|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"])):
        lines.append(f"| {r['variant']} | {r['seed']} | {r['test']['ndcg_10']:.4f} | {r['best_epoch']}/{r['epochs']} "
                     f"| {r['cpu_s']:.0f} | {r['cpu_s'] / max(r['epochs'], 1):.1f} |")
    return lines


def against_table(records: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[str]:
    """The same variant and seed run twice (two folders: another arithmetic, machine or code), side by
    side: does the second set train the same model, and at what cost?"""
    by = {(r["variant"], r["seed"]): r for r in others}
    lines = ["| variant | seed | test NDCG@10, first / second | tail-item NDCG@10 | Hit@10 "
             "| best epoch / epochs, first and second | CPU s | CPU s per epoch |", "|---" * 8 + "|"]
    for a in sorted(records, key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"])):
        b = by.get((a["variant"], a["seed"]))
        if b is None:
            continue
        metrics = [f"{a['test'][k]:.6f} / {b['test'][k]:.6f}" for k in ("ndcg_10", "tail_item_ndcg_10", "hit_10")]
        per_epoch = " / ".join(f"{r['cpu_s'] / max(r['epochs'], 1):.0f}" for r in (a, b))
        lines.append(f"| {a['variant']} | {a['seed']} | " + " | ".join(metrics)
                     + f" | {a['best_epoch']} / {a['epochs']} and {b['best_epoch']} / {b['epochs']} "
                       f"| {a['cpu_s']:,.0f} / {b['cpu_s']:,.0f} | {per_epoch} |")
    return lines


def print_report(records: list[dict[str, Any]], references: dict[str, dict[str, float]], title: str) -> None:
    print(f"\n{title}\n")
    print("\n".join(means_table(records, references)))
    print("\nPaired by seed (two-sided t over the seeds both ran):\n")
    print("\n".join(paired_table(records)))
    print("\nRuns:\n")
    print("\n".join(cost_lines(records)))


SMOKE = {"dataset": "ml-100k", "seeds": "42", "epochs": 1, "patience": 1, "max_len": 10, "workers": 1,
         "set": ["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1",
                 f"data.cache_dir={C.DEFAULT_CACHE_DIR}"]}     # the tests' cache, as the other smokes use


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    p.add_argument("--dataset", default="amazon-scientific")
    p.add_argument("--seeds", default="42,43,44")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (one thread each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="", help="write each run to OUT/VARIANT-sSEED.json; skip runs already there")
    p.add_argument("--merge", default="", metavar="DIR", help="print the tables of the runs in DIR; train nothing")
    p.add_argument("--against", default="", metavar="DIR2", help="with --merge: each run of DIR beside the same "
                   "variant and seed in DIR2 (e.g. the same runs under another arithmetic)")
    p.add_argument("--smoke", action="store_true", help="ml-100k, 1 seed, 1 epoch, tiny model (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, [*value, *args.set] if key == "set" else value)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variant_list if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: got {', '.join(unknown)}; allowed: {', '.join(VARIANTS)}")
    if args.workers < 1:
        p.error(f"--workers: got {args.workers}; allowed: >= 1")
    if args.against and not args.merge:
        p.error("--against: needs --merge DIR (the first folder)")
    return args


def merge(folder: Path, against: Path | None = None) -> None:
    records = load_records(folder)
    if not records:
        raise SystemExit(f"--merge: no runs (*-sSEED.json) in {folder}")
    if against is not None:
        others = load_records(against)
        lines = against_table(records, others)
        if len(lines) == 2:
            raise SystemExit(f"--against: no run in {against} has a variant and seed of {folder}")
        print(f"\n{folder} (first) against {against} (second), test, full ranking\n")
        print("\n".join(lines))
        return
    first = records[0]
    print_report(records, reference_rows(first["config_file"], first["overrides"]),
                 f"{folder}: test, full ranking, mean ± 95 % CI over seeds; config {first['config_file']}, "
                 f"overrides: {' '.join(first['overrides'])}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.merge:
        return merge(Path(args.merge), Path(args.against) if args.against else None)
    overrides = [f"data.name={args.dataset}", f"train.epochs={args.epochs}",
                 f"train.patience={args.patience}", f"model.max_len={args.max_len}",
                 "train.num_threads=1", *args.set]
    seeds = C.parse_seeds(args.seeds)
    out = Path(args.out) if args.out else None
    jobs = [(v, args.config, s, overrides) for s in seeds for v in args.variant_list]   # paired seeds first
    records = finished(jobs, out)                        # the folder is read once
    todo = pending(jobs, out, done=records)
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {out}; running {len(todo)}" if out
          else f"running {len(todo)} runs", flush=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for record in pool.map(run_one, todo):
            records.append(record)
            if out:
                write_atomic(record_path(out, record["variant"], record["seed"]), json.dumps(record, indent=1))
            print(f"{record['variant']:7s} seed {record['seed']}: test ndcg_10 {record['test']['ndcg_10']:.4f}, "
                  f"best epoch {record['best_epoch']}, {record['cpu_s']:.0f} CPU s", flush=True)
    print_report(records, reference_rows(args.config, overrides),
                 f"{args.dataset}, test, full ranking, mean ± 95 % CI over seeds {args.seeds}; "
                 f"overrides: {' '.join(overrides)}")


if __name__ == "__main__":
    main()
