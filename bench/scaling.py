"""How training cost grows with users, items and sequence length: seconds per epoch per backbone.

For each dataset x backbone: build the Trainer of the default (ICC) model at `--max-len`, run
`--epochs` epochs with `Trainer.train_epoch` and report the mean seconds per epoch split into
the training pass and the validation evaluation (timed inside the epoch), plus training
sequences per second. llmesr-yelp has no item text: it runs on a seeded random 1536-wide
embedding matrix and is labelled "random embeddings (timing only)"; its metrics mean nothing.

    .venv/bin/python bench/scaling.py                           # 3 datasets x 3 backbones, max_len 50
    .venv/bin/python bench/scaling.py --max-len 200 --device cuda
    .venv/bin/python bench/scaling.py --smoke                   # seconds: ml-100k, tiny model
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(C.DATASETS), help="comma-separated: " + ", ".join(C.DATASETS))
    p.add_argument("--backbones", default=",".join(C.BACKBONES))
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default; 1 is fastest on a shared machine)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override, e.g. model.hidden_size=32 (repeatable)")
    p.add_argument("--smoke", action="store_true", help="ml-100k, sasrec + gru4rec, tiny model, 1 epoch")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.backbones, args.max_len, args.epochs = "ml-100k", "sasrec,gru4rec", 10, 1
        args.set = ["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1", *args.set]
    if args.max_len < 2 or args.epochs < 1:
        p.error("--max-len must be >= 2 and --epochs >= 1")
    args.dataset_list = C.parse_list(args.datasets, C.DATASETS, "--datasets")
    args.backbone_list = C.parse_list(args.backbones, C.BACKBONES, "--backbones")
    return args


def _timed_evaluate(trainer, spent: list[float]):
    """Wrap the trainer's evaluation so the validation time inside train_epoch is measured exactly."""
    original = trainer._evaluate

    def evaluate(split, keep_users=False):
        C.synchronize(trainer.device)
        start = time.perf_counter()
        out = original(split, keep_users=keep_users)
        C.synchronize(trainer.device)
        spent.append(time.perf_counter() - start)
        return out

    trainer._evaluate = evaluate


def run_one(data, config, emb_label: str, args: argparse.Namespace) -> list:
    from model.pipeline import build_trainer

    trainer = build_trainer(config, data)
    eval_times: list[float] = []
    _timed_evaluate(trainer, eval_times)
    epoch_times = []
    for _ in range(args.epochs):
        C.synchronize(trainer.device)
        start = time.perf_counter()
        report = trainer.train_epoch()
        C.synchronize(trainer.device)
        epoch_times.append(time.perf_counter() - start)
    epoch = sum(epoch_times) / len(epoch_times)
    valid = sum(eval_times) / len(eval_times)
    train = epoch - valid
    train_users = data.n_users              # one training sequence per user per epoch
    meta = data.meta
    return [data.name if emb_label != C.RANDOM_EMB_LABEL else "llmesr-yelp", emb_label,
            config.model.backbone, data.n_users, data.n_items, data.n_interactions, config.model.max_len,
            round(float(meta.get("train_interactions", 0)) / max(data.n_users, 1), 1),
            round(epoch, 2), round(train, 2), round(valid, 2), round(train_users / train, 1),
            round(float(report.valid["ndcg_10"]), 4)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load, device = C.start(args)
    if device is None:
        return 2
    rows = []
    for name in args.dataset_list:
        overrides, emb_label = C.data_overrides(name, args.data_root, args.cache_dir)
        data = None
        for backbone in args.backbone_list:
            config = C.make_config([*overrides, f"model.backbone={backbone}", f"model.max_len={args.max_len}",
                                    f"train.epochs={args.epochs}", "train.patience=0",
                                    f"train.device={args.device}", f"train.num_threads={args.threads}",
                                    *args.set])
            data = data or C.prepare(config)
            rows.append(run_one(data, config, emb_label, args))
            print(f"  {name} {backbone}: {rows[-1][8]} s/epoch", file=sys.stderr, flush=True)
    m = C.make_config(args.set).model
    notes = [f"model: default ICC LLM-ESR (gamma {m.gamma}, alpha {m.alpha}), hidden {m.hidden_size}, "
             f"{m.num_blocks} blocks, adapter {m.adapter_hidden}; batch {C.make_config(args.set).train.batch_size}; "
             f"mean of {args.epochs} epoch(s)",
             "epoch s = train s + valid eval s (full ranking + sampled-100, all users); "
             "train seqs/s = users / train s; NDCG@10 = last epoch's validation (full ranking)"]
    if args.set:
        notes.append("overrides: " + " ".join(args.set))
    print(C.header("Scaling: seconds per epoch", device, notes, load))
    print(C.markdown_table(["dataset", "item embeddings", "backbone", "users", "items", "interactions",
                            "max_len", "mean train len", "epoch s", "train s", "valid eval s",
                            "train seqs/s", "NDCG@10"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
