"""Evaluation time for all users: full ranking, sampled-100, and both (what every epoch runs).

The score function is the real model's (Trainer's item table + `model.score`), trained for
`--train-epochs` epochs first (0 = the untrained model; the table says which), and the timed
call is `model.evaluate.evaluate` on the validation split, item table included. Reported as the
median of `--repeats` runs after one warm-up, and as seconds per 10,000 users.
Goal (issue 7): under 1 s per 10k users on one GPU.

    .venv/bin/python bench/eval_time.py                       # ml-100k and amazon-scientific
    .venv/bin/python bench/eval_time.py --device cuda --repeats 5
    .venv/bin/python bench/eval_time.py --smoke               # seconds: ml-100k, untrained, tiny
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

PROTOCOL_SETS = {"full": ("full",), "sampled": ("sampled",), "full+sampled": ("full", "sampled")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="ml-100k,amazon-scientific", help="comma-separated: " + ", ".join(C.DATASETS))
    p.add_argument("--backbone", default="sasrec", choices=C.BACKBONES)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--train-epochs", type=int, default=1, help="epochs trained before timing (0 = untrained)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default; 1 is fastest on a shared machine)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    p.add_argument("--smoke", action="store_true", help="ml-100k, untrained small model, 1 repeat")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.train_epochs, args.repeats, args.max_len = "ml-100k", 0, 1, 20
        args.set = ["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1", *args.set]
    if args.max_len < 2 or args.repeats < 1 or args.train_epochs < 0 or args.eval_batch_size < 1:
        p.error("--max-len >= 2, --repeats >= 1, --train-epochs >= 0 and --eval-batch-size >= 1 are required")
    args.dataset_list = C.parse_list(args.datasets, C.DATASETS, "--datasets")
    return args


def score_function(trainer, device):
    """The trainer's own evaluation scorer (as in Trainer.evaluate): item views once, then
    model.score per user batch."""
    import torch

    model = trainer.model
    model.eval()
    with torch.no_grad():
        views = model.all_item_views()

    def score_fn(users, inputs):
        with torch.no_grad():
            return model.score(inputs.to(device), views)

    return score_fn


def time_dataset(name: str, args: argparse.Namespace) -> list[list]:
    from model.evaluate import evaluate
    from model.pipeline import build_trainer

    overrides, emb_label = C.data_overrides(name, args.data_root, args.cache_dir)
    config = C.make_config([*overrides, f"model.backbone={args.backbone}", f"model.max_len={args.max_len}",
                            "model.gamma=0", f"train.device={args.device}",
                            f"train.epochs={max(1, args.train_epochs)}",
                            f"train.eval_batch_size={args.eval_batch_size}",
                            f"train.num_threads={args.threads}", *args.set])
    data = C.prepare(config)
    trainer = build_trainer(config, data)
    device = str(trainer.device)
    for _ in range(args.train_epochs):
        trainer.train_epoch()
    state = f"trained {args.train_epochs} epoch(s)" if args.train_epochs else "untrained"

    def run(protocols):
        return evaluate(score_function(trainer, device), data, "valid", config.model.max_len,
                        batch_size=args.eval_batch_size, device=device, protocols=protocols)

    for protocols in PROTOCOL_SETS.values():          # warm-up: one untimed run of each
        run(protocols)
    times: dict[str, list[float]] = {label: [] for label in PROTOCOL_SETS}
    metrics: dict[str, dict] = {}
    for _ in range(args.repeats):                      # round-robin, so load drift hits all alike
        for label, protocols in PROTOCOL_SETS.items():
            seconds, metrics[label] = C.timed(lambda p=protocols: run(p), device)
            times[label].append(seconds)
    rows = []
    for label in PROTOCOL_SETS:
        seconds = statistics.median(times[label])
        ndcg = metrics[label].get("ndcg_10", metrics[label].get("sampled_ndcg_10"))
        rows.append([name, emb_label, data.n_users, data.n_items, args.backbone, state, label,
                     round(seconds, 3), round(seconds / data.n_users * 10_000, 3), round(float(ndcg), 4)])
        print(f"  {name} {label}: {seconds:.3f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load, device = C.start(args)
    if device is None:
        return 2
    rows = []
    for name in args.dataset_list:
        rows.extend(time_dataset(name, args))
    notes = [f"split: valid; max_len {args.max_len}; eval batch {args.eval_batch_size}; "
             f"median of {args.repeats} (protocols timed round-robin) after 1 warm-up each; time includes the item views (all_item_views)",
             "NDCG@10 column: full ranking, or sampled-100 for the sampled-only row"]
    print(C.header("Evaluation time, all users", device, notes, load))
    print(C.markdown_table(["dataset", "item embeddings", "users", "items", "backbone", "model", "protocol",
                            "seconds", "s per 10k users", "NDCG@10"], rows))
    print("Goal: < 1 s per 10k users on one GPU (full + sampled).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
