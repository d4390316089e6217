"""Checks of a search space before Ray starts: every spec, the variant, the conditions, the model
and the data, each failure one line naming the parameter, the value and what is allowed.

Every value a spec can produce is checked against the config field's own allowed values. A
variant fixed for the whole search may not be contradicted by a searched parameter; ICC's weight
is searched as gamma or as icc_share, never both. `when:` conditions must name a parent and
values it can take, without cycles, and no searched dimension may be dead (inactive in every
trial, tuning.conditions). Values must also fit the model and the data, or every trial would fail
at run time: every hidden_size a trial can get must be a multiple of model.num_heads where the
model splits it into heads, and n_clusters (KMeans) and clusters.dim must not exceed what the
prepared dataset has (`check_space_fits_data`, once the driver has prepared it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from cluster_prep.config import n_clusters_limit
from model.config import VARIANT_SWITCHES, splits_into_heads
from model.icc import METHOD_PARAMETERS, WEIGHTS as ICC_WEIGHTS
from settings import ConfigError, from_dict
from tuning.conditions import SAMPLED_LOSS, written_conditions
from tuning.config import Config
from tuning.space import PARAMETERS, SearchSpace, fixed_by_variant, flat_params, is_fixed, space_key


TYPES = ("categorical", "float", "int")


_SPEC_KEYS = {
    "categorical": {"type", "values", "when"},
    "float": {"type", "low", "high", "log", "include_zero", "when"},
    "int": {"type", "low", "high", "log", "when"},
}


def _section_class(config: Config, section: str) -> type:
    return type(getattr(config, section))


def check_value(name: str, value: Any, config: Config, what: str = "value") -> Any:
    """Check one value against the config field `name` maps to; return it coerced."""
    section, field = PARAMETERS[name]
    cls = _section_class(config, section)
    try:
        built = from_dict(cls, {field: value}, prefix=section)
    except ConfigError as err:
        raise ConfigError(f"{space_key(name)}: {what} {value!r} is not allowed for {section}.{field} ({err})") from None
    return getattr(built, field)


def _field_type(config: Config, name: str) -> str:
    section, field = PARAMETERS[name]
    cls = _section_class(config, section)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    return str(hints[field]).replace("<class '", "").replace("'>", "")


def _number(name: str, spec: Mapping[str, Any], key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{space_key(name)}.{key}: got {value!r}; allowed: a finite number")
    return value


def _check_range(name: str, spec: Mapping[str, Any], config: Config, kind: str) -> None:
    field_type = _field_type(config, name)
    if kind == "float" and field_type != "float":
        raise ConfigError(f"{space_key(name)}.type: got 'float'; {name} is a {field_type} field: "
                          f"use type int or categorical")
    if kind == "int" and field_type not in ("int", "float"):
        raise ConfigError(f"{space_key(name)}.type: got 'int'; {name} is a {field_type} field: use categorical")
    low, high = _number(name, spec, "low"), _number(name, spec, "high")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{space_key(name)}: int range needs whole bounds, got low={low!r} high={high!r}")
    if low >= high:
        raise ConfigError(f"{space_key(name)}: empty range low={low!r} >= high={high!r}; allowed: low < high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{space_key(name)}.log: got {log!r}; allowed: true or false")
    if log and low <= 0:
        raise ConfigError(f"{space_key(name)}: log range must be positive, got low={low!r}; "
                          f"allowed: 0 < low < high (use include_zero: true to search 0 as well)")
    check_value(name, low, config, "low")
    check_value(name, high, config, "high")
    include_zero = spec.get("include_zero", False)
    if not isinstance(include_zero, bool):
        raise ConfigError(f"{space_key(name)}.include_zero: got {include_zero!r}; allowed: true or false")
    if include_zero:
        check_value(name, 0.0, config, "include_zero value")


def _check_spec(name: str, spec: Any, config: Config) -> None:
    if not isinstance(spec, Mapping):
        if isinstance(spec, list):
            raise ConfigError(f"{space_key(name)}: got a list {spec!r}; write {{type: categorical, values: [...]}}")
        check_value(name, spec, config, "fixed value")
        return
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{space_key(name)}.type: got {kind!r}; allowed: one of {', '.join(TYPES)}")
    unknown = sorted(set(spec) - _SPEC_KEYS[kind])
    if unknown:
        raise ConfigError(f"{space_key(name)}.{unknown[0]}: unknown key for type {kind}; "
                          f"allowed keys: {', '.join(sorted(_SPEC_KEYS[kind]))}")
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{space_key(name)}.values: got {values!r}; allowed: a non-empty list")
        for value in values:
            if not isinstance(value, (str, int, float, bool)) or value is None:
                raise ConfigError(f"{space_key(name)}.values: got {value!r}; allowed: numbers or strings")
            check_value(name, value, config, "value")
        if len(set(values)) != len(values):
            raise ConfigError(f"{space_key(name)}.values: repeated entries in {values!r}")
        return
    _check_range(name, spec, config, kind)


def _check_weights(space: Mapping[str, Any], config: Config) -> None:
    """ICC's weight is searched as gamma or as icc_share, never both; variant icc needs one of
    them above 0 in every trial."""
    searched = [w for w in ICC_WEIGHTS if w in space and not is_fixed(space[w])]
    if len(searched) == 2:
        raise ConfigError(f"{space_key('icc_share')}: searched together with gamma; allowed: one of the two "
                          f"(icc_share calibrates gamma)")
    variants = possible_values(space, "variant", config)
    if "icc" not in variants:
        return
    for weight in searched:
        if variants == ["icc"] and space[weight].get("include_zero"):     # a searched variant skips the control
            raise ConfigError(f"{space_key(weight)}: can be 0, but variant 'icc' needs its weight above 0; drop "
                              f"include_zero (no constraint is the llmesr variant)")
    if not searched and not any(_positive(possible_values(space, w, config)) for w in ICC_WEIGHTS):
        raise ConfigError(f"{space_key('variant')}: can be 'icc', which needs gamma or icc_share above 0, but "
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
            raise ConfigError(f"{space_key(name)}: searched, but variant {spec!r} fixes "
                              f"{'.'.join(PARAMETERS[name])}; drop {name} from the space or use variant custom")
    _check_weights(space, config)


def _check_conditions(space: Mapping[str, Any], config: Config) -> None:
    """Every `when:` names a known parent and values it can take; no cycle; and no searched
    parameter is inactive in every trial (a dead dimension)."""
    for name, spec in space.items():
        for parent, allowed in written_conditions(name, spec).items():
            if parent not in PARAMETERS or parent == name:
                raise ConfigError(f"{space_key(name)}.when.{parent}: unknown parent; allowed: another parameter, "
                                  f"one of {', '.join(sorted(set(PARAMETERS) - {name}))}")
            values = possible_values(space, parent, config)
            if values is None:
                raise ConfigError(f"{space_key(name)}.when.{parent}: {parent} is a continuous range; allowed: "
                                  f"a categorical, int or fixed parent")
            for value in allowed:
                if value not in values:
                    raise ConfigError(f"{space_key(name)}.when.{parent}: value {value!r} is never taken; allowed: "
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
    if "negatives" in searched and SAMPLED_LOSS not in possible_values(space, "loss", config):
        dead["negatives"] = f"it only matters under loss {SAMPLED_LOSS}, which no trial can have"
    for name in sorted(dead):
        raise ConfigError(f"{space_key(name)}: searched, but {dead[name]}; drop it from the space")


def validate_space(space: Any, config: Config) -> None:
    """Raise ConfigError (naming parameter, value and what is allowed) for any bad entry."""
    if not isinstance(space, Mapping):
        raise ConfigError(f"tune.space: got {space!r}; allowed: a mapping parameter -> spec")
    for name, spec in space.items():
        if name not in PARAMETERS:
            raise ConfigError(f"{space_key(name)}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
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
    return space_key(name) if name in space else ".".join(PARAMETERS[name])


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
        counts, limit = possible_values(space, "n_clusters", config), n_clusters_limit(n_items)
        if max(counts) > limit:
            raise ConfigError(f"{_where_set(space, 'n_clusters')}: value {max(counts)} (of {_shown(counts)}) is more "
                              f"than the {n_items} items of the prepared dataset {dataset!r}; allowed: at "
                              f"most {limit} (KMeans needs an item per cluster)")
    limit = min(n_items, emb_dim)
    if config.clusters.dim > limit:
        raise ConfigError(f"clusters.dim: got {config.clusters.dim}; allowed: at most min(items, embedding "
                          f"width) = {limit} for the prepared dataset {dataset!r}")
