"""Options of the model and its training (the `model:` and `train:` sections)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from settings import ConfigError, setting

BACKBONES = ("sasrec", "bert4rec", "gru4rec")
ATTENTION_BACKBONES = ("sasrec", "bert4rec")   # split hidden_size into num_heads heads
LOSSES = ("bce", "ce")
TEACHERS = ("batch", "epoch")
REPEAT_POLICIES = ("keep", "exclude")
VARIANTS = ("custom", "plain", "llmesr", "icc")
WINDOWS = ("last", "sliding")             # train.windows (model/batches.py)
#: the switches each named variant fixes; icc also needs gamma > 0 (its value is searched)
VARIANT_SWITCHES: dict[str, dict[str, Any]] = {
    "plain": {"semantic_view": False, "pca_init": False, "alpha": 0.0, "gamma": 0.0, "lambda_cl": 0.0},
    "llmesr": {"semantic_view": True, "pca_init": True, "gamma": 0.0},
    "icc": {"semantic_view": True, "pca_init": True},
}


@dataclass
class ModelConfig:
    variant: str = setting("custom", "plain (backbone alone) | llmesr (gamma 0) | icc (gamma > 0) set every "
                           "switch below consistently; custom = the switches as written", choices=VARIANTS)
    backbone: str = setting("sasrec", "sequence encoder", choices=BACKBONES)
    hidden_size: int = setting(64, "hidden size H of each view", low=1)
    num_blocks: int = setting(2, "transformer blocks (GRU layers for gru4rec)", low=1)
    num_heads: int = setting(1, "attention heads", low=1)
    dropout: float = setting(0.5, "dropout rate", low=0, high=1, high_open=True)
    max_len: int = setting(200, "longest input sequence (older items dropped)", low=2)
    causal: bool = setting(True, "sasrec: causal attention mask (false reproduces the seed code)")
    mask_prob: float = setting(0.2, "bert4rec: cloze masking probability", low=0, high=1, low_open=True, high_open=True)
    semantic_view: bool = setting(True, "LLM-ESR dual view; false = the plain backbone")
    cross_attention: bool = setting(True, "cross-attention between the two views")
    cross_residual: bool = setting(True, "add each view's own sequence to its cross-attention output (false = LLM-ESR's code, which replaces it)")
    adapter_hidden: int = setting(768, "width of the semantic adapter's middle layer", low=1)
    pca_init: bool = setting(True, "initialise ID embeddings from the PCA of the text embeddings")
    alpha: float = setting(0.1, "weight of retrieval-augmented self-distillation (0 = off)", low=0)
    teacher: str = setting("batch", "self-distillation teachers: recomputed every batch (the paper) or once per epoch (about 5x cheaper training)", choices=TEACHERS)
    gamma: float = setting(0.1, "weight of the item-cluster constraint (0 = off)", low=0)
    lambda_cl: float = setting(0.0, "weight of contrastive view alignment (0 = off)", low=0)
    tau: float = setting(0.2, "temperature of the contrastive alignment", low=0, low_open=True)
    loss: str = setting("bce", "recommendation loss", choices=LOSSES)
    n_negatives: int = setting(1, "bce: sampled negatives per positive", low=1)


@dataclass
class TrainConfig:
    lr: float = setting(1e-3, "Adam learning rate", low=0, low_open=True)
    weight_decay: float = setting(0.0, "Adam weight decay", low=0)
    batch_size: int = setting(128, "training windows per batch", low=1)
    windows: str = setting("last", "training samples: last = each user's last model.max_len + 1 training "
                           "items (older items are never targets; what trials saved before this key "
                           "did); sliding = the whole training history cut into windows of "
                           "model.max_len + 1 going back by window_stride, each window one sample",
                           choices=WINDOWS)
    window_stride: int = setting(0, "sliding: items between consecutive window ends, 1 to model.max_len "
                                 "(0 = max_len: windows share one item, so every training item is a "
                                 "target exactly once; smaller strides overlap)", low=0)
    epochs: int = setting(200, "maximum epochs", low=1)
    patience: int = setting(20, "stop after this many epochs without a better validation NDCG@10 (0 = never)", low=0)
    seed: int = setting(42, "seed of initialisation, batching and negatives")
    device: str = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    eval_batch_size: int = setting(1024, "users per evaluation batch", low=1)
    num_threads: int = setting(0, "torch CPU threads (0 = torch's default)", low=0)
    deterministic: bool = setting(True, "deterministic algorithms (exact reproduction)")


@dataclass
class EvalConfig:
    repeats: str = setting("keep", "users whose target already occurs in their history: keep them in "
                           "the metrics (the usual protocol) or exclude them (new targets only); "
                           "repeat_target_* and new_target_* are reported under both",
                           choices=REPEAT_POLICIES)


def _agrees(given: Any, fixed: Any) -> bool:
    """Whether an explicitly written switch says the same as the variant (0 == 0.0, "0" too)."""
    if isinstance(fixed, bool):
        return given is fixed
    if isinstance(given, bool):
        return False
    try:
        return float(given) == fixed
    except (TypeError, ValueError):
        return False


def apply_variant(model: Mapping[str, Any], prefix: str = "model") -> dict[str, Any]:
    """The `model:` section with its named variant's switches written in.

    A switch the section sets explicitly must agree with the variant; a contradiction (variant
    plain with gamma 0.1) is a ConfigError naming both. Unset switches take the variant's value.
    """
    out = dict(model)
    variant = out.get("variant", "custom")
    if not isinstance(variant, str) or variant not in VARIANT_SWITCHES:
        return out                      # from_dict then names the bad variant
    for key, value in VARIANT_SWITCHES[variant].items():
        if key in out and not _agrees(out[key], value):
            raise ConfigError(f"{prefix}.{key}: got {out[key]!r}, but {prefix}.variant {variant!r} "
                              f"sets it to {value!r}; drop one of the two or use variant custom")
        out[key] = value
    if variant == "icc":
        gamma = out.get("gamma", ModelConfig.gamma)
        if _agrees(gamma, 0.0):
            raise ConfigError(f"{prefix}.gamma: got {gamma!r}, but {prefix}.variant 'icc' needs "
                              f"gamma > 0; use variant llmesr for gamma 0")
    return out


def check_windows(train: TrainConfig, max_len: int) -> None:
    """A sliding stride longer than the window would skip training items (never targets)."""
    if train.window_stride > max_len:
        raise ConfigError(f"train.window_stride: got {train.window_stride}, but model.max_len is {max_len}; "
                          f"allowed: 0 (= model.max_len) to model.max_len")


def splits_into_heads(backbone: str, semantic_view: bool, cross_attention: bool) -> bool:
    """Whether a model splits hidden_size into num_heads attention heads (so must divide it):
    the transformer backbones do, and so does the cross-attention between the two views."""
    return backbone in ATTENTION_BACKBONES or (semantic_view and cross_attention)


def variant_of(cfg: "ModelConfig | Mapping[str, Any]") -> str:
    """The named variant a model config (or a saved `model:` dict) amounts to, whatever was
    written: plain, llmesr, icc, or custom when its switches match none of them."""
    def get(key: str) -> Any:
        if isinstance(cfg, Mapping):
            return cfg.get(key, getattr(ModelConfig, key))
        return getattr(cfg, key)

    for name in ("plain", "llmesr", "icc"):
        fixed = VARIANT_SWITCHES[name]
        if all(_agrees(get(k), v) for k, v in fixed.items()) and (name != "icc" or get("gamma") > 0):
            return name
    return "custom"
