"""The item-cluster constraint (ICC): every rule about it, its loss term and its weight, here.

ICC pulls each constrained item's collaborative (ID) embedding towards its cluster's center:
loss_icc = mean over the batch's distinct constrained items of ||E_co[i] - target[i]||^2, weighted
by gamma. The weight is given either directly (`model.gamma`) or as the share of the training loss
the term should carry (`model.icc_share`): then gamma is calibrated once, at initialisation, on
seeded training batches, and stays fixed for the run, so the method is unchanged and a run
reproduces exactly. Whether a run uses ICC is decided by `icc_on` alone; the search space, the
pipeline, the study's control and `reproduce` all ask it. In a model the term is the
sub-module `model.icc` (a ClusterConstraint): its targets, its weight and its calibration.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from model import losses
from settings import ConfigError

#: the two ways to weight the term; at most one is nonzero
WEIGHTS = ("gamma", "icc_share")
#: variants that switch ICC off whatever the weights say (model.config.VARIANT_SWITCHES fixes them to 0)
OFF_VARIANTS = ("plain", "llmesr")
#: the flat search parameters that shape the clustering: they matter only where ICC is on
CLUSTER_PARAMETERS = ("cluster_method", "n_clusters", "min_cluster_size", "min_samples")
#: the clustering parameters each method reads (the others change nothing under it)
METHOD_PARAMETERS = {"kmeans": ("n_clusters",), "hdbscan": ("min_cluster_size", "min_samples")}
#: training batches measured to calibrate gamma from icc_share
CALIBRATION_BATCHES = 4


def _get(model: Any, key: str, default: Any = 0.0) -> Any:
    return model.get(key, default) if isinstance(model, Mapping) else getattr(model, key, default)


def icc_on(model: Any) -> bool:
    """Whether a model config (a ModelConfig, a saved `model:` dict or a trial's flat values)
    uses ICC: not switched off by its variant, and a positive gamma or icc_share."""
    if _get(model, "variant", "custom") in OFF_VARIANTS:
        return False
    return _positive(_get(model, "gamma")) or _positive(_get(model, "icc_share"))


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def check_weights(model: Mapping[str, Any], prefix: str = "model") -> dict[str, Any]:
    """The raw `model:` section with ICC's weight rules applied (before typing):
    icc_share and a nonzero gamma exclude each other; with icc_share > 0 an unwritten gamma means
    "calibrated" and is stored as 0; variant icc needs one of the two above 0."""
    out = dict(model)
    share, gamma = out.get("icc_share", 0.0), out.get("gamma")
    if _positive(share):
        if _positive(gamma):
            raise ConfigError(f"{prefix}.icc_share: got {share!r} with {prefix}.gamma {gamma!r}; allowed: "
                              f"one of the two (icc_share calibrates gamma); set {prefix}.gamma=0 or drop it")
        if gamma is None:
            out["gamma"] = 0.0
    if out.get("variant") == "icc" and not _positive(share) and not _positive(out.get("gamma", 0.1)):
        raise ConfigError(f"{prefix}.gamma: got {out.get('gamma')!r}, but {prefix}.variant 'icc' needs "
                          f"gamma > 0 or icc_share > 0; use variant llmesr for no constraint")
    return out


def drop_replaced_weight(model: Mapping[str, Any], written: set[str]) -> dict[str, Any]:
    """A lower-priority `model:` section (a file under `--set`, a config under `replace`) after a
    higher-priority source wrote one ICC weight and not the other: writing icc_share makes it the
    weight (gamma 0: calibrated, or off with share 0), writing gamma drops an older icc_share,
    so the two never clash by accident."""
    out = dict(model)
    if "icc_share" in written and "gamma" not in written:
        out["gamma"] = 0.0
    if "gamma" in written and "icc_share" not in written:
        out.pop("icc_share", None)
    return out


def without_icc(config: Any) -> Any:
    """The same root Config with the constraint switched off and nothing else changed: the
    control of an ICC run (variant icc becomes llmesr, the weights 0)."""
    changes: dict[str, Any] = {"model.gamma": 0.0, "model.icc_share": 0.0}
    if config.model.variant == "icc":
        changes["model.variant"] = "llmesr"
    return config.replace(changes)


def gamma_for_share(share: float, rest: float, term: float) -> float:
    """The gamma that makes gamma * term carry `share` of rest + gamma * term."""
    if not 0 < share < 1:
        raise ValueError(f"model.icc_share: got {share!r}; allowed: 0 < share < 1")
    if not (math.isfinite(rest) and math.isfinite(term)) or rest <= 0 or term <= 0:
        raise FloatingPointError(
            f"model.icc_share: cannot calibrate gamma (rest of the loss {rest!r}, ICC term {term!r} on "
            f"the first training batches; both must be positive and finite): the clustering constrains "
            f"no item of those batches, or the embeddings already sit on their centers; use model.gamma")
    return share / (1.0 - share) * rest / term


class ClusterConstraint(nn.Module):
    """The ICC term of one run: each item's target (its cluster center in the collaborative space)
    and whether it is constrained, as buffers (rebuilt from the cluster artifact, so kept out of
    checkpoints), the weight gamma, and the clustering's quality (cluster_prep.quality: how
    lopsided it is), which a trial reports beside its score."""

    def __init__(self, item_targets: np.ndarray, constrained: np.ndarray, gamma: float,
                 quality: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.register_buffer("targets", torch.from_numpy(np.asarray(item_targets, np.float32)), persistent=False)
        self.register_buffer("constrained", torch.from_numpy(np.asarray(constrained, bool)), persistent=False)
        self.gamma = float(gamma)
        self.quality = dict(quality or {})

    def forward(self, id_weight: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Unweighted loss_icc over the items marked `present` (bool [n_items + 2])."""
        return losses.icc_loss(id_weight, present, self.targets, self.constrained)

    def calibrate(self, share: float, parts: dict[str, float], weights: dict[str, float]) -> float:
        """Set gamma so that the term carries `share` of the loss whose mean unweighted `parts`
        were measured at initialisation (mean_parts_at_init) under the model's other `weights`."""
        rest = parts["rec"] + weights["sd"] * parts["sd"] + weights["cl"] * parts["cl"]
        self.gamma = gamma_for_share(share, rest, parts["icc"])
        return self.gamma


def calibrate_share(model: nn.Module, batches: Any, share: float, batch_size: int, seed: int) -> str | None:
    """Give `model.icc` the gamma at which ICC carries `share` of the loss on the first seeded
    training batches at initialisation: deterministic, so a resumed or reproduced run gets the
    same gamma without storing it. A clustering that constrains no item makes the term 0 whatever
    its weight: gamma 0, and the note saying so is returned (else None)."""
    if not bool(model.icc.constrained.any()):
        model.icc.gamma = 0.0
        return (f"model.icc_share {share!r}: the clustering constrains no item (all noise), so "
                f"the ICC term is 0 whatever its weight; gamma 0")
    parts = mean_parts_at_init(model, batches, batch_size, seed, CALIBRATION_BATCHES)
    model.icc.calibrate(share, parts, model.loss_weights())
    return None


def mean_parts_at_init(model: nn.Module, batches: Any, batch_size: int, seed: int,
                       n_batches: int) -> dict[str, float]:
    """Mean unweighted loss parts over `n_batches` seeded batches of training windows, measured
    as training would see them (train mode) but without gradients and without moving any of
    the run's random streams (dropout, batch order, sampling): the calibration of icc_share."""
    order_gen = torch.Generator().manual_seed(seed)
    order = batches.rows[torch.randperm(batches.rows.shape[0], generator=order_gen).to(batches.rows.device)]
    saved = batches.rng_state()
    was_training = model.training
    sums: dict[str, float] = {}
    devices = [order.device] if order.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            model.train()
            for start in range(0, min(order.shape[0], n_batches * batch_size), batch_size):
                _, parts = model.calculate_loss(batches.batch(order[start:start + batch_size]))
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
    finally:
        batches.set_rng_state(saved)
        model.train(was_training)
    n = max(1, -(-min(order.shape[0], n_batches * batch_size) // batch_size))
    return {key: value / n for key, value in sums.items()}
