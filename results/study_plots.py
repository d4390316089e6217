"""The study's plots (PNG, matplotlib's Agg backend): Pareto front, search budget, gamma effects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

#: the arm without ICC that a study's ICC arm and a dose-response compare against (written by
#: results.orchestration, read by the findings and the dose report)
CONTROL = "control"
VARIANT_LABEL = {"plain": "plain", "llmesr": "LLM-ESR", "icc": "ICC", CONTROL: "no-ICC control"}


SEARCH_SUFFIX = "-search"


def arm_parts(arm: str) -> tuple[str, str]:
    """(variant, backbone) of an arm name such as icc-sasrec or icc-sasrec-search1."""
    variant, backbone = arm.split(SEARCH_SUFFIX)[0].split("-", 1)
    return variant, backbone


def arm_search_seed(arm: str) -> int | None:
    """The searcher seed of an extra search of an arm (icc-sasrec-search1: 1), None for the
    arm's first search, the one whose winner the study compares."""
    _, found, seed = arm.partition(SEARCH_SUFFIX)
    return int(seed) if found else None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


VARIANT_COLOR = {"plain": "tab:gray", "llmesr": "tab:blue", "icc": "tab:red"}


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return str(path)


def plot_pareto(trials: pd.DataFrame, front: pd.DataFrame, path: Path) -> str | None:
    scored = trials[trials["valid_ndcg_10"].notna() & (trials["state"] != "errored")]
    if scored.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    markers = {"sasrec": "o", "gru4rec": "s", "bert4rec": "^"}
    for (variant, backbone), part in scored.groupby(["variant", "backbone"]):
        ax.scatter(part["valid_ndcg_10"], part["valid_tail_item_ndcg_10"], s=28, alpha=0.75,
                   color=VARIANT_COLOR.get(variant, "k"), marker=markers.get(backbone, "o"),
                   label=f"{VARIANT_LABEL.get(variant, variant)} {backbone}")
    if not front.empty:
        ax.plot(front["valid_ndcg_10"], front["valid_tail_item_ndcg_10"], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("validation NDCG@10 (best epoch)")
    ax.set_ylabel("validation tail-item NDCG@10")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Every search trial: overall vs tail-item quality")
    return _save(fig, path)


def plot_arm_fronts(trials: pd.DataFrame, backbones: list[str], path: Path) -> str | None:
    """Per backbone: every arm's trials (faint) and its own Pareto front (a step line), so the
    LLM-ESR and ICC fronts can be compared at one budget."""
    from results.pareto import front_candidates, front_indices

    scored = front_candidates(trials)
    if scored.empty:
        return None
    fig, panels = _backbone_panels(backbones)
    for ax, backbone in panels:
        for arm, part in scored[scored["backbone"] == backbone].groupby("arm"):
            variant, _ = arm_parts(arm)
            color = VARIANT_COLOR.get(variant, "k")
            ax.scatter(part["valid_ndcg_10"], part["valid_tail_item_ndcg_10"], s=12, alpha=0.3, color=color)
            points = list(zip(part["valid_ndcg_10"], part["valid_tail_item_ndcg_10"]))
            front = sorted(points[i] for i in front_indices(points))
            ax.step([x for x, _ in front], [y for _, y in front], where="pre", color=color,
                    linestyle="-" if arm_search_seed(arm) is None else ":", label=arm)
        _front_axes(ax, backbone, "validation NDCG@10", "validation tail-item NDCG@10")
    return _save(fig, path)


def plot_confirmed_fronts(confirmed: pd.DataFrame, backbones: list[str], path: Path) -> str | None:
    """Per backbone: each arm's front trials at their test means with 95 % CIs on both axes (the
    best trial ringed) and the step line through them: the fronts as confirmed, not as searched."""
    done = confirmed.dropna(subset=["test_ndcg_10", "test_tail_item_ndcg_10"]) if not confirmed.empty else confirmed
    if done.empty:
        return None
    fig, panels = _backbone_panels(backbones)
    for ax, backbone in panels:
        for arm, part in done[done["backbone"] == backbone].groupby("arm"):
            color = VARIANT_COLOR.get(arm_parts(arm)[0], "k")
            ax.errorbar(part["test_ndcg_10"], part["test_tail_item_ndcg_10"], xerr=part["test_ndcg_10_ci"].fillna(0),
                        yerr=part["test_tail_item_ndcg_10_ci"].fillna(0), fmt="o", color=color, capsize=3, label=arm)
            best = part[part["best"]]
            ax.scatter(best["test_ndcg_10"], best["test_tail_item_ndcg_10"], s=120, facecolors="none", edgecolors=color)
            ordered = part.sort_values("test_ndcg_10")
            ax.step(ordered["test_ndcg_10"], ordered["test_tail_item_ndcg_10"], where="post", color=color, alpha=0.5)
        _front_axes(ax, backbone, "test NDCG@10 (confirmed)", "test tail-item NDCG@10 (confirmed)")
    return _save(fig, path)


def _backbone_panels(backbones: list[str]) -> tuple[Any, list[tuple[Any, str]]]:
    """One figure, one panel per backbone side by side: (figure, [(axes, backbone), ...])."""
    fig, axes = _pyplot().subplots(1, len(backbones), figsize=(5 * len(backbones), 4), squeeze=False)
    return fig, list(zip(axes[0], backbones))


def _front_axes(ax: Any, backbone: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(backbone)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def plot_budget(curves: pd.DataFrame, backbones: list[str], path: Path) -> str | None:
    if curves.empty:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(backbones), figsize=(5 * len(backbones), 3.8), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        for arm, part in curves.groupby("arm"):
            variant, bb = arm_parts(arm)
            if bb == backbone:
                ax.step(part["trial_epochs"], part["best_so_far"], where="post",
                        color=VARIANT_COLOR.get(variant, "k"), label=VARIANT_LABEL.get(variant, variant))
        ax.set_title(backbone)
        ax.set_xlabel("cumulative trial-epochs")
        ax.set_ylabel("best validation NDCG@10 so far")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _smooth(x: pd.Series, y: pd.Series, points: int = 50, bandwidth: float = 0.35) -> tuple[list, list]:
    """Gaussian-kernel running mean of y over log10(x): a trend line without a model."""
    import numpy as np

    lx, yy = np.log10(np.asarray(x, float)), np.asarray(y, float)
    if lx.size < 3:
        return [], []
    grid = np.linspace(lx.min(), lx.max(), points)
    weights = np.exp(-0.5 * ((grid[:, None] - lx[None, :]) / bandwidth) ** 2)
    trend = (weights * yy).sum(1) / weights.sum(1)
    return list(10 ** grid), list(trend)


def plot_effects(trials: pd.DataFrame, backbones: list[str], path: Path) -> str | None:
    """ICC trials: validation NDCG@10 (overall, tail) against gamma and n_clusters (and against
    min_cluster_size where HDBSCAN trials searched it: a conditional space), and the ICC share of
    the loss against gamma, with a kernel-smoothed trend per backbone (x: stopped by ASHA, so
    its best epoch came from fewer epochs)."""
    icc = trials[(trials["variant"] == "icc") & trials["valid_ndcg_10"].notna()]
    if icc.empty or "gamma" not in icc.columns:
        return None
    plt = _pyplot()
    panels = [("gamma", "valid_ndcg_10"), ("gamma", "valid_tail_item_ndcg_10"),
              ("n_clusters", "valid_ndcg_10"), ("gamma", "icc_carried")]
    if "min_cluster_size" in icc.columns and icc["min_cluster_size"].notna().any():
        panels.insert(3, ("min_cluster_size", "valid_ndcg_10"))
    from matplotlib.ticker import LogLocator, LogFormatterSciNotation, NullFormatter

    fig, axes = plt.subplots(1, len(panels), figsize=(4.75 * len(panels), 4))
    fig.subplots_adjust(wspace=0.35)
    colors = dict(zip(backbones, ("tab:purple", "tab:green", "tab:orange")))
    for ax, (x, y) in zip(axes, panels):
        if x not in icc.columns or y not in icc.columns:
            ax.set_visible(False)
            continue
        for backbone in backbones:
            part = icc[(icc["backbone"] == backbone) & icc[x].notna() & icc[y].notna()]
            part = part[part[x] > 0]
            if part.empty:
                continue
            finished = part["state"] == "terminated"
            ax.scatter(part[x][finished], part[y][finished], s=24, color=colors.get(backbone), label=backbone)
            ax.scatter(part[x][~finished], part[y][~finished], s=24, marker="x", color=colors.get(backbone))
            tx, ty = _smooth(part[x], part[y])
            ax.plot(tx, ty, color=colors.get(backbone), lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(LogFormatterSciNotation())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x)
        ax.set_ylabel("ICC's share of the loss (mean over epochs)" if y == "icc_carried"
                      else y.replace("valid_", "validation "))
        ax.legend(fontsize=8)
    return _save(fig, path)


