"""When a searched parameter matters: conditional search spaces.

A parameter is active in a trial only when every condition on it holds for that trial's values;
an inactive one is not sampled (Optuna's define-by-run), not written into the trial's config and
shown blank in tables. Two kinds of condition:

- written in the space, `when: {parent: value}` or `when: {parent: [values]}`, e.g.
  `min_cluster_size: {type: int, low: 3, high: 50, when: {cluster_method: hdbscan}}`;
- known to the code, so no searched dimension is dead whatever the space says: the clustering
  parameters only where ICC is on (model.icc.icc_on), n_clusters only under KMeans and
  min_cluster_size / min_samples only under HDBSCAN (model.icc.METHOD_PARAMETERS), tau only
  where the view contrast is on (lambda_cl > 0), and negatives only under loss sampled_ce.

Parents are sampled before their children (`sampling_order`); a cycle, an unknown parent or a
value the parent can never take is a ConfigError before Ray starts.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from model.icc import CLUSTER_PARAMETERS, METHOD_PARAMETERS, WEIGHTS, icc_on
from settings import ConfigError

#: parameters whose value decides whether ICC is on (parents of every clustering parameter)
ICC_DECIDERS = ("variant", *WEIGHTS)
#: the loss whose sampled negatives `negatives` counts
SAMPLED_LOSS = "sampled_ce"
#: the method parameter of each method-specific clustering parameter
METHOD_OF = {name: method for method, names in METHOD_PARAMETERS.items() for name in names}


def implicit_parents(name: str) -> tuple[str, ...]:
    """The parameters the code's own rules make `name` depend on."""
    parents: tuple[str, ...] = ()
    if name in CLUSTER_PARAMETERS:
        parents += ICC_DECIDERS
    if name in METHOD_OF:
        parents += ("cluster_method",)
    if name == "tau":
        parents += ("lambda_cl",)
    if name == "negatives":
        parents += ("loss",)
    return parents


def written_conditions(name: str, spec: Any) -> dict[str, list]:
    """The `when:` of one spec as parent -> allowed values (checked for shape only)."""
    if not isinstance(spec, Mapping) or "when" not in spec:
        return {}
    when = spec["when"]
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"tune.space.{name}.when: got {when!r}; allowed: a mapping parameter -> value "
                          f"or list of values, e.g. {{cluster_method: kmeans}}")
    out = {}
    for parent, values in when.items():
        values = list(values) if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"tune.space.{name}.when.{parent}: got an empty list; allowed: one or more values")
        out[str(parent)] = values
    return out


def is_active(name: str, values: Mapping[str, Any], when: Mapping[str, list] | None = None) -> bool:
    """Whether parameter `name` matters in a trial with these flat values (the trial's sampled
    values over the base config's)."""
    for parent, allowed in (when or {}).items():
        if values.get(parent) not in allowed:
            return False
    if name in CLUSTER_PARAMETERS and not icc_on(values):
        return False
    if name in METHOD_OF and values.get("cluster_method") != METHOD_OF[name]:
        return False
    if name == "tau" and not _positive(values.get("lambda_cl")):
        return False
    if name == "negatives" and values.get("loss") != SAMPLED_LOSS:
        return False
    return True


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def sampling_order(names: Iterable[str], parents: Mapping[str, Iterable[str]]) -> list[str]:
    """The space's parameters in their written order, each moved after its parents (a stable
    topological order); a cycle is a ConfigError naming its members."""
    names = list(names)
    pending, done, order = list(names), set(), []
    while pending:
        ready = next((n for n in pending if all(p in done or p not in names for p in parents.get(n, ()))), None)
        if ready is None:
            raise ConfigError(f"tune.space: the when: conditions of {', '.join(sorted(pending))} form a cycle; "
                              f"allowed: conditions on parameters that do not depend back on them")
        order.append(ready)
        done.add(ready)
        pending.remove(ready)
    return order
