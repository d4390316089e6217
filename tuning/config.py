"""The one typed configuration of icc-tune: every section, loaded from YAML plus `--set` overrides.

Priority (highest first): `--set key=value` overrides > the YAML file > the dataclass defaults.
launch.py builds a `Config` once and passes it (or its sections) down; nothing else reads argv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from cluster_prep.config import ClusterConfig
from datasets.config import DataConfig
from model.config import (BACKBONES, VARIANT_SWITCHES, EvalConfig, ModelConfig, TrainConfig, apply_variant,
                          check_also_select, check_windows)
from model.contract import METRIC, validation_metrics, validation_metrics_pattern
from model.icc import drop_replaced_weight
from settings import (ConfigError, check_folder_name, from_dict, merge, parse_override, read_yaml,
                      setting, to_dict, with_paths)


SAMPLERS = ("tpe", "random", "bohb")
SCHEDULERS = ("asha", "none", "hyperband")
#: tune.prune_metric's value for ASHA over every objective at once (tuning.pareto_asha)
PARETO = "pareto"


@dataclass
class TuneConfig:
    name: str = setting("", "experiment name (default: <dataset>-<timestamp>)")
    storage_path: str = setting("runs", "experiment folder root: a local path or a pyarrow URI (s3://, gs://)")
    num_samples: int = setting(8, "trials to run", low=1)
    max_concurrent_trials: int = setting(0, "trials at once (0 = as many as resources allow)", low=0)
    cpus_per_trial: float = setting(1.0, "CPUs reserved per trial", low=0, low_open=True)
    trials_per_gpu: int = setting(0, "trials sharing one GPU (GPU fraction 1/k); 0 = CPU only", low=0)
    grace_period: int = setting(2, "ASHA: epochs every trial runs before it can be stopped", low=1)
    reduction_factor: float = setting(3.0, "ASHA: keep the best 1/rf at each rung", low=1, low_open=True)
    reuse_actors: bool = setting(True, "reuse a finished trial's worker for the next trial (less start-up)")
    max_failures: int = setting(2, "retries of a failing trial from its last checkpoint", low=0)
    search_seed: int = setting(0, "seed of the searcher (tune.sampler)")
    n_startup_trials: int = setting(4, "TPE: random trials before the model-based search", low=0)
    sampler: str = setting("tpe", "searcher: Optuna tpe (model-based) or random (the baseline a search "
                           "must beat), or bohb (Ray's TuneBOHB, needs the bohb extra and scheduler "
                           "hyperband); seeded by search_seed", choices=SAMPLERS)
    multivariate: bool = setting(False, "TPE: model the parameters jointly (Optuna's multivariate TPE, "
                                 "grouped by the parameters a trial samples) instead of one by one")
    scheduler: str = setting("asha", "early stopping: asha (the worst trials stop at each rung), none "
                             "(every trial runs until it stops by itself) or hyperband (HyperBandForBOHB's "
                             "brackets, pausing trials; only with sampler bohb)", choices=SCHEDULERS)
    space: dict = setting({}, "search space: parameter -> distribution (see configs/)")
    objectives: list[str] = setting([METRIC], "validation metrics the search maximises, each at the trial's "
                                    "best epoch; two or more make it multi-objective (Optuna's Pareto "
                                    "front), e.g. [valid_ndcg_10, valid_tail_item_ndcg_10]")
    prune_metric: str = setting("", "what ASHA compares trials on at its rungs: one validation metric, "
                                "empty = the first objective, or pareto = every objective at once "
                                "(Pareto fronts; two or more objectives)")

    @property
    def prunes_on_front(self) -> bool:
        """Whether ASHA ranks the trials at a rung by Pareto fronts (tuning.pareto_asha)."""
        return self.prune_metric == PARETO

    @property
    def pruned_on(self) -> str:
        """The Tuner's one metric: tune.prune_metric, else (also with pareto, whose scheduler
        reads every objective itself) the first objective."""
        return self.objectives[0] if not self.prune_metric or self.prunes_on_front else self.prune_metric


STUDY_VARIANTS = ("plain", "llmesr", "icc")
#: the study's paired comparisons (treatment-vs-control; control = the ICC arm's config without ICC)
STUDY_COMPARISONS = ("icc-vs-llmesr", "icc-vs-control", "llmesr-vs-plain")
#: the test metrics each comparison is made on
STUDY_METRICS = ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "new_target_ndcg_10")


@dataclass
class StudyConfig:
    backbones: list[str] = setting(["sasrec", "gru4rec", "bert4rec"], "one search arm per backbone and variant")
    variants: list[str] = setting(list(STUDY_VARIANTS), "the variants compared (plain, llmesr, icc)")
    trials_per_arm: int = setting(10, "search trials of every arm (the same budget for each)", low=1)
    seeds: list[int] = setting([42, 43, 44, 45, 46], "confirmation seeds, the same for every arm (paired tests)")
    icc_space: dict = setting({}, "search space added to the icc arms (gamma, n_clusters, cluster_method, ...)")
    confirm_workers: int = setting(2, "confirmation runs at once (one torch thread each)", low=1)
    margin: float = setting(0.02, "TOST equivalence margin of the comparisons, relative to the control's mean: "
                            "a difference that is not significant is called equivalent only within it",
                            low=0, high=1, low_open=True)
    search_seeds: list[int] = setting([], "searcher seeds (tune.search_seed): every arm is searched once per "
                                      "seed and each search's best confirmed; the first seed's winner is the "
                                      "arm's configuration, the others measure how much the choice moves "
                                      "([] = one search with tune.search_seed)")
    front_seeds: list[int] = setting([], "seeds on which every other trial of each arm's validation Pareto front "
                                     "(overall vs tail-item NDCG@10) is confirmed too, so the fronts compare on "
                                     "test ([] = only each arm's best trial is confirmed)")
    primary: list[str] = setting(["icc-vs-control:ndcg_10", "icc-vs-control:tail_item_ndcg_10"],
                                 "the pre-registered primary family: comparison:metric pairs, each tested "
                                 "per backbone and Holm-adjusted together; every other comparison is "
                                 "exploratory (raw p, no correction)")
    dose_backbones: list[str] = setting([], "backbones whose LLM-ESR arm, once confirmed, gets ICC's dose-response "
                                        "(the `dose` section) around its tuned config; its tables and plot join "
                                        "the findings ([] = none)")


@dataclass
class DoseConfig:
    shares: list[float] = setting([0.01, 0.05, 0.2, 0.5], "ICC loss shares (model.icc_share) each clustering "
                                  "is tried at, against share 0 (the same config without ICC)")
    clusterings: list[str] = setting(["kmeans-16", "kmeans-64", "kmeans-256", "hdbscan-5", "hdbscan-20"],
                                     "kmeans-N (N clusters) or hdbscan-M (min_cluster_size M)")
    seeds: list[int] = setting([42, 43, 44], "training seeds, the same for every dose (paired tests)")
    confirm_seeds: list[int] = setting([], "more seeds for each clustering's best share (chosen on validation "
                                           "over `seeds`) and the control: the primary family ([] = screen only)")
    margin: float = setting(0.02, "TOST equivalence margin, relative to the control's mean", low=0, high=1,
                            low_open=True)
    workers: int = setting(2, "training runs at once (one torch thread each)", low=1)


@dataclass
class Config:
    data: DataConfig = setting(DataConfig(), "dataset preparation")
    clusters: ClusterConfig = setting(ClusterConfig(), "item clustering")
    model: ModelConfig = setting(ModelConfig(), "model")
    train: TrainConfig = setting(TrainConfig(), "training")
    eval: EvalConfig = setting(EvalConfig(), "evaluation protocol")
    tune: TuneConfig = setting(TuneConfig(), "tuning")
    study: StudyConfig = setting(StudyConfig(), "the study (launch.py study)")
    dose: DoseConfig = setting(DoseConfig(), "the dose-response of ICC (launch.py dose)")

    def replace(self, changes: Mapping[str, Any]) -> Config:
        """A new Config with each dotted path set (`{"model.gamma": 0.0, "train.seed": 43}`),
        checked like a loaded one. A `model.variant` among the changes decides its switches
        afresh, except those the changes set themselves (as `--set model.variant=...` does)."""
        data = to_dict(self)
        variant = changes.get("model.variant")
        fixed = VARIANT_SWITCHES.get(variant, {}) if isinstance(variant, str) else {}
        data["model"] = {k: v for k, v in data["model"].items() if k not in fixed or f"model.{k}" in changes}
        written = {key.removeprefix("model.") for key in changes if key.startswith("model.")}
        data["model"] = drop_replaced_weight(data["model"], written)
        return config_from_dict(with_paths(data, changes))


SECTIONS = ("data", "clusters", "model", "train", "eval", "tune", "study", "dose")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist" if not path.exists()
                          else f"config file {str(path)!r} is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read as text ({exc})") from None
    data = read_yaml(text, f"config file {str(path)!r}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping at the top, got {type(data).__name__}")
    return data


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and check a Config from a nested dict (e.g. a trial's saved config)."""
    data = dict(data)
    for section in SECTIONS:
        data.setdefault(section, {})
    if isinstance(data["model"], dict):
        data["model"] = apply_variant(data["model"])
    config = from_dict(Config, data)
    if config.tune.name:
        check_folder_name("tune.name", config.tune.name)
    check_study(config.study)
    check_dose(config.dose)
    check_tune(config.tune)
    check_windows(config.train, config.model.max_len)
    check_also_select(config.train)
    return config


def check_tune(tune: TuneConfig) -> None:
    """BOHB's model learns from HyperBandForBOHB's brackets, and that scheduler needs BOHB. The
    objectives and the prune metric name metrics every trial reports (else no trial could be told
    or compared), and BOHB takes one objective."""
    if (tune.sampler == "bohb") != (tune.scheduler == "hyperband"):
        raise ConfigError(f"tune.scheduler: got {tune.scheduler!r} with tune.sampler {tune.sampler!r}; "
                          f"allowed: scheduler hyperband exactly when sampler is bohb")
    known = validation_metrics()
    if not tune.objectives or len(set(tune.objectives)) != len(tune.objectives):
        raise ConfigError(f"tune.objectives: got {tune.objectives!r}; allowed: a non-empty list of distinct "
                          f"validation metrics, {validation_metrics_pattern()}")
    for key, names in (("tune.objectives", tune.objectives), ("tune.prune_metric", [tune.pruned_on])):
        bad = [name for name in names if name not in known]
        if bad:
            raise ConfigError(f"{key}: got {bad[0]!r}; allowed: a validation metric every trial reports, "
                              f"{validation_metrics_pattern()}")
    if tune.prunes_on_front and (len(tune.objectives) < 2 or tune.scheduler != "asha"):
        raise ConfigError(f"tune.prune_metric: got {PARETO!r} with {len(tune.objectives)} objective(s) and "
                          f"tune.scheduler {tune.scheduler!r}; allowed: {PARETO} with two or more "
                          f"tune.objectives and scheduler asha")
    if len(tune.objectives) > 1 and tune.sampler == "bohb":
        raise ConfigError(f"tune.objectives: got {len(tune.objectives)} objectives with tune.sampler bohb; "
                          f"allowed: one objective with bohb (tpe and random take several)")


def check_study(study: StudyConfig) -> None:
    """The study's lists hold known, distinct names and seeds."""
    for key, values, allowed in (("backbones", study.backbones, BACKBONES),
                                 ("variants", study.variants, STUDY_VARIANTS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values or len(set(values)) != len(values):
            raise ConfigError(f"study.{key}: got {values!r}; allowed: a non-empty list of distinct "
                              f"names from {', '.join(allowed)}")
    if not study.seeds or len(set(study.seeds)) != len(study.seeds):
        raise ConfigError(f"study.seeds: got {study.seeds!r}; allowed: a non-empty list of distinct ints")
    if len(set(study.search_seeds)) != len(study.search_seeds):
        raise ConfigError(f"study.search_seeds: got {study.search_seeds!r}; allowed: a list of distinct ints")
    if len(set(study.front_seeds)) != len(study.front_seeds) or len(study.front_seeds) == 1:
        raise ConfigError(f"study.front_seeds: got {study.front_seeds!r}; allowed: [] or at least 2 distinct ints "
                          f"(a confirmed front point needs a spread)")
    for entry in study.primary:
        comparison, _, metric = str(entry).partition(":")
        if comparison not in STUDY_COMPARISONS or metric not in STUDY_METRICS:
            raise ConfigError(f"study.primary: got {entry!r}; allowed: COMPARISON:METRIC with COMPARISON one of "
                              f"{', '.join(STUDY_COMPARISONS)} and METRIC one of {', '.join(STUDY_METRICS)}")
    if not study.primary or len(set(study.primary)) != len(study.primary):
        raise ConfigError(f"study.primary: got {study.primary!r}; allowed: a non-empty list of distinct "
                          f"COMPARISON:METRIC entries")
    extra = [b for b in study.dose_backbones if b not in study.backbones]
    if extra or len(set(study.dose_backbones)) != len(study.dose_backbones):
        raise ConfigError(f"study.dose_backbones: got {study.dose_backbones!r}; allowed: distinct backbones of "
                          f"study.backbones ({', '.join(study.backbones)})")
    if study.dose_backbones and "llmesr" not in study.variants:
        raise ConfigError(f"study.dose_backbones: got {study.dose_backbones!r}, but study.variants "
                          f"{study.variants!r} has no llmesr arm, whose tuned config the dose-response is built around")


CLUSTERING_FIELD = {"kmeans": "n_clusters", "hdbscan": "min_cluster_size"}


def clustering_changes(spec: str) -> dict[str, Any]:
    """`kmeans-64` / `hdbscan-5` as dotted config changes; ConfigError naming the spec otherwise."""
    method, _, value = spec.partition("-")
    if method not in CLUSTERING_FIELD or not value.isdigit() or int(value) < 2:
        raise ConfigError(f"dose.clusterings: got {spec!r}; allowed: kmeans-N (N clusters) or hdbscan-M "
                          f"(min_cluster_size M), N and M whole numbers >= 2")
    return {"clusters.method": method, f"clusters.{CLUSTERING_FIELD[method]}": int(value)}


def check_dose(dose: DoseConfig) -> None:
    """Shares in (0, 1), clusterings that parse, distinct seeds."""
    bad = [s for s in dose.shares if not 0 < s < 1]
    if bad or not dose.shares or len(set(dose.shares)) != len(dose.shares):
        raise ConfigError(f"dose.shares: got {dose.shares!r}; allowed: a non-empty list of distinct shares in (0, 1)")
    if not dose.clusterings or len(set(dose.clusterings)) != len(dose.clusterings):
        raise ConfigError(f"dose.clusterings: got {dose.clusterings!r}; allowed: a non-empty list of distinct names")
    for spec in dose.clusterings:
        clustering_changes(spec)
    if len(dose.seeds) < 2 or len(set(dose.seeds)) != len(dose.seeds):
        raise ConfigError(f"dose.seeds: got {dose.seeds!r}; allowed: at least 2 distinct ints (paired tests)")
    if len(set(dose.confirm_seeds)) != len(dose.confirm_seeds) or set(dose.confirm_seeds) & set(dose.seeds):
        raise ConfigError(f"dose.confirm_seeds: got {dose.confirm_seeds!r}; allowed: distinct ints that are not in "
                          f"dose.seeds {dose.seeds!r}")


def _without_switches_of(data: dict[str, Any], variant: Any) -> dict[str, Any]:
    """`data` minus the model switches `variant` decides: a variant named by a higher-priority
    source (--set) overrides what a lower one (the file) wrote for them."""
    fixed = VARIANT_SWITCHES.get(variant, {}) if isinstance(variant, str) else {}
    model = data.get("model")
    if not fixed or not isinstance(model, dict):
        return data
    return {**data, "model": {k: v for k, v in model.items() if k not in fixed}}


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """YAML file (optional) plus `key=value` overrides -> a checked Config."""
    data: dict[str, Any] = _read_yaml(path) if path else {}
    layer: dict[str, Any] = {}
    for text in overrides:
        layer = merge(layer, parse_override(text))
    model_layer = layer.get("model")
    if isinstance(model_layer, dict) and "variant" in model_layer:
        data = _without_switches_of(data, model_layer["variant"])
    if isinstance(model_layer, dict) and isinstance(data.get("model"), dict):
        data = {**data, "model": drop_replaced_weight(data["model"], set(model_layer))}
    return config_from_dict(merge(data, layer))


def given_keys(path: str | Path | None = None, overrides: Iterable[str] = ()) -> list[str]:
    """The settings (section.field, or a whole section) a config file and `--set` overrides
    write: what `--resume` checks against the experiment's saved config."""
    data: dict[str, Any] = _read_yaml(path) if path else {}
    for text in overrides:
        data = merge(data, parse_override(text))
    keys = []
    for section, value in data.items():
        keys += [f"{section}.{field}" for field in value] if isinstance(value, dict) else [str(section)]
    return sorted(keys)


def config_to_dict(config: Config) -> dict[str, Any]:
    return to_dict(config)


__all__ = ["Config", "ConfigError", "StudyConfig", "TuneConfig", "config_from_dict", "config_to_dict", "given_keys",
           "load_config"]
