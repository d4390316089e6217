"""Tables and the anytime plot of the tabular benchmark (numbers from tabular_stats only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import _common as C
from tabular_stats import ALPHA, beats, mann_whitney, quartiles, regret_curve, replay_figures

GOAL_SHARE = 0.25          # TPE + ASHA should reach the target with at most 25 % of the grid's epochs


def _show(value: float, digits: int = 0) -> str:
    return "never" if math.isinf(value) else f"{value:.{digits}f}"


def span(values: Sequence[float | None], scale: float = 1.0, digits: int = 0) -> str:
    """"median [q1, q3]" (inf shown as "never")."""
    median, q1, q3 = (q / scale for q in quartiles(values))
    return f"{_show(median, digits)} [{_show(q1, digits)}, {_show(q3, digits)}]"


def method_figures(replays: Sequence[Any], grid: Mapping[str, Any], workers: Sequence[int]) -> list[dict]:
    return [replay_figures(r, grid, workers) for r in replays]


def method_row(name: str, figures: list[dict], grid: Mapping[str, Any], workers: Sequence[int]) -> list[Any]:
    epochs = [f["epochs_to_target"] for f in figures]
    share = [None if e is None else 100 * e / grid["epochs"] for e in epochs]
    row = [name, f"{sum(e is not None for e in epochs)}/{len(figures)}", span(epochs), span(share, digits=1)]
    row += [span([f["wall_to_target"][k] for f in figures], scale=60, digits=1) for k in workers]
    row += [span([f["epochs_total"] for f in figures]), span([f["picked_test"] for f in figures], digits=4)]
    return row


def grid_row(grid: Mapping[str, Any], workers: Sequence[int]) -> list[Any]:
    row = ["grid (every model)", "1/1", str(grid["epochs"]), "100.0"]
    row += [f"{grid['wall'][k] / 60:.1f}" for k in workers]
    return row + [str(grid["epochs"]), f"{grid['test']:.4f}"]


def columns(workers: Sequence[int]) -> list[str]:
    return (["method", "seeds at target", "trial-epochs to target", "% of grid's epochs"]
            + [f"sim. minutes to target, {k} trials at once" for k in workers]
            + ["trial-epochs spent", "test NDCG@10 of the pick"])


def goal_lines(by_method: Mapping[str, list[dict]], grid: Mapping[str, Any]) -> list[str]:
    """The issue's goals: TPE + ASHA's median trial-epochs to target within 25 % of the grid's
    epochs, and fewer than random + ASHA's. The second compares two samples of seeds, so it
    is met only when the test says the difference is real (`beats`), not when one median is
    lower by chance (60 vs 62 at p = 0.90 is a tie)."""
    if "tpe+asha" not in by_method:
        return []
    tpe_epochs = [f["epochs_to_target"] for f in by_method["tpe+asha"]]
    tpe = quartiles(tpe_epochs)[0]
    lines = [f"goal 1, TPE + ASHA median trial-epochs to target <= {100 * GOAL_SHARE:.0f} % of the grid's "
             f"{grid['epochs']}: {_show(tpe)} ({_show(100 * tpe / grid['epochs'], 1)} %) -> "
             f"{'met' if tpe <= GOAL_SHARE * grid['epochs'] else 'NOT met'}"]
    if "random+asha" in by_method:
        rnd_epochs = [f["epochs_to_target"] for f in by_method["random+asha"]]
        rnd = quartiles(rnd_epochs)[0]
        p = mann_whitney(tpe_epochs, rnd_epochs)
        verdict = "met" if beats(tpe_epochs, rnd_epochs) else (
            f"NOT met (no difference at p < {ALPHA:g})" if p is None or p >= ALPHA else "NOT met")
        lines.append(f"goal 2, TPE + ASHA needs fewer trial-epochs to target than random + ASHA: medians "
                     f"{_show(tpe)} vs {_show(rnd)}, {_p_text(p)} ({len(tpe_epochs)} + {len(rnd_epochs)} "
                     f"seeds) -> {verdict}")
    return lines


def _p_text(p: float | None) -> str:
    return "Mann-Whitney U undefined (too few seeds or all equal)" if p is None else \
        f"Mann-Whitney U two-sided p = {p:.2f}"


def plot_anytime(by_method: Mapping[str, Sequence[Any]], grid: Mapping[str, Any], path: Path) -> Path:
    """Best-so-far relative regret vs trial-epochs: median line and IQR band per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = max([grid["epochs"], *(len(r.events) for rs in by_method.values() for r in rs)])
    x = np.arange(1, length + 1)
    fig, ax = plt.subplots(figsize=(8, 5))
    floor = 1e-4
    for name, replays in by_method.items():
        curves = np.array([regret_curve(r.events, grid["best"], length) for r in replays])
        q1, q2, q3 = (np.maximum(np.quantile(curves, q, axis=0), floor) for q in (0.25, 0.5, 0.75))
        ax.plot(x, q2, label=f"{name} (median of {len(replays)} seeds)")
        ax.fill_between(x, q1, q3, alpha=0.2)
    ax.axhline(1 - 0.99, color="grey", linestyle=":", label="target: within 1 % of the grid's best")
    ax.axvline(grid["epochs"], color="black", linestyle="--", label=f"grid: all {grid['epochs']} trial-epochs")
    ax.axvline(GOAL_SHARE * grid["epochs"], color="green", linestyle=":", label="goal: 25 % of the grid")
    ax.set(xscale="log", yscale="log", xlabel="trial-epochs", ylim=(floor / 2, 1.2),
           ylabel="regret: 1 - best-so-far / grid's best valid NDCG@10 (0 drawn at 1e-4)",
           title="Anytime performance on the recorded table (median, IQR band)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def methods_table(by_method: Mapping[str, Sequence[Any]], grid: Mapping[str, Any], workers: Sequence[int]) -> tuple[str, list[str]]:
    figures = {name: method_figures(replays, grid, workers) for name, replays in by_method.items()}
    rows = [method_row(name, f, grid, workers) for name, f in figures.items()] + [grid_row(grid, workers)]
    return C.markdown_table(columns(workers), rows), goal_lines(figures, grid)


def tuner_table(variants: Mapping[str, Sequence[Any]], grid: Mapping[str, Any], workers: Sequence[int]) -> str:
    rows = [method_row(label, method_figures(replays, grid, workers), grid, workers)
            for label, replays in variants.items()]
    return C.markdown_table(["TPE + ASHA variant", *columns(workers)[1:]], rows)
