"""The search space: flat parameter names, their distributions, checked before Ray starts.

A space is a mapping `parameter -> spec` (the `tune.space` section of a config file). Each
parameter names one config field (`lr` -> `train.lr`). A spec is either a plain value (fixed) or
one of

    {type: categorical, values: [...]}
    {type: float, low: L, high: H, log: false, include_zero: false}
    {type: int, low: L, high: H, log: false}

`include_zero` adds an explicit "off" control (a categorical Optuna parameter `<name>_is_zero`),
so e.g. gamma = 0 is searched as its own case beside a log range. Every value a spec can produce
is checked against the config field's own allowed values, so a bad space fails before any trial.
Sampling is define-by-run (`SearchSpace(trial)`), which makes the zero control conditional, and
so is `variant`: a searched variant is sampled first, and the parameters it fixes (gamma for
plain and llmesr; alpha and lambda_cl for plain) are then not sampled at all; icc samples gamma
without its zero control. A variant fixed for the whole search may not be contradicted by a
searched parameter: that is an error before Ray starts.

Values must also fit the model and the data, or every trial would fail at run time: every
hidden_size a trial can get must be a multiple of model.num_heads where the model splits it into
heads (`validate_space`), and n_clusters (KMeans) and clusters.dim must not exceed what the
prepared dataset has (`check_space_fits_data`, once the driver has prepared it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from model.config import VARIANT_SWITCHES, splits_into_heads
from tuning.config import Config, config_from_dict, config_to_dict
from tuning.typed import ConfigError, from_dict

#: flat parameter name -> (config section, field)
PARAMETERS: dict[str, tuple[str, str]] = {
    "variant": ("model", "variant"),
    "backbone": ("model", "backbone"),
    "gamma": ("model", "gamma"),
    "n_clusters": ("clusters", "n_clusters"),
    "cluster_method": ("clusters", "method"),
    "alpha": ("model", "alpha"),
    "lambda_cl": ("model", "lambda_cl"),
    "tau": ("model", "tau"),
    "lr": ("train", "lr"),
    "weight_decay": ("train", "weight_decay"),
    "dropout": ("model", "dropout"),
    "hidden_size": ("model", "hidden_size"),
    "max_len": ("model", "max_len"),
    "batch_size": ("train", "batch_size"),
    "loss": ("model", "loss"),
    "cross_residual": ("model", "cross_residual"),
}

TYPES = ("categorical", "float", "int")
_SPEC_KEYS = {
    "categorical": {"type", "values"},
    "float": {"type", "low", "high", "log", "include_zero"},
    "int": {"type", "low", "high", "log"},
}
ZERO_SUFFIX = "_is_zero"


def _where(name: str) -> str:
    return f"tune.space.{name}"


def _section_class(config: Config, section: str) -> type:
    return type(getattr(config, section))


def check_value(name: str, value: Any, config: Config, what: str = "value") -> Any:
    """Check one value against the config field `name` maps to; return it coerced."""
    section, field = PARAMETERS[name]
    cls = _section_class(config, section)
    try:
        built = from_dict(cls, {field: value}, prefix=section)
    except ConfigError as err:
        raise ConfigError(f"{_where(name)}: {what} {value!r} is not allowed for {section}.{field} ({err})") from None
    return getattr(built, field)


def _field_type(config: Config, name: str) -> str:
    section, field = PARAMETERS[name]
    cls = _section_class(config, section)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    return str(hints[field]).replace("<class '", "").replace("'>", "")


def _number(name: str, spec: Mapping[str, Any], key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{_where(name)}.{key}: got {value!r}; allowed: a finite number")
    return value


def _check_range(name: str, spec: Mapping[str, Any], config: Config, kind: str) -> None:
    field_type = _field_type(config, name)
    if kind == "float" and field_type != "float":
        raise ConfigError(f"{_where(name)}.type: got 'float'; {name} is a {field_type} field: "
                          f"use type int or categorical")
    if kind == "int" and field_type not in ("int", "float"):
        raise ConfigError(f"{_where(name)}.type: got 'int'; {name} is a {field_type} field: use categorical")
    low, high = _number(name, spec, "low"), _number(name, spec, "high")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{_where(name)}: int range needs whole bounds, got low={low!r} high={high!r}")
    if low >= high:
        raise ConfigError(f"{_where(name)}: empty range low={low!r} >= high={high!r}; allowed: low < high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{_where(name)}.log: got {log!r}; allowed: true or false")
    if log and low <= 0:
        raise ConfigError(f"{_where(name)}: log range must be positive, got low={low!r}; "
                          f"allowed: 0 < low < high (use include_zero: true to search 0 as well)")
    check_value(name, low, config, "low")
    check_value(name, high, config, "high")
    include_zero = spec.get("include_zero", False)
    if not isinstance(include_zero, bool):
        raise ConfigError(f"{_where(name)}.include_zero: got {include_zero!r}; allowed: true or false")
    if include_zero:
        check_value(name, 0.0, config, "include_zero value")


def _check_spec(name: str, spec: Any, config: Config) -> None:
    if not isinstance(spec, Mapping):
        if isinstance(spec, list):
            raise ConfigError(f"{_where(name)}: got a list {spec!r}; write {{type: categorical, values: [...]}}")
        check_value(name, spec, config, "fixed value")
        return
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{_where(name)}.type: got {kind!r}; allowed: one of {', '.join(TYPES)}")
    unknown = sorted(set(spec) - _SPEC_KEYS[kind])
    if unknown:
        raise ConfigError(f"{_where(name)}.{unknown[0]}: unknown key for type {kind}; "
                          f"allowed keys: {', '.join(sorted(_SPEC_KEYS[kind]))}")
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{_where(name)}.values: got {values!r}; allowed: a non-empty list")
        for value in values:
            if not isinstance(value, (str, int, float, bool)) or value is None:
                raise ConfigError(f"{_where(name)}.values: got {value!r}; allowed: numbers or strings")
            check_value(name, value, config, "value")
        if len(set(values)) != len(values):
            raise ConfigError(f"{_where(name)}.values: repeated entries in {values!r}")
        return
    _check_range(name, spec, config, kind)


def fixed_by_variant(variant: str) -> set[str]:
    """Flat parameter names whose value a named variant decides (none for custom)."""
    return {name for name, (section, field) in PARAMETERS.items()
            if section == "model" and field in VARIANT_SWITCHES.get(variant, {})}


def _check_variant(space: Mapping[str, Any], config: Config) -> None:
    """A variant fixed for the whole search must not be contradicted by a searched parameter."""
    spec = space.get("variant", config.model.variant)
    if not is_fixed(spec):
        if "icc" in spec["values"] and "gamma" not in space and config.model.gamma <= 0:
            raise ConfigError(f"{_where('variant')}: can be 'icc', which needs gamma > 0, but gamma is "
                              f"not searched and model.gamma is {config.model.gamma!r}")
        return
    for name in sorted(fixed_by_variant(spec) & set(space)):
        raise ConfigError(f"{_where(name)}: searched, but variant {spec!r} fixes {'.'.join(PARAMETERS[name])}; "
                          f"drop {name} from the space or use variant custom")
    gamma = space.get("gamma")
    if spec == "icc" and gamma is not None and (
            (is_fixed(gamma) and gamma == 0) or (not is_fixed(gamma) and gamma.get("include_zero"))):
        raise ConfigError(f"{_where('gamma')}: can be 0, but variant 'icc' needs gamma > 0; "
                          f"drop include_zero (gamma 0 is the llmesr variant)")


def validate_space(space: Any, config: Config) -> None:
    """Raise ConfigError (naming parameter, value and what is allowed) for any bad entry."""
    if not isinstance(space, Mapping):
        raise ConfigError(f"tune.space: got {space!r}; allowed: a mapping parameter -> spec")
    for name, spec in space.items():
        if name not in PARAMETERS:
            raise ConfigError(f"{_where(name)}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
        _check_spec(name, spec, config)
    _check_variant(space, config)
    _check_heads(space, config)


def possible_values(space: Mapping[str, Any], name: str, config: Config) -> list | range | None:
    """Every value parameter `name` can take in a trial: the config's own value when it is not
    searched, a fixed value, the categorical values, every int of an int range; None for a float
    range (continuous)."""
    spec = space.get(name, flat_params(config, [name])[name])
    if is_fixed(spec):
        return [spec]
    if spec["type"] == "categorical":
        return list(spec["values"])
    if spec["type"] == "int":
        return range(int(spec["low"]), int(spec["high"]) + 1)
    return None


def _shown(values: list | range) -> str:
    return f"the range [{values.start}, {values.stop - 1}]" if isinstance(values, range) else repr(values)


def _where_set(space: Mapping[str, Any], name: str) -> str:
    """Where a parameter's values come from: the space, or its config field when not searched."""
    return _where(name) if name in space else ".".join(PARAMETERS[name])


def _some_trial_splits_heads(space: Mapping[str, Any], config: Config) -> bool:
    """Whether some (backbone, variant) a trial can get splits hidden_size into attention heads."""
    model = config.model
    for variant in possible_values(space, "variant", config):
        semantic = VARIANT_SWITCHES.get(variant, {}).get("semantic_view", model.semantic_view)
        if any(splits_into_heads(b, semantic, model.cross_attention)
               for b in possible_values(space, "backbone", config)):
            return True
    return False


def _check_heads(space: Mapping[str, Any], config: Config) -> None:
    """Every hidden_size a trial can get divides into model.num_heads where the model splits it."""
    heads = config.model.num_heads
    if heads == 1 or not _some_trial_splits_heads(space, config):
        return
    sizes = possible_values(space, "hidden_size", config)
    bad = next((h for h in sizes if h % heads), None)
    if bad is not None:
        raise ConfigError(f"{_where_set(space, 'hidden_size')}: value {bad} (of {_shown(sizes)}) is not "
                          f"divisible by model.num_heads={heads}, which the attention splits it into; "
                          f"allowed: multiples of {heads}, e.g. a categorical list such as "
                          f"{[heads * m for m in (8, 16, 32)]}")


def _icc_possible(space: Mapping[str, Any], config: Config) -> bool:
    """Whether some trial can have gamma > 0 (and so build clusters)."""
    gamma = space.get("gamma", config.model.gamma)
    gamma_positive = not is_fixed(gamma) or gamma > 0
    if not is_fixed(gamma) and gamma["type"] == "categorical":
        gamma_positive = any(v > 0 for v in gamma["values"])
    variants = possible_values(space, "variant", config)
    return any(v == "icc" or (v == "custom" and gamma_positive) for v in variants)


def check_space_fits_data(space: Mapping[str, Any], config: Config, n_items: int, emb_dim: int,
                          dataset: str) -> None:
    """Raise ConfigError when a trial's clustering could ask more of the prepared dataset
    (`n_items` items, `emb_dim`-wide text embeddings) than it has: KMeans n_clusters above the
    item count, or clusters.dim above min(items, embedding width)."""
    if not _icc_possible(space, config):
        return
    if "kmeans" in possible_values(space, "cluster_method", config):
        counts = possible_values(space, "n_clusters", config)
        if max(counts) > n_items:
            raise ConfigError(f"{_where_set(space, 'n_clusters')}: value {max(counts)} (of {_shown(counts)}) is more "
                              f"than the {n_items} items of the prepared dataset {dataset!r}; allowed: at "
                              f"most {n_items} (KMeans needs an item per cluster)")
    limit = min(n_items, emb_dim)
    if config.clusters.dim > limit:
        raise ConfigError(f"clusters.dim: got {config.clusters.dim}; allowed: at most min(items, embedding "
                          f"width) = {limit} for the prepared dataset {dataset!r}")


def is_fixed(spec: Any) -> bool:
    return not isinstance(spec, Mapping)


class SearchSpace:
    """Optuna define-by-run function over a validated space (picklable: Ray saves it with the searcher)."""

    def __init__(self, space: Mapping[str, Any]):
        self.space = {name: (dict(spec) if isinstance(spec, Mapping) else spec) for name, spec in space.items()}

    def _variant(self, trial: Any) -> str:
        spec = self.space.get("variant", "custom")
        return spec if is_fixed(spec) else trial.suggest_categorical("variant", list(spec["values"]))

    def __call__(self, trial: Any) -> None:
        variant = self._variant(trial)
        skip = fixed_by_variant(variant) | {"variant"}
        for name, spec in self.space.items():
            if is_fixed(spec) or name in skip:
                continue
            kind = spec["type"]
            if kind == "categorical":
                trial.suggest_categorical(name, list(spec["values"]))
                continue
            zero_allowed = not (variant == "icc" and name == "gamma")
            if zero_allowed and spec.get("include_zero") and \
                    trial.suggest_categorical(name + ZERO_SUFFIX, [False, True]):
                continue
            if kind == "float":
                trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
            else:
                trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        return None

    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's raw parameters (with `_is_zero` controls) -> one value per flat parameter."""
        out: dict[str, Any] = {}
        variant = self.space.get("variant", "custom")
        variant = variant if is_fixed(variant) else sampled["variant"]
        for name, spec in self.space.items():
            if name in fixed_by_variant(variant):
                continue                       # the variant decides it (trial_config writes it)
            if is_fixed(spec):
                out[name] = spec
            elif name == "variant":
                out[name] = variant
            elif spec.get("include_zero") and sampled.get(name + ZERO_SUFFIX):
                out[name] = 0.0
            else:
                out[name] = sampled[name]
        return out


    def raw(self, resolved: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The inverse of `resolve`: Optuna's raw parameters and their distributions for a trial's
        flat values, found by replaying this define-by-run space (to rebuild a lost study)."""
        replay = _Replay(resolved)
        self(replay)
        return replay.params, replay.distributions


class _Replay:
    """A stand-in Optuna trial that answers every suggestion from a trial's flat values."""

    def __init__(self, resolved: Mapping[str, Any]):
        self.resolved, self.params, self.distributions = resolved, {}, {}

    def _answer(self, name: str, distribution: Any, value: Any) -> Any:
        self.params[name], self.distributions[name] = value, distribution
        return value

    def suggest_categorical(self, name: str, choices: list) -> Any:
        from optuna.distributions import CategoricalDistribution

        value = self.resolved.get(name.removesuffix(ZERO_SUFFIX)) == 0 if name.endswith(ZERO_SUFFIX) \
            else self.resolved[name]
        return self._answer(name, CategoricalDistribution(choices), value)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        from optuna.distributions import FloatDistribution

        return self._answer(name, FloatDistribution(low, high, log=log), float(self.resolved[name]))

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        from optuna.distributions import IntDistribution

        return self._answer(name, IntDistribution(low, high, log=log), int(self.resolved[name]))


def trial_config(base: Config, params: Mapping[str, Any]) -> Config:
    """The base config with the flat parameters written into their sections (checked again)."""
    data = config_to_dict(base)
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"{_where(unknown[0])}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
    if "variant" in params:                    # the new variant decides its switches afresh
        fixed = VARIANT_SWITCHES.get(params["variant"], {})
        data["model"] = {k: v for k, v in data["model"].items() if k not in fixed or k in params}
    for name, value in params.items():
        section, field = PARAMETERS[name]
        data[section][field] = value
    return config_from_dict(data)


def flat_params(config: Config, names: Any = None) -> dict[str, Any]:
    """Read the flat parameters back from a config (all of them unless `names` is given)."""
    names = list(PARAMETERS) if names is None else list(names)
    return {name: getattr(getattr(config, PARAMETERS[name][0]), PARAMETERS[name][1]) for name in names}
