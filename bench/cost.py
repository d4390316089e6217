"""What an epoch costs, where its floating-point work goes, and how close it runs to this machine.

For each dataset x backbone x variant (plain, LLM-ESR, ICC) at the study's settings: seconds per
training epoch and per full-ranking evaluation (validation split, history masked), the epoch's
floating-point work counted from the shapes of every matmul, attention and convolution torch runs
(`torch.utils.flop_counter.FlopCounterMode`), the part of it that is the logits over the catalogue
(counted from the shapes of the logits' matmul, forward and backward), and the achieved GFLOP/s as
a fraction of this machine's matmul peak, measured in the same run (a float32 matmul at the same
thread count). `--profile` adds a torch.profiler breakdown of one training epoch of the first
configuration by part (item views, encoders, rec loss with the logits, teachers, ICC, backward,
optimizer) and its ten heaviest operators.

Costs scale with the number of training windows, so `--users N` times the first N users and scales
the seconds and FLOPs to the whole dataset (each table row says so); `--users 0` runs everything.

    python bench/cost.py --datasets ml-100k,amazon-scientific,amazon-beauty --users 2000
    python bench/cost.py --datasets amazon-beauty --backbones sasrec --variants llmesr --users 2000 --profile
    python bench/cost.py --smoke      # seconds: ml-100k, 100 users, sasrec, plain + icc (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any, Callable, Iterator

import _common as C

SMOKE = dict(datasets="ml-100k", backbones="sasrec", variants="plain,icc", users=100, profile=True)
VARIANTS = {
    "plain": ["model.variant=plain"],
    "llmesr": ["model.variant=llmesr"],
    "icc": ["model.variant=icc", "model.icc_share=0.05", "clusters.method=kmeans", "clusters.n_clusters=64"],
}
STUDY = ["model.hidden_size=64", "model.num_blocks=2", "model.num_heads=1", "model.dropout=0.2",
         "model.loss=ce", "model.teacher=epoch", "train.batch_size=256",
         "clusters.silhouette_sample=0", "clusters.dim=8"]
MAX_LEN = {"ml-100k": 50}            # the peer comparison's; the study's max_len 20 elsewhere


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ml-100k,amazon-scientific,amazon-beauty")
    p.add_argument("--backbones", default=",".join(C.BACKBONES))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--users", type=int, default=2000, help="time the first N users and scale (0 = all)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", action="store_true", help="profile one epoch of the first configuration")
    return C.parse_with_smoke(p, SMOKE)


# ---- counting ------------------------------------------------------------------------------
class LogitsCounter:
    """Counts the FLOPs of the logits over the catalogue from the shapes of `states @ table.T`
    in the recommendation loss: 2 P R N forward, twice that backward (grads of both operands)."""

    def __init__(self) -> None:
        self.flops = 0

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        from model import losses

        original = losses.rec_ce

        def counted(states, targets, table, mask_id, real_only=False):
            columns = mask_id - 1 if real_only else table.shape[0]
            self.flops += 3 * 2 * states.shape[0] * states.shape[1] * columns
            return original(states, targets, table, mask_id, real_only=real_only)

        losses.rec_ce = counted
        try:
            yield
        finally:
            losses.rec_ce = original


def flop_count(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


# ---- one configuration ---------------------------------------------------------------------
def measure(config: Any, data: Any, scale: float) -> dict[str, float]:
    """Seconds and FLOPs of one training epoch and one validation evaluation, scaled to the
    whole dataset. Epoch 1 is timed; epoch 2 is counted (the counter slows what it watches)."""
    from model.pipeline import build_trainer

    trainer = build_trainer(config, data)
    eval_cpu, eval_wall = cpu_and_wall(lambda: trainer.evaluate("valid"))
    epoch_cpu, epoch_wall = cpu_and_wall(trainer.train_epoch)      # includes one validation
    logits = LogitsCounter()
    with logits.watching():
        epoch_flops = flop_count(trainer.train_epoch)
    eval_flops = flop_count(lambda: trainer.evaluate("valid"))
    train_flops = epoch_flops - eval_flops
    train_cpu = max(epoch_cpu - eval_cpu, 1e-9)
    return {"train_cpu": train_cpu * scale, "train_wall": (epoch_wall - eval_wall) * scale,
            "eval_cpu": eval_cpu * scale, "train_gflop": train_flops * scale / 1e9,
            "logits_share": logits.flops / train_flops if train_flops else 0.0,
            "eval_gflop": eval_flops * scale / 1e9, "train_gflops": train_flops / train_cpu / 1e9,
            "eval_gflops": eval_flops / max(eval_cpu, 1e-9) / 1e9}


def configs(args: argparse.Namespace, device: str) -> Iterator[tuple[str, str, str, Any]]:
    for dataset in C.parse_list(args.datasets, C.DATASETS, "--datasets"):
        data_sets, _ = C.data_overrides(dataset, args.data_root, args.cache_dir)
        for backbone in C.parse_list(args.backbones, C.BACKBONES, "--backbones"):
            for variant in C.parse_list(args.variants, tuple(VARIANTS), "--variants"):
                yield dataset, backbone, variant, C.make_config([
                    *data_sets, *STUDY, *VARIANTS[variant], f"model.backbone={backbone}",
                    f"model.max_len={MAX_LEN.get(dataset, 20)}", f"train.device={device}"])


# ---- profile -------------------------------------------------------------------------------
PARTS = {  # label -> (module path, attribute): the model's parts a training epoch goes through
    "item views (adapter)": ("model.llmesr", "LLMESR.all_item_views"),
    "encoders + cross-attention": ("model.llmesr", "LLMESR.encode_views"),
    "rec loss (logits over the catalogue)": ("model.llmesr", "LLMESR._rec_loss"),
    "teachers (once per epoch)": ("model.trainer", "Trainer._refresh_teachers"),
    "ICC term": ("model.icc", "ClusterConstraint.forward"),
}


@contextlib.contextmanager
def labelled_parts() -> Iterator[list[str]]:
    """Wrap each part in a profiler label (parts the code no longer has are listed as missing)."""
    import importlib

    import torch

    undo, missing = [], []
    for label, (module_name, path) in PARTS.items():
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            missing.append(label)
            continue

        def labelled(*a, _original=original, _label=label, **k):
            with torch.profiler.record_function(_label):
                return _original(*a, **k)

        setattr(owner, name, labelled)
        undo.append((owner, name, original))
    try:
        yield missing
    finally:
        for owner, name, original in undo:
            setattr(owner, name, original)


def profile_epoch(config: Any, data: Any) -> str:
    """Self CPU time of one training epoch by labelled part, then the ten heaviest operators."""
    from torch.profiler import ProfilerActivity, profile

    from model.pipeline import build_trainer

    trainer = build_trainer(config, data)
    with labelled_parts() as missing, profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_epoch()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    backward = sum(e.cpu_time_total for e in events if e.key.startswith("autograd::engine"))
    parts = [(e.key, e.cpu_time_total / 1e6, e.cpu_time_total / total) for e in events
             if e.key in PARTS or e.key.startswith("Optimizer.step")]
    parts.append(("backward (every part)", backward / 1e6, backward / total))
    parts.sort(key=lambda row: -row[1])
    ops = sorted((e for e in events if e.key not in PARTS and not e.key.startswith("autograd::engine")),
                 key=lambda e: -e.self_cpu_time_total)[:10]
    text = C.markdown_table(("part (inclusive: the teachers run the encoders)", "CPU s", "share of the epoch"),
                            [(k, s, f"{share:.1%}") for k, s, share in parts])
    text += "\n" + C.markdown_table(("operator (self)", "CPU s", "share of the epoch", "calls"),
                                    [(e.key, e.self_cpu_time_total / 1e6,
                                      f"{e.self_cpu_time_total / total:.1%}", e.count) for e in ops])
    if missing:
        text += f"\nparts not found in the code (not labelled): {', '.join(missing)}\n"
    return text


# ---- main ----------------------------------------------------------------------------------
def main() -> None:
    args = parse_args()
    load, device = C.start_or_exit(args)
    peak = C.matmul_gflops(device)
    rows, prepared, first = [], {}, None
    for dataset, backbone, variant, config in configs(args, device):
        if dataset not in prepared:
            full = C.prepare(config)
            subset = full.first_users(args.users) if 0 < args.users < full.n_users else full
            prepared[dataset] = (subset, full.n_users / subset.n_users, full.n_users)
        data, scale, n_users = prepared[dataset]
        first = first or (dataset, backbone, variant, config, data)
        m = measure(config, data, scale)
        rows.append((dataset, n_users, backbone, variant, m["train_cpu"], m["eval_cpu"],
                     m["train_gflop"], f"{m['logits_share']:.0%}", m["train_gflops"],
                     f"{m['train_gflops'] / peak:.1%}", m["eval_gflop"], m["eval_gflops"],
                     m["eval_cpu"] * 10000 / n_users))
    sizes = ", ".join(f"{d}: first {s.n_users} users scaled x{scale:.2f}" if scale > 1 else f"{d}: all users"
                      for d, (s, scale, _) in prepared.items())
    print(C.header("Cost of an epoch: seconds, FLOPs and the share of this machine's matmul peak", device, [
        "hidden 64, 2 blocks, 1 head, dropout 0.2, full-softmax CE, batch 256, teachers once per epoch, "
        "alpha 0.1; max_len 50 on ml-100k, 20 elsewhere; ICC: icc_share 0.05, KMeans 64",
        f"matmul peak measured in this run: {peak:.1f} GFLOP/s per CPU second (float32 1024^3, "
        f"{C.machine(device).split(', ')[-1]})",
        f"sizes: {sizes}; seconds are process CPU seconds, FLOPs counted by torch's FlopCounterMode",
    ], load))
    print(C.markdown_table(
        ("dataset", "users", "backbone", "variant", "train CPU s/epoch", "eval CPU s (valid)",
         "train GFLOP/epoch", "logits' share", "train GFLOP/s", "of peak", "eval GFLOP", "eval GFLOP/s",
         "eval CPU s per 10k users"), rows))
    if args.profile and first:
        dataset, backbone, variant, config, data = first
        print(f"\n#### Profile of one training epoch: {dataset}, {backbone}, {variant} ({data.n_users} users)\n")
        print(profile_epoch(config, data))


if __name__ == "__main__":
    main()
