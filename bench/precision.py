"""Training batches in float32 against bfloat16 autocast, and the reference arithmetic against
the lean one; inference batches of several sizes: what each setting of how the same model is
computed (train.precision, model.arithmetic, train.eval_batch_size) buys.

CPUs with AMX (this machine's Intel Xeon) and every recent GPU multiply bfloat16 matrices several
times faster than float32. A training batch of this project's models is small matrices (hidden 64),
softmax over the catalogue and many elementwise ops, so the question is what a whole batch gains,
forward, backward and Adam step included. Each precision trains its own freshly built trainer (same
seed, same batches) for `--batches` batches after one warm-up batch; CPU seconds on CPU (robust to a
shared machine), wall seconds after a device sync on a GPU. Also printed: the matmul throughput of
each precision at 1024 x 1024, the ceiling a batch could approach. model.arithmetic=lean computes
the same model with fewer operations (the adapter folded into one matrix, the softmax over the real
items only), so its losses differ from the reference's by float rounding only (every mode draws
the same dropout masks). The second table times one refresh of the epoch teachers and one
full-ranking validation per train.eval_batch_size: on a CPU a smaller batch keeps its
activations in cache.

    python bench/precision.py --datasets amazon-scientific,amazon-beauty --backbones sasrec,gru4rec,bert4rec
    python bench/precision.py --smoke      # seconds: ml-100k, sasrec, a tiny model (CI)
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import _common as C

#: (train.precision, model.arithmetic), the first the baseline of every speed-up
MODES = (("fp32", "reference"), ("fp32", "lean"), ("bf16", "reference"), ("bf16", "lean"))
STUDY = ["model.variant=llmesr", "model.hidden_size=64", "model.num_blocks=2", "model.num_heads=1",
         "model.max_len=20", "model.teacher=epoch", "model.loss=ce", "model.alpha=0.1", "train.batch_size=256"]
SMOKE = dict(datasets="ml-100k", backbones="sasrec", batches=2,
             extra=["model.hidden_size=16", "model.adapter_hidden=32", "model.num_blocks=1", "model.max_len=10"])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="amazon-scientific")
    p.add_argument("--backbones", default=",".join(C.BACKBONES))
    p.add_argument("--batches", type=int, default=12, help="timed training batches per mode")
    p.add_argument("--inference-sizes", default="1024,256", help="train.eval_batch_size values to time")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.set_defaults(extra=[])
    args = C.parse_with_smoke(p, SMOKE)
    if args.batches < 1:
        p.error(f"--batches: got {args.batches}; allowed: >= 1")
    try:
        args.inference_sizes = [int(v) for v in args.inference_sizes.split(",")]
    except ValueError:
        p.error(f"--inference-sizes: got {args.inference_sizes!r}; allowed: comma-separated ints >= 1")
    if min(args.inference_sizes) < 1:
        p.error(f"--inference-sizes: got {args.inference_sizes}; allowed: ints >= 1")
    return args


def seconds(fn: Callable[[], Any], device: str) -> float:
    """Seconds of `fn` on the benchmark clock (CPU seconds on CPU, synchronized wall on a GPU)."""
    clock = C.process_clock(device)
    C.synchronize(device)
    start = clock()
    fn()
    C.synchronize(device)
    return clock() - start


def train_batches(config: Any, data: Any, mode: tuple[str, str], n_batches: int, device: str) -> tuple[float, float]:
    """Seconds per training batch under `mode` = (precision, arithmetic), one warm-up batch
    untimed, and the last loss."""
    import torch

    from model.device import rng_devices
    from model.pipeline import build_trainer

    precision, arithmetic = mode
    trainer = build_trainer(config.replace({"train.precision": precision, "model.arithmetic": arithmetic}), data)
    if trainer.model.distils:
        trainer._refresh_teachers()
    trainer.model.train()
    rows = [r for r, _ in zip(trainer.batches.epoch(config.train.batch_size), range(n_batches + 1))]
    batches = [trainer.batches.batch(r) for r in rows]
    losses: list[float] = []

    def step(batch: Any) -> None:
        with trainer._arithmetic():                 # the trainer's own autocast rule
            loss, _ = trainer.model.calculate_loss(batch)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))

    timed = batches[1:] or batches
    with torch.random.fork_rng(devices=rng_devices(torch.device(device))):    # every mode the same dropout masks
        torch.manual_seed(config.train.seed)
        step(batches[0])
        per_batch = seconds(lambda: [step(b) for b in timed], device) / len(timed)
    return per_batch, losses[-1]


def inference_seconds(config: Any, data: Any, size: int, device: str) -> tuple[float, float, Any]:
    """Seconds of one teacher refresh and one validation with train.eval_batch_size `size`
    (lean arithmetic), and the teachers."""
    from model.pipeline import build_trainer

    trainer = build_trainer(config.replace({"model.arithmetic": "lean", "train.eval_batch_size": size}), data)
    teachers = seconds(trainer._refresh_teachers, device)
    return teachers, seconds(lambda: trainer.evaluate("valid"), device), trainer.batches.teacher_reps


def inference_row(dataset: str, config: Any, data: Any, sizes: list[int], device: str) -> list[Any]:
    """Teachers and validation per inference batch size; whether the teachers came out bit-equal."""
    import torch

    timed = [inference_seconds(config, data, size, device) for size in sizes]
    cells = [f"{teachers:.2f} / {valid:.2f}" for teachers, valid, _ in timed]
    equal = all(torch.equal(reps, timed[0][2]) for _, _, reps in timed)
    return [dataset, config.model.backbone, *cells, "yes" if equal else "no (float rounding)"]


def rows(args: argparse.Namespace, device: str) -> tuple[list[list[Any]], list[list[Any]]]:
    """The training table and the inference table."""
    training, inference = [], []
    for dataset in C.parse_list(args.datasets, C.DATASETS, "--datasets"):
        data_sets, _ = C.data_overrides(dataset, args.data_root, args.cache_dir)
        for backbone in C.parse_list(args.backbones, C.BACKBONES, "--backbones"):
            config = C.make_config([*data_sets, *STUDY, *args.extra, f"model.backbone={backbone}",
                                    f"train.device={device}"])
            data = C.prepare(config)
            timed = [train_batches(config, data, m, args.batches, device) for m in MODES]
            base = timed[0][0]
            training.append([dataset, backbone, *(f"{1000 * s:.0f} ({base / s:.2f}x)" for s, _ in timed),
                             " / ".join(f"{loss:.4f}" for _, loss in timed)])
            inference.append(inference_row(dataset, config, data, args.inference_sizes, device))
    return training, inference


def main() -> None:
    args = parse_args()
    load, device = C.start_or_exit(args)
    peaks = {precision: C.matmul_gflops(device, bf16=precision == "bf16") for precision in ("fp32", "bf16")}
    unit = "CPU ms" if device == "cpu" else "ms"
    print(C.header("Training batches: float32 against bfloat16 autocast, reference against lean arithmetic", device,
                   [f"LLM-ESR at the study's settings ({' '.join(STUDY + list(args.extra))}), "
                    f"{args.batches} timed batches per mode after one untimed; in brackets the speed-up "
                    f"over fp32 reference",
                    f"matmul 1024 x 1024: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s "
                    f"({peaks['bf16'] / peaks['fp32']:.1f}x)"], load))
    training, inference = rows(args, device)
    print(C.markdown_table(["dataset", "backbone", *(f"{p} {a} {unit}/batch" for p, a in MODES),
                            "last loss, same order"], training))
    print(f"\nInference batches (train.eval_batch_size): one refresh of the teachers / one full-ranking "
          f"validation, lean arithmetic, {unit.split()[0]} s\n")
    print(C.markdown_table(["dataset", "backbone", *(f"{size} users" for size in args.inference_sizes),
                            "teachers bit-equal"], inference))


if __name__ == "__main__":
    main()
