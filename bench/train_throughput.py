"""Training throughput (sequences per second) of our hot loop against a seed-style loop.

The reference loop is written the way the LLM-ESR seed code trains: a per-sample torch Dataset
read through a DataLoader, negatives drawn in __getitem__ with Python's random (avoiding the
user's items), every sequence padded to max_len, the adapter applied per token, autograd anomaly
detection on, and the self-distillation teacher computed WITH gradients. Both loops train the
same model class on the same data and config (LLM-ESR: both views, cross-attention, alpha 0.1,
BCE with one negative); each times a fixed number of batches after one warm-up batch.

    python bench/train_throughput.py --dataset amazon-scientific --batches 10 --device cpu
    python bench/train_throughput.py --smoke        # seconds: ml-100k, tiny model, 2 batches (CI)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.prepare import prepare_dataset  # noqa: E402
from datasets.config import DataConfig  # noqa: E402
from model.batches import TrainBatches  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.device import resolve_device  # noqa: E402
from model.llmesr import build_model  # noqa: E402
from runtime import set_torch_threads  # noqa: E402


class SeedStyleDataset(torch.utils.data.Dataset):
    """One user per __getitem__: padded sequence, shifted targets, negatives, teachers' sequences."""

    def __init__(self, data, max_len: int, n_neg: int, cloze: bool, mask_prob: float) -> None:
        self.data, self.max_len, self.n_neg = data, max_len, n_neg
        self.cloze, self.mask_prob = cloze, mask_prob
        self.users = [u for u in range(data.n_users) if len(data.sequence(u)) >= 4]

    def _padded(self, items: list[int]) -> list[int]:
        items = items[-self.max_len:]
        return [0] * (self.max_len - len(items)) + items

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int):
        user = self.users[index]
        train = [int(i) for i in self.data.sequence(user)[:-2]]
        seen = set(train)
        if self.cloze:
            seq = self._padded(train)
            inputs, targets = [], []
            for item in seq:
                if item and random.random() < self.mask_prob:
                    inputs.append(self.data.n_items + 1)
                    targets.append(item)
                else:
                    inputs.append(item)
                    targets.append(0)
        else:
            inputs, targets = self._padded(train[:-1]), self._padded(train[1:])
        negs = []
        for target in targets:
            row = []
            for _ in range(self.n_neg):
                neg = random.randint(1, self.data.n_items)
                while neg in seen:
                    neg = random.randint(1, self.data.n_items)
                row.append(neg if target else 0)
            negs.append(row)
        teachers = [self._padded([int(i) for i in self.data.sequence(int(s))[:-2]])
                    for s in self.data.similar_users[user]]
        return (torch.tensor(inputs), torch.tensor(targets), torch.tensor(negs), torch.tensor(teachers))


def seed_style_loss(model, cfg: ModelConfig, inputs, targets, negs, teachers) -> torch.Tensor:
    def states_of(seq):
        co, sem = model.item_views(seq)                  # adapter per token, as in the seed
        return model.encode_views(co, sem, seq > 0)

    states = states_of(inputs)
    pos = (states * model.join(*model.item_views(targets))).sum(-1)
    neg = (states.unsqueeze(2) * model.join(*model.item_views(negs))).sum(-1)
    where = targets > 0
    loss = F.binary_cross_entropy_with_logits(pos[where], torch.ones_like(pos[where]))
    loss = loss + F.binary_cross_entropy_with_logits(neg[where], torch.zeros_like(neg[where]))
    if cfg.alpha > 0:
        b, k, length = teachers.shape
        teacher_seq = model.inference_inputs(teachers.view(b * k, length))
        teacher = states_of(teacher_seq)[:, -1].view(b, k, -1).mean(1)    # WITH gradients
        loss = loss + cfg.alpha * F.mse_loss(states[:, -1], teacher)
    return loss


def time_ours(model, data, cfg, device, batch_size: int, n_batches: int, seed: int) -> float:
    batches = TrainBatches(data, cfg, device, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = batches.epoch(batch_size)
    done, start = 0, 0.0
    for i in range(n_batches + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        users = next(order)
        loss, _ = model.calculate_loss(batches.batch(users))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += users.shape[0] if i else 0
    _sync(device)
    return done / (time.perf_counter() - start)


def time_reference(model, data, cfg, device, batch_size: int, n_batches: int) -> float:
    dataset = SeedStyleDataset(data, cfg.max_len, cfg.n_negatives, model.objective == "cloze", cfg.mask_prob)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, start = 0, 0.0
    with torch.autograd.set_detect_anomaly(True):
        for i, batch in enumerate(loader):
            if i == 1:
                _sync(device)
                start = time.perf_counter()
            if i == n_batches + 1:
                break
            batch = [t.to(device) for t in batch]
            loss = seed_style_loss(model, cfg, *batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += batch[0].shape[0] if i else 0
    _sync(device)
    return done / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-scientific", choices=("amazon-scientific", "ml-100k"))
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "test"), help="shared with the tests")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per loop")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--backbones", default="sasrec,bert4rec,gru4rec")
    parser.add_argument("--smoke", action="store_true", help="ml-100k, tiny model, 2 batches (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset, args.batches, args.batch_size, args.max_len, args.hidden = "ml-100k", 2, 32, 20, 16
    set_torch_threads(args.threads)
    device = resolve_device(args.device)
    data = prepare_dataset(DataConfig(name=args.dataset, data_root=args.data_root, cache_dir=args.cache_dir),
                           progress=False)
    print(f"{args.dataset}: {data.n_users} users, {data.n_items} items; device {device}; batch "
          f"{args.batch_size}, max_len {args.max_len}, hidden {args.hidden}, {args.batches} timed batches")
    print(f"{'backbone':<10} {'ours seq/s':>12} {'reference seq/s':>16} {'speed-up':>9}")
    for name in args.backbones.split(","):
        cfg = ModelConfig(backbone=name, hidden_size=args.hidden, max_len=args.max_len, gamma=0.0)
        rates = []
        for timer in ("ours", "reference"):
            torch.manual_seed(0)
            random.seed(0)
            np.random.seed(0)
            model = build_model(cfg, data).to(device).train()
            if timer == "ours":
                rates.append(time_ours(model, data, cfg, device, args.batch_size, args.batches, 0))
            else:
                rates.append(time_reference(model, data, cfg, device, args.batch_size, args.batches))
        print(f"{name:<10} {rates[0]:>12.1f} {rates[1]:>16.1f} {rates[0] / rates[1]:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
