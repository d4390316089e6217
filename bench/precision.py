"""Training batches in float32 against bfloat16 autocast, and the reference arithmetic against
the lean one: which of the two settings (train.precision, model.arithmetic) is worth what?

CPUs with AMX (this machine's Intel Xeon) and every recent GPU multiply bfloat16 matrices several
times faster than float32. A training batch of this project's models is small matrices (hidden 64),
softmax over the catalogue and many elementwise ops, so the question is what a whole batch gains,
forward, backward and Adam step included. Each precision trains its own freshly built trainer (same
seed, same batches) for `--batches` batches after one warm-up batch; CPU seconds on CPU (robust to a
shared machine), wall seconds after a device sync on a GPU. Also printed: the matmul throughput of
each precision at 1024 x 1024, the ceiling a batch could approach. model.arithmetic=lean computes
the same model with fewer operations (the adapter folded into one matrix, the softmax over the real
items only), so its losses differ from the reference's by float rounding only (every mode draws
the same dropout masks).

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
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.set_defaults(extra=[])
    args = C.parse_with_smoke(p, SMOKE)
    if args.batches < 1:
        p.error(f"--batches: got {args.batches}; allowed: >= 1")
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
    trainer = build_trainer(config.replace({"model.arithmetic": arithmetic}), data)
    if trainer.model.distils:
        trainer._refresh_teachers()
    trainer.model.train()
    rows = [r for r, _ in zip(trainer.batches.epoch(config.train.batch_size), range(n_batches + 1))]
    batches = [trainer.batches.batch(r) for r in rows]
    losses: list[float] = []

    def step(batch: Any) -> None:
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
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


def rows(args: argparse.Namespace, device: str) -> list[list[Any]]:
    table = []
    for dataset in C.parse_list(args.datasets, C.DATASETS, "--datasets"):
        data_sets, _ = C.data_overrides(dataset, args.data_root, args.cache_dir)
        for backbone in C.parse_list(args.backbones, C.BACKBONES, "--backbones"):
            config = C.make_config([*data_sets, *STUDY, *args.extra, f"model.backbone={backbone}",
                                    f"train.device={device}"])
            data = C.prepare(config)
            timed = [train_batches(config, data, m, args.batches, device) for m in MODES]
            base = timed[0][0]
            table.append([dataset, backbone, *(f"{1000 * s:.0f} ({base / s:.2f}x)" for s, _ in timed),
                          " / ".join(f"{loss:.4f}" for _, loss in timed)])
    return table


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
    print(C.markdown_table(["dataset", "backbone", *(f"{p} {a} {unit}/batch" for p, a in MODES),
                            "last loss, same order"], rows(args, device)))


if __name__ == "__main__":
    main()
