"""The search space: flat parameter names and define-by-run sampling over them.

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
so e.g. gamma = 0 is searched as its own case beside a log range. Sampling is define-by-run
(`SearchSpace(trial)`), which makes the zero control conditional, and so is `variant`: a searched
variant is sampled first, and the parameters it fixes (gamma for plain and llmesr; alpha and
lambda_cl for plain) are then not sampled at all; icc samples its weight (gamma or icc_share,
never both) without its zero control. tuning/space_checks.py checks a space before Ray starts.
"""

from __future__ import annotations

from typing import Any, Mapping

from model.config import VARIANT_SWITCHES
from model.icc import WEIGHTS as ICC_WEIGHTS, drop_replaced_weight
from settings import ConfigError
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
    "negatives": ("model", "negatives"),
    "cross_residual": ("model", "cross_residual"),
}

ZERO_SUFFIX = "_is_zero"


def space_key(name: str) -> str:
    """The dotted name of a parameter in messages: tune.space.NAME."""
    return f"tune.space.{name}"


def fixed_by_variant(variant: str) -> set[str]:
    """Flat parameter names whose value a named variant decides (none for custom)."""
    return {name for name, (section, field) in PARAMETERS.items()
            if section == "model" and field in VARIANT_SWITCHES.get(variant, {})}


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

    def always_active(self, name: str) -> bool:
        """Whether every trial has `name`: searched or fixed in the space, under no condition,
        and fixed by no variant a trial can get (a progress column of a conditional parameter
        would name a value some trials lack)."""
        if name not in self.space or self.when[name] or implicit_parents(name):
            return False
        variant = self.space.get("variant", self.base.get("variant", "custom"))
        variants = [variant] if is_fixed(variant) else list(variant["values"])
        return not any(name in fixed_by_variant(v) for v in variants)

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
        raise ConfigError(f"{space_key(unknown[0])}: unknown parameter; allowed: {', '.join(sorted(PARAMETERS))}")
    return base.replace({".".join(PARAMETERS[name]): value for name, value in params.items()})


def flat_params(config: Config, names: Any = None) -> dict[str, Any]:
    """Read the flat parameters back from a config (all of them unless `names` is given)."""
    names = list(PARAMETERS) if names is None else list(names)
    return {name: getattr(getattr(config, PARAMETERS[name][0]), PARAMETERS[name][1]) for name in names}
