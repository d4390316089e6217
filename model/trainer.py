"""Training one configuration: epochs of training + validation, early stopping, best weights.

Everything needed to continue a run exactly (model, optimizer, best weights, every RNG) goes
through `state_dict`/`load_state_dict`, so a Ray Tune checkpoint resumed mid-run gives the
same numbers as the uninterrupted run, and a saved trial can be reproduced bit for bit on CPU.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from model.batches import TrainBatches
from model.config import EvalConfig, TrainConfig
from model.contract import SELECT_KEY, stops_after
from model.device import rng_devices, set_torch_rng_state, torch_rng_state
from model.llmesr import LLMESR, PARTS


@dataclass
class EpochReport:
    epoch: int                      # epochs completed (1-based)
    train_loss: float
    loss_parts: dict[str, float]    # each term's mean value, unweighted
    loss_shares: dict[str, float]   # each term's weighted share of the total loss
    valid: dict[str, float]
    best_epoch: int
    best_valid_ndcg_10: float       # validation NDCG@10 at the best epoch (picked by train.select_metric)
    seconds: float
    icc_gamma: float = 0.0          # the ICC weight in force (calibrated from icc_share, or gamma)
    best_valid: dict[str, float] = field(default_factory=dict)   # the best epoch's validation metrics


@dataclass
class TrainResult:
    valid: dict                     # the best epoch's validation metrics
    test: dict                      # test metrics of the best-validation weights
    best_epoch: int
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what the run adjusted (a capped max_len)
    also: dict = field(default_factory=dict)         # train.also_select: metric -> best_epoch, valid, test


def _cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


class Trainer:
    """The training loop of one run, given its parts by model.pipeline (which decides whether ICC
    is on and builds the model, its batches and the calibrated ICC weight): epochs, early
    stopping, best weights, checkpoints. `dropout_rng` is the torch RNG state the model was built
    under, right after building: the run's dropout stream starts there."""

    def __init__(self, model: LLMESR, batches: TrainBatches, train_cfg: TrainConfig, data, dropout_rng: dict,
                 eval_cfg: EvalConfig | None = None, notes: list[str] | None = None) -> None:
        self.model, self.batches, self.train_cfg, self.data = model, batches, train_cfg, data
        self.model_cfg = model.cfg
        self.eval_cfg = eval_cfg or EvalConfig()
        self.device = batches.device
        self.notes = list(notes or [])
        self._rng = dropout_rng
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        self.epoch = 0
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.best_valid: dict[str, float] = {}
        self.best_weights: dict | None = None
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self._next_teachers: torch.Tensor | None = None   # the last validation's user representations
        #: train.also_select: each metric's own best epoch so far (value, epoch, validation, weights)
        self.also_best: dict[str, dict] = {name: {"value": -math.inf, "epoch": 0, "valid": {}, "weights": None}
                                           for name in train_cfg.also_select}

    @property
    def icc_gamma(self) -> float:
        """The ICC weight of this run (0 without ICC)."""
        return self.model.icc.gamma if self.model.icc is not None else 0.0

    # ---- training ---------------------------------------------------------------------------
    def _train_pass(self) -> list[float]:
        """One pass over the training windows; returns [mean total, mean rec, sd, icc, cl].
        Dropout draws from this trainer's own saved torch RNG state, swapped in and out."""
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            set_torch_rng_state(self._rng, self.device)
            values = self._train_batches()
            self._rng = torch_rng_state(self.device)
        return values

    @property
    def _epoch_teachers(self) -> bool:
        """Whether self-distillation takes its teachers once per epoch (model.teacher epoch)."""
        return self.model_cfg.teacher == "epoch" and self.model.distils

    def _train_batches(self) -> list[float]:
        if self._epoch_teachers:
            self._set_teachers()
        self.model.train()
        sums = torch.zeros(1 + len(PARTS), device=self.device)
        n = 0
        for rows in self.batches.epoch(self.train_cfg.batch_size):
            with self._arithmetic():
                loss, parts = self.model.calculate_loss(self.batches.batch(rows))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sums += torch.stack([loss.detach(), *(parts[k].detach() for k in PARTS)])
            n += 1
        return (sums / max(n, 1)).tolist()          # the epoch's one host sync

    def _arithmetic(self) -> torch.autocast:
        """The training forward pass's arithmetic (train.precision): bfloat16 autocast, where the
        matrix products run in bf16 (the losses stay fp32, as autocast keeps them), or plain fp32."""
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16,
                              enabled=self.train_cfg.precision == "bf16")

    def _set_teachers(self) -> None:
        """The epoch's teachers: the user representations the last validation computed, which are
        the same numbers (the same weights, inputs and batches: a user's validation input is its
        newest window's last max_len items), else (the first epoch, after a resume) a refresh."""
        reps, self._next_teachers = self._next_teachers, None
        if reps is None:
            self._refresh_teachers()
        else:
            self.batches.teacher_reps = reps

    def _refresh_teachers(self) -> None:
        """model.teacher "epoch": every user's representation (its newest window) once, at the
        start of an epoch. Teachers then lag the weights by at most one epoch, for one forward pass
        over the users instead of K per trained window. Deterministic (eval mode), so resume stays
        exact. train.eval_batch_size users at a time, as an evaluation."""
        self.batches.teacher_reps = self.model.frozen_user_reps(self.batches.newest[:, 1:],
                                                                self.train_cfg.eval_batch_size)

    def train_epoch(self) -> EpochReport:
        start = time.perf_counter()
        values = self._train_pass()
        self.epoch += 1
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(
                f"non-finite loss at epoch {self.epoch} (mean total {values[0]}; parts "
                + ", ".join(f"{k}={v}" for k, v in zip(PARTS, values[1:]))
                + "): lower train.lr or check the inputs")
        valid, self._next_teachers = self._evaluate("valid", keep_users=self._epoch_teachers)
        metric = valid[self.train_cfg.select_metric]
        if metric > self.best_metric:
            self.best_metric, self.best_epoch, self.best_valid = metric, self.epoch, dict(valid)
            self.best_weights = _cpu_copy(self.model.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self._track_also(valid)
        seconds = time.perf_counter() - start
        self.elapsed += seconds
        parts = dict(zip(PARTS, values[1:]))
        score = self.best_valid.get(SELECT_KEY, self.best_metric)     # NDCG@10 at the chosen epoch
        report = EpochReport(self.epoch, values[0], parts, self.model.loss_shares(parts), valid,
                             self.best_epoch, score, seconds, self.icc_gamma, dict(self.best_valid))
        self.history.append(asdict(report))
        return report

    def _track_also(self, valid: dict[str, float]) -> None:
        """Keep each train.also_select metric's best epoch and its weights (its first maximum)."""
        for name, best in self.also_best.items():
            if valid[name] > best["value"]:
                best.update(value=valid[name], epoch=self.epoch, valid=dict(valid),
                            weights=_cpu_copy(self.model.state_dict()))

    def should_stop(self) -> bool:
        return stops_after(self.epoch, self.bad_epochs, self.train_cfg.epochs, self.train_cfg.patience)

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        """Evaluator metrics of the current weights on `split` ("valid" or "test")."""
        return self._evaluate(split)[0]

    def _evaluate(self, split: str, keep_users: bool = False) -> tuple[dict[str, float], torch.Tensor | None]:
        """evaluate, and with `keep_users` every user's representation it scored with, in user order."""
        from model.evaluate import evaluate

        model = self.model
        was_training = model.training
        model.eval()
        kept: list[torch.Tensor] = []
        try:
            with torch.no_grad():
                views = model.all_item_views()    # item representations once per evaluation

                def score_fn(users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
                    with torch.no_grad():
                        reps = model.user_repr(inputs.to(self.device), views)
                        if keep_users:
                            kept.append(reps)
                        return model.score_users(reps, views)

                metrics = evaluate(score_fn, self.data, split, self.model_cfg.max_len,
                                   batch_size=self.train_cfg.eval_batch_size, device=str(self.device),
                                   repeats=self.eval_cfg.repeats)
                return metrics, (torch.cat(kept) if keep_users else None)
        finally:
            model.train(was_training)

    def test(self, weights: dict | None = None) -> dict[str, float]:
        """Test metrics with `weights` (the best-validation weights by default; the current ones if
        there are none yet); the current weights are put back after."""
        weights = self.best_weights if weights is None else weights
        if weights is None:
            return self.evaluate("test")
        current = _cpu_copy(self.model.state_dict())
        self.model.load_state_dict(weights)
        try:
            return self.evaluate("test")
        finally:
            self.model.load_state_dict(current)

    def test_also(self) -> dict[str, dict]:
        """Each train.also_select metric's best epoch, its validation and its weights' test metrics."""
        return {name: {"best_epoch": best["epoch"], "valid": dict(best["valid"]), "test": self.test(best["weights"])}
                for name, best in self.also_best.items() if best["weights"] is not None}

    def fit(self, on_epoch: Callable[[EpochReport], None] | None = None) -> TrainResult:
        while not self.should_stop():
            report = self.train_epoch()
            if on_epoch is not None:
                on_epoch(report)
        start = time.perf_counter()
        test, also = self.test(), self.test_also()
        return TrainResult(valid=dict(self.best_valid), test=test, best_epoch=self.best_epoch,
                           epochs=self.epoch, seconds=self.elapsed + time.perf_counter() - start,
                           history=list(self.history), notes=list(self.notes), also=also)

    # ---- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {**self._rng, "batches": self.batches.rng_state()}
        return {
            "model": _cpu_copy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "epoch": self.epoch, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
            "best_valid": dict(self.best_valid), "best_weights": self.best_weights,
            "bad_epochs": self.bad_epochs, "elapsed": self.elapsed,
            "history": copy.deepcopy(self.history), "rng": rng, "also_best": copy.deepcopy(self.also_best),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best_metric = state["epoch"], state["best_metric"]
        self.best_epoch, self.best_valid = state["best_epoch"], dict(state["best_valid"])
        self.best_weights = state["best_weights"]
        self.bad_epochs, self.elapsed = state["bad_epochs"], state["elapsed"]
        self.history = copy.deepcopy(state["history"])
        self.also_best = copy.deepcopy(state.get("also_best", self.also_best))   # none in older checkpoints
        self._next_teachers = None                  # computed by other weights: refreshed instead
        rng = state["rng"]
        self._rng = {k: v.clone() for k, v in rng.items() if k in ("torch", "cuda")}
        self.batches.set_rng_state(rng["batches"])
