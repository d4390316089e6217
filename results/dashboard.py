"""One self-contained HTML page per experiment: tables inline, plots as base64 PNG.

No scripts, no external URLs, no fonts to fetch: the page opens from disk (file://) in any
browser, can be mailed or archived, and shows the same thing years later.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping

import pandas as pd

from results.tables import to_html

TEST_NOTE = ("The search never reads test metrics: Optuna and ASHA see only validation metrics "
             "(tune.objectives and tune.prune_metric; validation NDCG@10 by default). "
             "test_* values are computed once, after a trial finishes by itself, with the weights "
             "of its best validation epoch; trials stopped early by ASHA have none.")
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table.table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
table.table th, table.table td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.table th { background: #f3f3f3; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.8em; }
.scroll { overflow-x: auto; } img { max-width: 100%; } .muted { color: #666; font-size: 0.9em; }
"""
TITLES = {"best_per_backbone": "Best configuration per backbone (and the training-free references)",
          "segments": "Leaders and references: overall, new-target, tail and head Hit@10 / NDCG@10",
          "trials": "All trials",
          "pareto": "Validation Pareto front: its trials with their test metrics",
          "hypervolume": "Hypervolume after each trial (reference point: the origin)"}
PLOT_TITLES = {"gamma_sensitivity": "Gamma sensitivity (calibrated gamma where icc_share was searched)",
               "icc_share_sensitivity": "ICC loss-share sensitivity",
               "n_clusters_sensitivity": "Cluster-count sensitivity (KMeans ICC trials)",
               "learning_curves": "Learning curves (ASHA-stopped trials dashed, ending in x)",
               "param_importance": "Parameter importance",
               "pareto_front": "Validation Pareto front (every trial at its best epoch; the front ringed)",
               "hypervolume": "Hypervolume history"}


def _image(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table_section(name: str, frame: pd.DataFrame, index: bool) -> str:
    title = TITLES.get(name) or f"gamma x n_clusters, {name.removeprefix('grid_')}: best valid NDCG@10 per cell"
    if frame.empty:
        body = '<p class="muted">No trial has the values this table needs.</p>'
    else:
        body = f'<div class="scroll">{to_html(frame, index=index, table_id=name)}</div>'
    return f'<section id="section-{html.escape(name)}"><h2>{html.escape(title)}</h2>{body}</section>'


def _counts(trials: pd.DataFrame) -> str:
    counts = trials["state"].value_counts()
    return ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items())


def build_page(name: str, trials: pd.DataFrame, tables: Mapping[str, tuple[pd.DataFrame, bool]],
               plots: Mapping[str, str], notes: list[str]) -> str:
    """The dashboard's HTML text (tables in the order: leaders, segments, grids, plots, all trials)."""
    order = ["best_per_backbone", "pareto", "segments"] + sorted(t for t in tables if t.startswith("grid_"))
    parts = [f"<h1>Experiment {html.escape(name)}</h1>",
             f'<p>{len(trials)} trials: {html.escape(_counts(trials))}. "Best" = the epoch with the '
             f"highest validation NDCG@10 of a trial.</p>",
             f'<p class="note" id="test-note">{html.escape(TEST_NOTE)}</p>']
    parts += [_table_section(t, *tables[t]) for t in order if t in tables]
    for plot, path in plots.items():
        title = PLOT_TITLES.get(plot, plot)
        parts.append(f'<section id="plot-{plot}"><h2>{html.escape(title)}</h2>{_image(path, title)}</section>')
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f'<section id="notes"><h2>Notes</h2><ul>{items}</ul></section>')
    if "trials" in tables:
        parts.append(_table_section("trials", *tables["trials"]))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>icc-tune: {html.escape(name)}</title><style>{STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def write_dashboard(path: str | Path, name: str, trials: pd.DataFrame,
                    tables: Mapping[str, tuple[pd.DataFrame, bool]], plots: Mapping[str, str],
                    notes: list[str]) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_page(name, trials, tables, plots, notes), encoding="utf-8")
    return str(path)
