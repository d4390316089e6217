"""The dose-response's files: every run (runs.csv), every dose against the control (doses.csv),
each clustering's best dose confirmed over more seeds (confirmed.csv), a Markdown summary (dose.md) and test NDCG@10 against ICC's loss share, one line per clustering
with 95 % CIs and the control as a band (dose.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from results.epoch_choice import chosen_on
from results.stats import ALPHA, at_cap_sentence, change_text, ci_text
from results.study_plots import CONTROL

METRIC_LABEL = {"ndcg_10": "test NDCG@10", "tail_item_ndcg_10": "test tail-item NDCG@10"}


def runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"arm": r["arm"], "seed": r["seed"], "icc_share": r["config"]["model"]["icc_share"],
             "cluster_method": r["config"]["clusters"]["method"], "best_epoch": r["best_epoch"],
             "epochs": r["epochs"], "seconds": r["seconds"],
             **{f"test_{k}": v for k, v in r["test"].items() if k in METRIC_LABEL}} for r in runs]
    columns = ["arm", "seed", "icc_share", "cluster_method", "best_epoch", "epochs", "seconds",
               *(f"test_{k}" for k in METRIC_LABEL)]
    return pd.DataFrame(rows, columns=columns)            # the columns even before the first run


def _epoch_choice(config: Any) -> str:
    """", best epoch by validation X" where train.select_metric is not the default NDCG@10."""
    chosen = chosen_on(config.train.select_metric)
    return f", best epoch by {chosen} (train.select_metric)" if chosen else ""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def references_sentence(references: dict[str, dict[str, dict[str, float]]] | None) -> str:
    """The training-free references on test (results.references: the same split and protocol),
    to read every trained number against; or why they are missing."""
    if not references:
        return "Training-free references: not computed (the dataset could not be prepared here)."
    scores = "; ".join(f"{name.replace('_', ' ')} {_fmt(m.get('ndcg_10'))} (tail items {_fmt(m.get('tail_item_ndcg_10'))})"
                       for name, m in sorted(references.get("test", {}).items()))
    return f"Training-free references, test NDCG@10 on the same split and protocol: {scores}."


_NO_TEST = ("not run yet", "one seed: no test yet")


def answer(confirmed: list[dict[str, Any]], margin: float, missing: int = 0) -> list[str]:
    """The primary family's answer in words, one sentence per metric: where ICC helps (better by
    Holm), or that every clustering's best share is within the equivalence margin, or what each
    clustering's best share did instead; nothing before the family is whole. The README and the
    study's findings quote these sentences, so they always say what the table says. With runs
    still `missing` (the confirmation under way) a first sentence says the answer is interim."""
    sentences = []
    for metric, label in METRIC_LABEL.items():
        rows = [r for r in confirmed if r["metric"] == metric]
        if rows:
            sentences.append(_metric_answer(label, rows, margin))
    if sentences and missing:
        sentences.insert(0, f"Interim: {missing} planned runs are not done yet, so this may change.")
    return sentences


def _dose_words(row: dict[str, Any], with_p: bool = True, margin: float | None = None) -> str:
    """A dose and its change; with `with_p` its Holm p, and where TOST puts a significant change
    inside the `margin` that too (Scientific's HDBSCAN 5: -1.3 %, Holm p 0.002, TOST p 0.002)."""
    change = "" if row["relative"] is None else f" {change_text(row)}"
    p = ""
    if with_p and row.get("p_holm") is not None:
        tost = row.get("tost_p")
        within = (f"; yet within ±{100 * margin:g} %, TOST p {_p_text(tost)}"
                  if margin is not None and tost is not None and tost < ALPHA else "")
        p = f" (Holm p {_p_text(row['p_holm'])}{within})"
    return f"{row['clustering']} at {100 * row['share']:g} % of the loss{change}{p}"


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_bound(p: float) -> str:
    """An upper bound on p-values as words: "< 0.001" or "≤ 0.030"."""
    return "< 0.001" if p < 0.001 else f"≤ {p:.3f}"


def _metric_answer(label: str, rows: list[dict[str, Any]], margin: float) -> str:
    """One metric's sentence over its rows of the primary family: the clusterings where ICC is
    better first, then every other clustering by what its best share did."""
    seeds = min(r["seeds"] for r in rows)
    equivalent = [r for r in rows if r["verdict"].startswith("equivalent")]
    if len(equivalent) == len(rows):
        worst_tost = max(r["tost_p"] for r in rows)
        return (f"ICC makes no difference to {label} beyond ±{100 * margin:g} %: every clustering's best share is "
                f"within the margin of no ICC (every TOST p {_p_bound(worst_tost)}, {seeds}+ paired seeds).")
    better = sorted((r for r in rows if r["verdict"] == "better"), key=lambda r: -(r["relative"] or 0.0))
    groups = [("worse", [r for r in rows if r["verdict"] == "worse"], True),
              (f"within ±{100 * margin:g} %", equivalent, False),
              ("inconclusive", [r for r in rows if r["verdict"] in ("inconclusive", *_NO_TEST)], False)]
    said = "; ".join(f"{name}: " + ", ".join(_dose_words(r, with_p, margin) for r in members)
                     for name, members, with_p in groups if members)
    if better:
        lead = f"ICC helps {label} ({seeds}+ paired seeds): " + "; ".join(_dose_words(r, True, margin) for r in better)
        return lead + (f"; the other clusterings, {said}." if said else ".")
    return f"ICC does not help {label} at any clustering's best share ({seeds}+ paired seeds); {said}."


def markdown(config: Any, rows: list[dict[str, Any]], runs: pd.DataFrame, missing: int = 0,
             confirmed: list[dict[str, Any]] | None = None,
             references: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
    """The summary: the setting, the cost, the training-free references, the primary family (each
    clustering's best dose, confirmed) and per metric a table of every dose of the screen."""
    control = runs[runs["arm"] == CONTROL]
    partial = ([f"**Partial: {missing} of {missing + len(runs)} planned runs are not done yet.** Each dose is "
                f"compared on the seeds it shares with the control (`seeds`); one seed gives no test.", ""]
               if missing else [])
    lines = ["# ICC dose-response", "", *partial,
             f"Base: {config.data.name}, {config.model.backbone}, variant {config.model.variant} settings "
             f"(lr {config.train.lr:g}, dropout {config.model.dropout:g}, hidden {config.model.hidden_size}, "
             f"max_len {config.model.max_len}, {config.train.epochs} epochs, patience {config.train.patience}"
             f"{_epoch_choice(config)}); "
             f"seeds {config.dose.seeds}; {len(runs)} runs, {runs['seconds'].sum() / 3600:.1f} hours of "
             f"training, wall clock (one thread each). Control: the same config without ICC "
             f"(test NDCG@10 {_fmt(control['test_ndcg_10'].mean())}).", "",
             references_sentence(references), "",
             "Tests: paired t over seeds (p, and Holm over the doses of a metric: one exploratory family; "
             "a verdict of better or worse needs the Holm p below 0.05); "
             f"TOST at ±{100 * config.dose.margin:g} % of the control's mean (equivalence). "
             "`realised` is ICC's share of the loss over epoch 1 / over the best epoch: the share names the "
             "weight, calibrated once at initialisation, and the term shrinks as training pulls the ID "
             "embeddings towards their cluster centers.", "",
             at_cap_sentence(runs["best_epoch"].tolist(), config.train.epochs), ""]
    if config.dose.confirm_seeds:
        lines += _confirmed_section(config, confirmed or [], missing)
    for metric, label in METRIC_LABEL.items():
        title = f"## Screen: {label}" if config.dose.confirm_seeds else f"## {label}"
        lines += [title, "", *_table([r for r in rows if r["metric"] == metric], with_metric=False), ""]
    return "\n".join(lines)


def _confirmed_section(config: Any, confirmed: list[dict[str, Any]], missing: int = 0) -> list[str]:
    """The primary family: each clustering's best share, chosen on validation over the screen's
    seeds, against the control on every seed; Holm over the whole table."""
    head = ["## Primary: each clustering's best share, confirmed", "",
            f"Each clustering's share with the highest mean validation NDCG@10 over the screen's seeds "
            f"{config.dose.seeds}, then run with the control on {config.dose.confirm_seeds} as well; tests on "
            f"every seed both have. Holm over this table (pre-registered: the dose-response's primary family); "
            f"the screen below is exploratory.", ""]
    if not confirmed:
        return head + ["Not chosen yet: the screen is not whole.", ""]
    said = [f"- {sentence}" for sentence in answer(confirmed, config.dose.margin, missing)]
    return head + ["**Answer:**", "", *said, ""] + _table(confirmed, with_metric=True) + [""]


def _table(rows: list[dict[str, Any]], with_metric: bool) -> list[str]:
    metric_head, metric_rule = ("| metric ", "|---") if with_metric else ("", "")
    lines = [f"{metric_head}| clustering | share | seeds | realised | mean ± 95 % CI | vs control [95 % CI] | p | p (Holm) "
             f"| TOST p | verdict |", f"{metric_rule}|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = ci_text(r) or "-"
        metric = f"| {METRIC_LABEL[r['metric']]} " if with_metric else ""
        realised = f"{_fmt(r['realised_share'], 3)} / {_fmt(r.get('realised_share_best'), 3)}"
        lines.append(f"{metric}| {r['clustering']} | {r['share']:g} | {r['seeds']} | {realised} "
                     f"| {ci} | {change_text(r)} | {_fmt(r['p_value'], 3)} | {_fmt(r.get('p_holm'), 3)} "
                     f"| {_fmt(r['tost_p'], 3)} | {r['verdict']} |")
    return lines


def plot(config: Any, rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Test NDCG@10 (overall, tail) against the share (log axis), one line per clustering."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r["mean"] is not None for r in rows):      # nothing run yet: no plot
        return None
    fig, axes = plt.subplots(1, len(METRIC_LABEL), figsize=(11, 4))
    for ax, (metric, label) in zip(axes, METRIC_LABEL.items()):
        mine = [r for r in rows if r["metric"] == metric and r["mean"] is not None]
        for clustering in config.dose.clusterings:
            line = sorted((r for r in mine if r["clustering"] == clustering), key=lambda r: r["share"])
            if line:
                ax.errorbar([r["share"] for r in line], [r["mean"] for r in line],
                            yerr=[r["half_width"] or 0.0 for r in line], marker="o", capsize=3, label=clustering)
        control = next((r["control_mean"] for r in mine), None)
        if control is not None:
            ax.axhline(control, color="black", linestyle="--", label="no ICC (control)")
            margin = config.dose.margin * control
            ax.axhspan(control - margin, control + margin, color="grey", alpha=0.2,
                       label=f"±{100 * config.dose.margin:g} % (TOST margin)")
        ax.set_xscale("log")
        ax.set_xlabel("ICC share of the loss (model.icc_share)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_dose_report(config: Any, out: Path, runs: list[dict[str, Any]], rows: list[dict[str, Any]],
                      missing: int = 0, confirmed: list[dict[str, Any]] | None = None,
                      references: dict[str, dict[str, dict[str, float]]] | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    frame = runs_frame(runs)
    frame.to_csv(out / "runs.csv", index=False)
    pd.DataFrame(rows).to_csv(out / "doses.csv", index=False)
    if confirmed:
        pd.DataFrame(confirmed).to_csv(out / "confirmed.csv", index=False)
    else:
        (out / "confirmed.csv").unlink(missing_ok=True)      # no family yet: an older table would mislead
    (out / "dose.md").write_text(markdown(config, rows, frame, missing, confirmed, references))
    image = plot(config, rows, out / "dose.png")
    return {"folder": str(out), "markdown": str(out / "dose.md"), "plot": str(image) if image else None,
            "runs": len(frame), "missing": missing, "doses": len(rows) // len(METRIC_LABEL),
            "answer": answer(confirmed or [], config.dose.margin, missing)}
