"""Options of the model and its training (the `model:` and `train:` sections)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from model.contract import SELECT_KEY, selectable_metrics
from model.icc import check_weights, icc_on
from settings import ConfigError, setting

BACKBONES = ("sasrec", "bert4rec", "gru4rec")
ATTENTION_BACKBONES = ("sasrec", "bert4rec")   # split hidden_size into num_heads heads
LOSSES = ("bce", "ce", "sampled_ce")
#: far above any real history (ml-100k's longest input is 647 items; runs cap max_len there anyway):
#: a bound only so that absurd numbers are one line instead of a torch size error
MAX_LEN_LIMIT = 10**9
TEACHERS = ("batch", "epoch")
REPEAT_POLICIES = ("keep", "exclude")
VARIANTS = ("custom", "plain", "llmesr", "icc")
WINDOWS = ("last", "sliding")             # train.windows (model/batches.py)
PRECISIONS = ("fp32", "bf16")             # train.precision (model/trainer.py)
ARITHMETICS = ("reference", "lean")       # model.arithmetic (model/llmesr.py, model/losses.py)
#: the switches each named variant fixes; icc also needs gamma or icc_share > 0 (model.icc decides)
VARIANT_SWITCHES: dict[str, dict[str, Any]] = {
    "plain": {"semantic_view": False, "pca_init": False, "alpha": 0.0, "gamma": 0.0, "icc_share": 0.0,
              "lambda_cl": 0.0},
    "llmesr": {"semantic_view": True, "pca_init": True, "gamma": 0.0, "icc_share": 0.0},
    "icc": {"semantic_view": True, "pca_init": True},
}


@dataclass
class ModelConfig:
    variant: str = setting("custom", "plain (backbone alone) | llmesr (no ICC) | icc (gamma or icc_share > 0) set every "
                           "switch below consistently; custom = the switches as written", choices=VARIANTS)
    backbone: str = setting("sasrec", "sequence encoder", choices=BACKBONES)
    hidden_size: int = setting(64, "hidden size H of each view", low=1)
    num_blocks: int = setting(2, "transformer blocks (GRU layers for gru4rec)", low=1)
    num_heads: int = setting(1, "attention heads", low=1)
    dropout: float = setting(0.5, "dropout rate", low=0, high=1, high_open=True)
    max_len: int = setting(200, "longest input sequence (older items dropped; capped at the data's "
                           "longest history, which gives the same results)", low=2, high=MAX_LEN_LIMIT)
    causal: bool = setting(True, "sasrec: causal attention mask (false reproduces the seed code)")
    mask_prob: float = setting(0.2, "bert4rec: cloze masking probability", low=0, high=1, low_open=True, high_open=True)
    semantic_view: bool = setting(True, "LLM-ESR dual view; false = the plain backbone")
    cross_attention: bool = setting(True, "cross-attention between the two views")
    cross_residual: bool = setting(True, "add each view's own sequence to its cross-attention output (false = LLM-ESR's code, which replaces it)")
    adapter_hidden: int = setting(768, "width of the semantic adapter's middle layer", low=1)
    arithmetic: str = setting("reference", "how the same model is computed: reference = as every run before this "
                              "key (the adapter's two layers over the whole item table, the full softmax over "
                              "every id with padding and mask at -inf); lean = the adapter's two layers folded "
                              "into one matrix and the softmax over the real items only: the same functions, "
                              "equal up to float rounding, for fewer operations (bench/precision.py)",
                              choices=ARITHMETICS)
    pca_init: bool = setting(True, "initialise ID embeddings from the PCA of the text embeddings")
    alpha: float = setting(0.1, "weight of retrieval-augmented self-distillation (0 = off)", low=0)
    teacher: str = setting("batch", "self-distillation teachers: recomputed every batch (the paper) or once per epoch (about 5x cheaper training)", choices=TEACHERS)
    gamma: float = setting(0.1, "weight of the item-cluster constraint (0 = off; with icc_share > 0 it is "
                           "calibrated and stored as 0)", low=0)
    icc_share: float = setting(0.0, "the ICC weight as the share of the training loss its term carries at "
                               "initialisation: gamma is calibrated once on seeded training batches, then "
                               "fixed (0 = use gamma; excludes a nonzero gamma)", low=0, high=1, high_open=True)
    lambda_cl: float = setting(0.0, "weight of contrastive view alignment (0 = off)", low=0)
    tau: float = setting(0.2, "temperature of the contrastive alignment", low=0, low_open=True)
    loss: str = setting("bce", "recommendation loss: bce (n_negatives sampled negatives per positive, the "
                        "paper) | ce (full softmax over the catalogue) | sampled_ce (softmax over the "
                        "positive and `negatives` sampled items)", choices=LOSSES)
    n_negatives: int = setting(1, "bce: sampled negatives per positive", low=1)
    negatives: int = setting(256, "sampled_ce: negatives per BATCH, drawn uniformly without replacement "
                             "from the catalogue and shared by every predicted position (a negative that "
                             "is a position's own target is masked); uniform, so the logQ correction is "
                             "the same for every candidate and cancels; >= the catalogue size = ce",
                             low=1)


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
    patience: int = setting(20, "stop after this many epochs without a better select_metric (0 = never)", low=0)
    select_metric: str = setting(SELECT_KEY, "the validation metric that picks a run's best epoch (the weights "
                                 "tested) and that patience watches: ndcg_10 (the usual protocol) or another "
                                 "full-ranking metric, e.g. tail_item_ndcg_10 for a tail-aware epoch; a "
                                 "trial's score stays validation NDCG@10, taken at that epoch",
                                 choices=selectable_metrics())
    also_select: list[str] = setting([], "more validation metrics, each picking its own best epoch (the first "
                                     "maximum) whose weights are tested too, reported beside the run's own as "
                                     "`also`; training is unchanged, so with patience 0 one run gives both epoch "
                                     "choices (e.g. [tail_item_ndcg_10])")
    seed: int = setting(42, "seed of initialisation, batching and negatives")
    device: str = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    eval_batch_size: int = setting(1024, "users per inference batch: evaluation, and the teachers of model.teacher "
                                   "epoch (on a CPU 256 keeps a batch's activations in cache: 1.0-1.5x an evaluation, "
                                   "1.1-1.8x the teachers, docs/performance.md row 13)", low=1)
    num_threads: int = setting(0, "torch CPU threads (0 = torch's default)", low=0)
    deterministic: bool = setting(True, "deterministic algorithms (exact reproduction)")
    precision: str = setting("fp32", "training arithmetic: fp32, or bf16 = bfloat16 autocast of each training "
                             "batch's forward pass (bench/precision.py: 1.4-1.5x per batch on amazon-beauty "
                             "on a CPU with AMX; what it does to the metrics is not measured yet); evaluation "
                             "and teachers stay fp32", choices=PRECISIONS)


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
        return check_weights(out, prefix) if variant == "custom" else out   # from_dict names a bad one
    for key, value in VARIANT_SWITCHES[variant].items():
        if key in out and not _agrees(out[key], value):
            raise ConfigError(f"{prefix}.{key}: got {out[key]!r}, but {prefix}.variant {variant!r} "
                              f"sets it to {value!r}; drop one of the two or use variant custom")
        out[key] = value
    return check_weights(out, prefix)


def check_windows(train: TrainConfig, max_len: int) -> None:
    """A sliding stride longer than the window would skip training items (never targets)."""
    if train.window_stride > max_len:
        raise ConfigError(f"train.window_stride: got {train.window_stride}, but model.max_len is {max_len}; "
                          f"allowed: 0 (= model.max_len) to model.max_len")


def check_also_select(train: TrainConfig) -> None:
    """Each train.also_select entry is a metric select_metric could name, given once."""
    allowed = selectable_metrics()
    for i, name in enumerate(train.also_select):
        if name not in allowed:
            raise ConfigError(f"train.also_select[{i}]: got {name!r}; allowed: one of {', '.join(allowed)}")
    if len(set(train.also_select)) != len(train.also_select):
        raise ConfigError(f"train.also_select: got {train.also_select!r}; allowed: each metric once")


def splits_into_heads(backbone: str, semantic_view: bool, cross_attention: bool) -> bool:
    """Whether a model splits hidden_size into num_heads attention heads (so must divide it):
    the transformer backbones do, and so does the cross-attention between the two views."""
    return backbone in ATTENTION_BACKBONES or (semantic_view and cross_attention)


def check_heads(cfg: ModelConfig) -> None:
    """A ConfigError unless model.hidden_size splits into model.num_heads where the model splits
    it (`splits_into_heads`): the search space is checked so before Ray starts; every run built
    from a config (train, reproduce, a study's confirmation) is checked here, before any data or
    weights, instead of failing with a tensor-shape traceback in its first batch."""
    if cfg.hidden_size % cfg.num_heads and splits_into_heads(cfg.backbone, cfg.semantic_view,
                                                             cfg.cross_attention):
        which = (f"backbone {cfg.backbone!r}" if cfg.backbone in ATTENTION_BACKBONES
                 else "the cross-attention between the two views (model.semantic_view and model.cross_attention)")
        divisors = [d for d in range(1, cfg.hidden_size + 1) if cfg.hidden_size % d == 0][:8]
        raise ConfigError(f"model.num_heads: got {cfg.num_heads} with model.hidden_size {cfg.hidden_size}, "
                          f"which {which} splits into heads; allowed: a divisor of {cfg.hidden_size} "
                          f"(e.g. {', '.join(map(str, divisors))}), or a hidden_size divisible by {cfg.num_heads}")


def variant_of(cfg: "ModelConfig | Mapping[str, Any]") -> str:
    """The named variant a model config (or a saved `model:` dict) amounts to, whatever was
    written: plain, llmesr, icc, or custom when its switches match none of them."""
    def get(key: str) -> Any:
        if isinstance(cfg, Mapping):
            return cfg.get(key, getattr(ModelConfig, key))
        return getattr(cfg, key)

    for name in ("plain", "llmesr", "icc"):
        fixed = VARIANT_SWITCHES[name]
        if all(_agrees(get(k), v) for k, v in fixed.items()) and (name != "icc" or icc_on(
                {"gamma": get("gamma"), "icc_share": get("icc_share")})):
            return name
    return "custom"
