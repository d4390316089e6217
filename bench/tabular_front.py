"""What a replayed multi-objective search covers: the hypervolume (against the origin,
results.pareto) of its trials' points after each trial-epoch, against the grid's.

A trial's point is each objective at its best epoch so far (the epoch of its highest validation
NDCG@10, the weights it would keep: docs/multiobjective.md), so a trial ASHA stops keeps the
point it had. The grid trains every model to its end under the replays' stopping rule; its
hypervolume is what searching every model finds. Target: TARGET_SHARE of it, as the
one-objective table's target is of the grid's best NDCG@10.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import _common as C
from tabular_report import span
from tabular_stats import TARGET_SHARE, mann_whitney, run_length

from model.contract import at_best
from results.pareto import hypervolume, reference_point


def model_point(record: Mapping[str, Any], epochs: int, patience: int, objectives: Sequence[str]) -> tuple:
    """A model trained alone to its end: each objective at its best epoch."""
    last = record["epochs"][run_length(record, epochs, patience) - 1]
    return tuple(float(last[at_best(name)]) for name in objectives)


def grid_hypervolume(table: Mapping[str, Any], epochs: int, patience: int, objectives: Sequence[str]) -> float:
    points = [model_point(r, epochs, patience, objectives) for r in table["records"].values()]
    return hypervolume(points, reference_point(len(objectives)))


def hypervolume_curve(events: Sequence[Any]) -> list[float]:
    """The hypervolume of the trials' points after each trial-epoch, in report order."""
    points: dict[str, tuple] = {}
    curve = []
    for event in events:
        points[event.trial] = tuple(event.point)
        curve.append(hypervolume(list(points.values()), reference_point(len(event.point))))
    return curve


def front_figures(replay: Any, grid_volume: float) -> dict[str, Any]:
    """Trial-epochs until the trials' hypervolume reaches the target, and its share at the end."""
    curve = hypervolume_curve(replay.events)
    reached = next((i + 1 for i, volume in enumerate(curve) if volume >= TARGET_SHARE * grid_volume), None)
    return {"epochs_to_target": reached, "final_share": curve[-1] / grid_volume if curve else 0.0,
            "epochs_total": len(replay.events)}


def front_table(by_method: Mapping[str, Sequence[Any]], grid_volume: float, grid_epochs: int) -> str:
    """One row per method (median [IQR] over seeds), then Mann-Whitney p of each method's
    trial-epochs to target against the first method's."""
    figures = {method: [front_figures(r, grid_volume) for r in replays] for method, replays in by_method.items()}
    first = next(iter(figures), None)
    rows = []
    for method, found in figures.items():
        epochs = [f["epochs_to_target"] for f in found]
        p = mann_whitney(epochs, [f["epochs_to_target"] for f in figures[first]]) if method != first else None
        rows.append([method, f"{sum(e is not None for e in epochs)}/{len(found)}", span(epochs),
                     span([100 * f["final_share"] for f in found], digits=1), span([f["epochs_total"] for f in found]),
                     "" if p is None else f"{p:.3f}"])
    rows.append(["grid (every model)", "1/1", str(grid_epochs), "100.0", str(grid_epochs), ""])
    return C.markdown_table(["method", "seeds at target", f"trial-epochs to {TARGET_SHARE:.0%} of the grid's hypervolume",
                             "hypervolume at the end, % of the grid's", "trial-epochs spent",
                             f"p against {first} (trial-epochs to target)"], rows)

