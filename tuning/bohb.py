"""BOHB (Falkner et al., ICML 2018) behind Ray Tune: `tune.sampler: bohb` with `tune.scheduler: hyperband`.

Ray's TuneBOHB fits kernel densities to the results of HyperBandForBOHB's brackets over the same
`tune.space` the Optuna searchers read (converted to a ConfigSpace; `include_zero` becomes a
`<name>_is_zero` choice, as for Optuna). Suggestions become trial configs exactly as StudySearch
writes them ({"params", "config"}); there is no Optuna study. Needs the `bohb` extra
(`pip install hpbandster ConfigSpace`); hpbandster draws from numpy's global RNG, which the
searcher seeds with tune.search_seed. Imports Ray and hpbandster: import only for sampler bohb.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

try:
    import ConfigSpace as CS
    from ray.tune.search.bohb import TuneBOHB
except ImportError as exc:      # pragma: no cover - depends on the optional extra
    raise ImportError("tune.sampler bohb needs hpbandster and ConfigSpace: pip install -e '.[bohb]'") from exc

from tuning.config import Config, config_from_dict, config_to_dict
from tuning.space import ZERO_SUFFIX, SearchSpace, flat_params, is_fixed, trial_config
from model.contract import MODE
from settings import ConfigError


def config_space(space: Mapping[str, Any], seed: int) -> Any:
    """The searched parameters of a validated `tune.space` as a ConfigSpace (fixed ones left out)."""
    if not is_fixed(space.get("variant", "custom")):
        raise ConfigError("tune.space.variant: searched variants need conditional sampling, which the bohb "
                          "sampler lacks; allowed with bohb: a fixed variant (use tune.sampler tpe or random)")
    cs = CS.ConfigurationSpace(seed=seed)
    for name, spec in space.items():
        if is_fixed(spec):
            continue
        if spec["type"] == "categorical":
            cs.add(CS.CategoricalHyperparameter(name, list(spec["values"])))
            continue
        if spec.get("include_zero"):
            cs.add(CS.CategoricalHyperparameter(name + ZERO_SUFFIX, [False, True]))
        kind = CS.UniformFloatHyperparameter if spec["type"] == "float" else CS.UniformIntegerHyperparameter
        cs.add(kind(name, spec["low"], spec["high"], log=bool(spec.get("log"))))
    return cs


def _plain(value: Any) -> Any:
    """numpy scalars (what ConfigSpace returns) as Python values, for configs and JSON."""
    return value.item() if isinstance(value, np.generic) else value


class BOHBSearch(TuneBOHB):
    """TuneBOHB that writes full trial configs, as StudySearch does."""

    def __init__(self, space: SearchSpace, base: dict, seed: int, **kwargs: Any):
        np.random.seed(seed)
        super().__init__(space=config_space(space.space, seed), seed=seed, **kwargs)
        self._search_space = space
        self._base = base

    def suggest(self, trial_id: str) -> dict | None:
        with warnings.catch_warnings():         # hpbandster calls ConfigSpace's deprecated names
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = super().suggest(trial_id)
        if raw is None:
            return None
        params = self._search_space.resolve({key: _plain(value) for key, value in raw.items()})
        config = trial_config(config_from_dict(self._base), params)
        return {"params": params, "config": config_to_dict(config)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            super().on_trial_result(trial_id, result)


def make_bohb(config: Config) -> BOHBSearch:
    """A seeded BOHB searcher over `config.tune.space` (validated already)."""
    return BOHBSearch(SearchSpace(config.tune.space, flat_params(config)), config_to_dict(config), config.tune.search_seed,
                      metric=config.tune.objectives[0], mode=MODE)
