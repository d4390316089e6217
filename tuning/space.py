"""The search space: flat parameter names, their distributions, checked before Ray starts.

A space is a mapping `parameter -> spec` (the `tune.space` section of a config file). Each
parameter names one config field (`lr` -> `train.lr`). A spec is either a plain value (fixed) or
one of

    {type: categorical, values: [...]}
    {type: float, low: L, high: H, log: false, include_zero: false}
    {type: int, low: L, high: H, log: false}

each optionally with `when: {parent: value or [values]}`: the parameter is sampled only in
trials where the parent has one of those values (tuning/conditions.py, which also holds the
conditions the code knows itself: clustering parameters only where ICC is on, n_clusters only
under KMeans, min_cluster_size / min_samples only under HDBSCAN, tau only with lambda_cl > 0).

`include_zero` adds an explicit "off" control (a categorical Optuna parameter `<name>_is_zero`),
so e.g. gamma = 0 is searched as its own case beside a log range. Every value a spec can produce
is checked against the config field's own allowed values, so a bad space fails before any trial.
Sampling is define-by-run (`SearchSpace(trial)`), which makes the zero control conditional, and
so is `variant`: a searched variant is sampled first, and the parameters it fixes (gamma for
plain and llmesr; alpha and lambda_cl for plain) are then not sampled at all; icc samples its
weight (gamma or icc_share, never both) without its zero control. A variant fixed for the whole search may not be contradicted by a
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
from model.icc import METHOD_PARAMETERS, WEIGHTS as ICC_WEIGHTS, drop_replaced_weight
from settings import ConfigError, from_dict
from tuning.conditions import implicit_parents, is_active, sampling_order, written_conditions
from tuning.config import Config

#: flat parameter name -> (config section, field)
PARAMETERS: dict[str, tuple[str, str]] = {
    "variant": ("model", "variant"),
    "backbone": ("model", "backbone"),
    "gamma": ("model", "gamma"),
    "icc_share": ("model", "icc_share"),
    "n_clusters": ("clusters", "n_clusters"),
    "cluster_method": ("clusters", "method"),
    "min_cluster_size": ("clusters", "min_cluster_size"),
    "min_samples": ("clusters", "min_samples"),
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
    "categorical": {"type", "values", "when"},
    "float": {"type", "low", "high", "log", "include_zero", "when"},
    "int": {"type", "low", "high", "log", "when"},
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


def _check_weights(space: Mapping[str, Any], config: Config) -> None:
    """ICC's weight is searched as gamma or as icc_share, never both; variant icc needs one of
    them above 0 in every trial."""
    searched = [w for w in ICC_WEIGHTS if w in space and not is_fixed(space[w])]
    if len(searched) == 2:
        raise ConfigError(f"{_where('icc_share')}: searched together with gamma; allowed: one of the two "
                          f"(icc_share calibrates gamma)")
    variants = possible_values(space, "variant", config)
    if "icc" not in variants:
        return
    for weight in searched:
        if variants == ["icc"] and space[weight].get("include_zero"):     # a searched variant skips the control
            raise ConfigError(f"{_where(weight)}: can be 0, but variant 'icc' needs its weight above 0; drop "
                              f"include_zero (no constraint is the llmesr variant)")
    if not searched and not any(_positive(possible_values(space, w, config)) for w in ICC_WEIGHTS):
        raise ConfigError(f"{_where('variant')}: can be 'icc', which needs gamma or icc_share above 0, but "
                          f"neither is searched and model.gamma, model.icc_share are {config.model.gamma!r}, "
                          f"{config.model.icc_share!r}")


def _positive(values: list | range | None) -> bool:
    """Whether some value of a parameter's possible values is above 0 (a float range: yes)."""
    return values is None or any(isinstance(v, (int, float)) and v > 0 for v in values)


def _check_variant(space: Mapping[str, Any], config: Config) -> None:
    """A variant fixed for the whole search must not be contradicted by a searched parameter."""
    spec = space.get("variant", config.model.variant)
    if is_fixed(spec):
        for name in sorted(fixed_by_variant(spec) & set(space)):
            raise ConfigError(f"{_where(name)}: searched, but variant {spec!r} fixes "
                              f"{'.'.join(PARAMETERS[name])}; drop {name} from the space or use variant custom")
    _check_weights(space, config)


def _check_conditions(space: Mapping[str, Any], config: Config) -> None:
    """Every `when:` names a known parent and values it can take; no cycle; and no searched
    parameter is inactive in every trial (a dead dimension)."""
    for name, spec in space.items():
        for parent, allowed in written_conditions(name, spec).items():
            if parent not in PARAMETERS or parent == name:
                raise ConfigError(f"{_where(name)}.when.{parent}: unknown parent; allowed: another parameter, "
                                  f"one of {', '.join(sorted(set(PARAMETERS) - {name}))}")
            values = possible_values(space, parent, config)
            if values is None:
                raise ConfigError(f"{_where(name)}.when.{parent}: {parent} is a continuous range; allowed: "
                                  f"a categorical, int or fixed parent")
            for value in allowed:
                if value not in values:
                    raise ConfigError(f"{_where(name)}.when.{parent}: value {value!r} is never taken; allowed: "
                                      f"values of {parent}, {_shown(values)}")
    SearchSpace(space)                                   # a cycle raises here
    _check_dead(space, config)


def _check_dead(space: Mapping[str, Any], config: Config) -> None:
    """A searched parameter the code's own rules switch off in every trial is an error."""
    searched = {n for n, s in space.items() if not is_fixed(s)}
    dead = {n: "no trial can have ICC on (variant icc, or gamma / icc_share above 0)"
            for n in searched & {"cluster_method", *(p for ps in METHOD_PARAMETERS.values() for p in ps)}
            if not _icc_possible(space, config)}
    methods = possible_values(space, "cluster_method", config)
    for method, names in METHOD_PARAMETERS.items():
        for name in searched & set(names):
            if method not in methods and name not in dead:
                dead[name] = f"it only matters under cluster_method {method}, which no trial can have"
    if "tau" in searched and not _positive(possible_values(space, "lambda_cl", config)):
        dead["tau"] = "it only matters with lambda_cl above 0, which no trial can have"
    for name in sorted(dead):
        raise ConfigError(f"{_where(name)}: searched, but {dead[name]}; drop it from the space")


def validate_space(space: Any, config: Config) -> None:
    """Raise ConfigError (naming parameter, value and what is allowed) for any bad entry."""
    if not isinstance(space, Mapping):
        raise ConfigError(f"tune.space: got {space!r}; allowed: a mapping parameter -> spec")
    for name, spec in space.items():
        if name not in PARAMETERS:
            raise ConfigError(f"{_where(name)}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
        _check_spec(name, spec, config)
    _check_variant(space, config)
    _check_conditions(space, config)
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
    """Whether some trial can have ICC on (and so build clusters)."""
    weighted = any(_positive(possible_values(space, w, config)) for w in ICC_WEIGHTS)
    variants = possible_values(space, "variant", config)
    return any(v == "icc" or (v == "custom" and weighted) for v in variants)


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
    """Optuna define-by-run function over a validated space (picklable: Ray saves it with the
    searcher). Parameters are visited parents first; one inactive in a trial (tuning.conditions)
    is neither sampled nor resolved. `base` holds the config's flat values, which decide the
    conditions on parameters the space does not search."""

    def __init__(self, space: Mapping[str, Any], base: Mapping[str, Any] | None = None):
        self.space = {name: (dict(spec) if isinstance(spec, Mapping) else spec) for name, spec in space.items()}
        self.base = dict(base) if base is not None else flat_params(Config())
        self._plan()

    def _plan(self) -> None:
        self.when = {name: written_conditions(name, spec) for name, spec in self.space.items()}
        parents = {name: (*implicit_parents(name), *self.when[name]) for name in self.space}
        names = sorted(self.space, key=lambda n: n != "variant")      # the variant first, then as written
        self.order = sampling_order(names, parents)

    def __setstate__(self, state: dict) -> None:
        """A searcher pickled before conditional spaces existed gets its plan on unpickling."""
        self.__dict__.update(state)
        self.__dict__.setdefault("base", flat_params(Config()))
        if "order" not in state:
            self._plan()

    def _walk(self, answer: Any) -> dict[str, Any]:
        """Visit the active parameters in order; `answer(name, spec, variant)` gives each value.
        Returns the trial's flat values (the variant's fixed switches left out)."""
        variant_spec = self.space.get("variant", "custom")
        variant = variant_spec if is_fixed(variant_spec) else answer("variant", variant_spec, None)
        values: dict[str, Any] = {**self.base, "variant": variant}
        values.update({name: VARIANT_SWITCHES.get(variant, {}).get(PARAMETERS[name][1])
                       for name in fixed_by_variant(variant)})
        out: dict[str, Any] = {"variant": variant} if "variant" in self.space else {}
        for name in self.order:
            if name == "variant" or name in fixed_by_variant(variant):
                continue
            if not is_active(name, values, self.when[name]):
                continue
            spec = self.space[name]
            values[name] = out[name] = spec if is_fixed(spec) else answer(name, spec, variant)
            if name in ICC_WEIGHTS:      # as trial_config will: a written icc_share makes gamma 0
                values = drop_replaced_weight(values, {name} | (set(ICC_WEIGHTS) & set(self.space)))
        return out

    def __call__(self, trial: Any) -> None:
        def suggest(name: str, spec: Mapping[str, Any], variant: str | None) -> Any:
            kind = spec["type"]
            if kind == "categorical":
                return trial.suggest_categorical(name, list(spec["values"]))
            if _zero_control(name, spec, variant) and trial.suggest_categorical(name + ZERO_SUFFIX, [False, True]):
                return 0.0
            if kind == "float":
                return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
            return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))

        self._walk(suggest)
        return None

    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's raw parameters (with `_is_zero` controls) -> one value per active flat
        parameter (those a variant fixes are left to trial_config)."""
        def read(name: str, spec: Mapping[str, Any], variant: str | None) -> Any:
            if spec["type"] != "categorical" and _zero_control(name, spec, variant) and sampled.get(name + ZERO_SUFFIX):
                return 0.0
            return sampled[name]

        return self._walk(read)

    def raw(self, resolved: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The inverse of `resolve`: Optuna's raw parameters and their distributions for a trial's
        flat values, found by replaying this define-by-run space (to rebuild a lost study)."""
        replay = _Replay(resolved)
        self(replay)
        return replay.params, replay.distributions


def _zero_control(name: str, spec: Mapping[str, Any], variant: str | None) -> bool:
    """Whether a range searches 0 as its own case: include_zero, except for ICC's weight under
    variant icc (which needs it above 0)."""
    return bool(spec.get("include_zero")) and not (variant == "icc" and name in ICC_WEIGHTS)


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
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"{_where(unknown[0])}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
    return base.replace({".".join(PARAMETERS[name]): value for name, value in params.items()})


def flat_params(config: Config, names: Any = None) -> dict[str, Any]:
    """Read the flat parameters back from a config (all of them unless `names` is given)."""
    names = list(PARAMETERS) if names is None else list(names)
    return {name: getattr(getattr(config, PARAMETERS[name][0]), PARAMETERS[name][1]) for name in names}
