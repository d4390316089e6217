"""Plots of an experiment as PNG files (matplotlib, Agg backend: no display needed).

Sensitivity plots show every trial's best-epoch valid_ndcg_10 against gamma or n_clusters,
one panel per backbone, with the trial's state as the marker, so an ASHA-stopped trial is never
mistaken for a finished one. Learning curves draw valid_ndcg_10 per epoch and mark where each
trial ended. Parameter importance comes from Optuna's evaluator on the study in optuna.db.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from model.contract import METRIC
from tuning.optuna_db import OPTUNA_DB

STATE_STYLE = {"terminated": ("o", "tab:blue", "finished"),
               "stopped_early": ("x", "tab:orange", "stopped by ASHA"),
               "errored": ("s", "tab:red", "errored")}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _backbones(trials: pd.DataFrame) -> list[str]:
    if "backbone" not in trials.columns:
        return ["unknown"]
    return sorted(trials["backbone"].fillna("unknown").astype(str).unique())


def _of_backbone(frame: pd.DataFrame, backbone: str) -> pd.DataFrame:
    if "backbone" not in frame.columns:
        return frame
    return frame[frame["backbone"].fillna("unknown").astype(str) == backbone]


def _state_legend(ax: Any) -> None:
    handles = [ax.plot([], [], marker=m, color=c, linestyle="", label=label)[0]
               for m, c, label in STATE_STYLE.values()]
    ax.legend(handles=handles, fontsize=8, loc="best")


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return str(path)


def sensitivity(trials: pd.DataFrame, param: str, path: str | Path) -> str | None:
    """valid_ndcg_10 (best epoch) against `param`, one panel per backbone; None without data."""
    if param not in trials.columns or METRIC not in trials.columns:
        return None
    data = trials[trials[param].notna() & trials[METRIC].notna()]
    if data.empty:
        return None
    plt = _pyplot()
    backbones = _backbones(data)
    fig, axes = plt.subplots(1, len(backbones), figsize=(4.5 * len(backbones), 3.4), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        rows = _of_backbone(data, backbone)
        for state, (marker, color, _) in STATE_STYLE.items():
            part = rows[rows["state"] == state]
            ax.scatter(part[param].astype(float), part[METRIC], marker=marker, color=color)
        values = rows[param].astype(float)
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() > 10:     # log-sampled ranges: lr, gamma, icc_share
            ax.set_xscale("symlog", linthresh=float(positive.min())) if (values == 0).any() else ax.set_xscale("log")
        ax.set_title(f"{backbone}: {param}")
        ax.set_xlabel(param)
        ax.set_ylabel("valid NDCG@10 (best epoch)")
        ax.grid(alpha=0.3)
        _state_legend(ax)
    return _save(fig, Path(path))


def learning_curves(history: pd.DataFrame, trials: pd.DataFrame, path: str | Path) -> str | None:
    """valid_ndcg_10 per epoch for every trial; the last epoch marked with the trial's state."""
    if history.empty or METRIC not in history.columns or "epoch" not in history.columns:
        return None
    plt = _pyplot()
    states = dict(zip(trials["trial_id"], trials["state"]))
    backbones = _backbones(trials)
    fig, axes = plt.subplots(1, len(backbones), figsize=(5 * len(backbones), 3.6), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        ids = set(_of_backbone(trials, backbone)["trial_id"])
        for trial_id, curve in history[history["trial_id"].isin(ids)].groupby("trial_id"):
            curve = curve.dropna(subset=[METRIC]).sort_values("epoch")
            if curve.empty:
                continue
            marker, color, _ = STATE_STYLE.get(states.get(trial_id, ""), ("o", "gray", ""))
            style = "--" if states.get(trial_id) == "stopped_early" else "-"
            ax.plot(curve["epoch"], curve[METRIC], style, color=color, alpha=0.6, linewidth=1)
            ax.plot(curve["epoch"].iloc[-1], curve[METRIC].iloc[-1], marker=marker, color=color,
                    markersize=7)
        ax.set_title(f"{backbone}: learning curves")
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid NDCG@10")
        ax.grid(alpha=0.3)
        _state_legend(ax)
    return _save(fig, Path(path))


def pareto_plot(trials: pd.DataFrame, objectives: list[str], path: str | Path) -> str | None:
    """Every trial at its best epoch in the first two objectives (marker = state), the trials on
    the validation front (over all objectives) ringed and, for two objectives, joined by the
    front's staircase; None without two objective columns."""
    from results.pareto import front_ids

    x, y = objectives[0], objectives[1]
    if x not in trials.columns or y not in trials.columns:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for state, (marker, color, _) in STATE_STYLE.items():
        part = trials[trials["state"] == state]
        ax.scatter(part[x], part[y], marker=marker, color=color, alpha=0.7)
    front = trials.set_index("trial_id").loc[front_ids(trials, objectives)]
    ax.scatter(front[x], front[y], s=140, facecolors="none", edgecolors="black", linewidths=1.5)
    if len(objectives) == 2 and len(front):
        ordered = front.sort_values(x)
        # the edge of the dominated region: up to each point's x, the best y of the points beyond
        ax.step(ordered[x], ordered[y], where="pre", color="black", linewidth=1, alpha=0.7)
    for trial_id, row in front.iterrows():
        ax.annotate(str(trial_id), (row[x], row[y]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    more = f" (front over all {len(objectives)} objectives)" if len(objectives) > 2 else ""
    ax.set_title(f"validation Pareto front: {len(front)} of {len(trials)} trials{more}")
    ax.set_xlabel(f"{x} (best epoch)")
    ax.set_ylabel(f"{y} (best epoch)")
    ax.grid(alpha=0.3)
    handles = [ax.plot([], [], marker=m, color=c, linestyle="", label=label)[0] for m, c, label in STATE_STYLE.values()]
    handles.append(ax.scatter([], [], s=140, facecolors="none", edgecolors="black", label="on the front"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    return _save(fig, Path(path))


def hypervolume_plot(history: pd.DataFrame, objectives: list[str], path: str | Path) -> str | None:
    """The hypervolume of the trials so far after each trial (results.pareto.hypervolume_history)."""
    from results.pareto import REFERENCE_NOTE

    if history.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.step(history["trial"], history["hypervolume"], where="post", color="tab:blue")
    ax.plot(history["trial"], history["hypervolume"], "o", color="tab:blue", markersize=3)
    ax.set_title(f"hypervolume of {', '.join(o.removeprefix('valid_') for o in objectives)}\n({REFERENCE_NOTE})",
                 fontsize=10)
    ax.set_xlabel("trials (in start order)")
    ax.set_ylabel("hypervolume of the trials so far")
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def experiment_optuna_study(experiment: str | Path) -> Any:
    """The Optuna study in <experiment>/optuna.db (named after the experiment, else the only one)."""
    import optuna

    db = Path(experiment) / OPTUNA_DB
    if not db.is_file():
        raise FileNotFoundError(f"no Optuna study {OPTUNA_DB} in {str(experiment)!r}")
    storage = f"sqlite:///{db.resolve()}"
    names = optuna.get_all_study_names(storage=storage)
    name = Path(experiment).name
    if name not in names:
        if len(names) != 1:
            raise ValueError(f"{db}: no study named {name!r}; studies: {', '.join(names) or 'none'}")
        name = names[0]
    return optuna.load_study(study_name=name, storage=storage)


def param_importance(experiment: str | Path, path: str | Path) -> tuple[str | None, str]:
    """Bar chart of Optuna's parameter importances; (None, reason) where they cannot be computed."""
    import optuna
    from optuna.trial import TrialState

    try:
        study = experiment_optuna_study(experiment)
    except (FileNotFoundError, ValueError) as err:
        return None, f"Parameter importance not computed: {err}."
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, (f"Parameter importance not computed: the study has {len(complete)} finished "
                      f"(COMPLETE) trial(s); Optuna's evaluator needs at least 2 with varied parameters.")
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # seeded: same plot every run
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as err:
        return None, f"Parameter importance not computed: {err}"
    if not importances:
        return None, "Parameter importance not computed: no parameter varied across finished trials."
    plt = _pyplot()
    names, values = list(importances)[::-1], list(importances.values())[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.35 * len(names)))
    ax.barh(names, values, color="tab:blue")
    ax.set_xlabel("importance (Optuna fANOVA)")
    ax.set_title(f"parameter importance over {len(complete)} finished trials")
    return _save(fig, Path(path)), (f"Importance from optuna.importance.get_param_importances "
                                    f"(fANOVA) over the study's {len(complete)} COMPLETE trials.")


def write_plots(trials: pd.DataFrame, history: pd.DataFrame, experiment: str | Path,
                folder: str | Path, objectives: list[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """All plots into `folder`; returns {name: png path} and notes for plots that were skipped.
    With several `objectives`, the validation Pareto front and the hypervolume history too."""
    folder = Path(folder)
    made: dict[str, str] = {}
    notes: list[str] = []
    builders = [("gamma_sensitivity", lambda p: sensitivity(trials, "gamma", p)),
                ("n_clusters_sensitivity", lambda p: sensitivity(trials, "n_clusters", p)),
                ("learning_curves", lambda p: learning_curves(history, trials, p))]
    if "icc_share" in trials.columns:           # only searches that weight ICC by its loss share
        builders.insert(1, ("icc_share_sensitivity", lambda p: sensitivity(trials, "icc_share", p)))
    if objectives and len(objectives) > 1:
        from results.pareto import hypervolume_history

        builders += [("pareto_front", lambda p: pareto_plot(trials, objectives, p)),
                     ("hypervolume", lambda p: hypervolume_plot(hypervolume_history(trials, objectives),
                                                                objectives, p))]
    for name, build in builders:
        path = build(folder / f"{name}.png")
        if path:
            made[name] = path
        else:
            notes.append(f"{name}: no trial reported the values it needs.")
    path, note = param_importance(experiment, folder / "param_importance.png")
    if path:
        made["param_importance"] = path
    notes.append(note)
    return made, notes
