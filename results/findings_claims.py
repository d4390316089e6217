"""What the study's confirmation runs claim: paired comparisons per backbone, the pre-registered
primary family (the only Holm family) and TOST equivalence, the sentences the findings open
with, and how much the searcher's own seed moves an arm's confirmed score. Numbers only come from
the runs (results.stats); results.findings lays them out."""

from __future__ import annotations

import math

import pandas as pd

from results.references import REFERENCE_LABEL
from results.stats import ALPHA, change_text, equivalence, holm, mean_ci, paired
from results.study_plots import VARIANT_LABEL
from tuning.config import STUDY_COMPARISONS, STUDY_METRICS

COMPARISONS = tuple(tuple(pair.split("-vs-")) for pair in STUDY_COMPARISONS)   # (treatment, control)


def search_seed_spread(runs: pd.DataFrame, first_seed: int) -> pd.DataFrame:
    """Per arm searched with several searcher seeds: each search winner's confirmed test NDCG@10
    (overall and tail-item, mean over the confirmation seeds) and their spread, i.e. how much
    the search's own seed moves the answer (to set beside the differences between arms)."""
    extra = runs[runs["variant"] != "control"] if not runs.empty else runs
    if extra.empty or extra["search"].isna().all():
        return pd.DataFrame()
    rows = []
    for (backbone, variant), group in extra.groupby(["backbone", "variant"], sort=False):
        group = group.assign(search_seed=group["search"].map(lambda v: first_seed if pd.isna(v) else int(v)))
        means = group.groupby("search_seed")[["test_ndcg_10", "test_tail_item_ndcg_10"]].mean()
        if len(means) < 2:
            continue
        row = {"backbone": backbone, "variant": VARIANT_LABEL[variant], "search seeds": len(means)}
        for column, label in (("test_ndcg_10", "NDCG@10"), ("test_tail_item_ndcg_10", "tail-item NDCG@10")):
            values = means[column]
            row[f"{label} per search seed"] = " / ".join(f"{v:.4f}" for v in values)
            row[f"{label} spread"] = float(values.max() - values.min())
            row[f"{label} spread %"] = 100 * float(values.max() - values.min()) / float(values.mean())
            row[f"{label} spread p"] = _spread_p(group, column, values.idxmax(), values.idxmin())
        rows.append(row)
    return pd.DataFrame(rows)


def _spread_p(group: pd.DataFrame, column: str, high: int, low: int) -> float:
    """Paired t-test p of the highest against the lowest search winner over the confirmation
    seeds both ran: whether the spread is the searches' or the seeds' own noise (NaN under 2)."""
    by_seed = group.pivot_table(index="seed", columns="search_seed", values=column)[[high, low]].dropna()
    p = paired(by_seed[high].tolist(), by_seed[low].tolist())["p_value"] if len(by_seed) >= 2 else None
    return math.nan if p is None else float(p)


def comparisons(runs: pd.DataFrame, backbones: list[str], primary: list[str],
                margin: float = 0.02) -> pd.DataFrame:
    """Paired comparisons per backbone (ICC vs LLM-ESR, ICC vs its control, LLM-ESR vs plain) on
    every test metric. The pre-registered `primary` family (comparison:metric, every backbone) is
    Holm-adjusted together; every other row is exploratory (raw p only). Each row also carries
    TOST at `margin` (relative to the control's mean): "no effect" then has a number."""
    rows = []
    for backbone in backbones:
        for treat, control in COMPARISONS:
            a = runs[(runs["backbone"] == backbone) & (runs["variant"] == treat)].sort_values("seed")
            b = runs[(runs["backbone"] == backbone) & (runs["variant"] == control)].sort_values("seed")
            seeds = sorted(set(a["seed"]) & set(b["seed"]))
            if len(seeds) == 0:
                continue
            a, b = a[a["seed"].isin(seeds)], b[b["seed"].isin(seeds)]
            for metric in STUDY_METRICS:
                test = paired(a[f"test_{metric}"].tolist(), b[f"test_{metric}"].tolist())
                tost = equivalence(a[f"test_{metric}"].tolist(), b[f"test_{metric}"].tolist(), margin)
                family = "primary" if f"{treat}-vs-{control}:{metric}" in primary else "exploratory"
                rows.append({"backbone": backbone, "comparison": f"{VARIANT_LABEL[treat]} vs {VARIANT_LABEL[control]}",
                             "metric": f"test {metric}", "family": family, "seeds": test["n"],
                             "difference": test["diff"], "ci95": test["diff_half_width"],
                             "control_mean": test["control_mean"],
                             "relative_%": None if test["relative"] is None else 100 * test["relative"],
                             "p": test["p_value"], "d_z": test["d_z"], "tost_p": tost["p_value"]})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        chosen = frame["family"] == "primary"
        adjusted = holm([None if pd.isna(p) else float(p) for p in frame.loc[chosen, "p"]])
        frame["p_holm"] = math.nan
        frame.loc[chosen, "p_holm"] = [math.nan if p is None else p for p in adjusted]
    return frame


def _p_text(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "no test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _effect(row: pd.Series, what: str) -> str:
    """A primary comparison is judged by its Holm-adjusted p; an exploratory one by its raw p,
    and says so. A significant difference inside the TOST margin says that too: on Beauty ICC
    moved overall NDCG@10 by +0.5 % at Holm p 0.035, a change the margin calls no difference."""
    rel = row["relative_%"]
    change = "" if rel is None or pd.isna(rel) else change_text(
        {"relative": rel / 100, "diff": row["difference"], "diff_half_width": row["ci95"],
         "control_mean": row.get("control_mean")})
    primary = row.get("family") == "primary"
    p_raw = row["p_holm"] if primary else row["p"]
    p = None if pd.isna(p_raw) else float(p_raw)
    label = (f"Holm {_p_text(p)}" if p is not None else _p_text(p)) if primary else f"{_p_text(p)}, exploratory"
    tost = row.get("tost_p")
    equivalent = tost is not None and not pd.isna(tost) and float(tost) < ALPHA
    if p is not None and p < ALPHA:                  # significant, yet maybe too small to matter
        within = f", yet within the equivalence margin (TOST p = {float(tost):.3f})" if equivalent else ""
        return f"{change} {what} ({label}){within}"
    if equivalent:
        return (f"no difference in {what} beyond the equivalence margin "
                f"({change}, {label}; TOST p = {float(tost):.3f})")
    return f"no significant difference in {what} ({change}, {label}; not shown equivalent either)"


def sentences(comp: pd.DataFrame, backbones: list[str]) -> list[str]:
    """One plain sentence per backbone, generated from the paired comparisons."""
    out = []
    for backbone in backbones:
        parts = []
        for treat, control in COMPARISONS:
            label = f"{VARIANT_LABEL[treat]} vs {VARIANT_LABEL[control]}"
            rows = comp[(comp["backbone"] == backbone) & (comp["comparison"] == label)] if not comp.empty else comp
            if rows.empty:
                continue
            overall = rows[rows["metric"] == "test ndcg_10"].iloc[0]
            tail = rows[rows["metric"] == "test tail_item_ndcg_10"].iloc[0]
            parts.append(f"{label}: {_effect(overall, 'NDCG@10')}; tail items: {_effect(tail, 'tail-item NDCG@10')}")
        if parts:
            out.append(f"**{backbone}**: " + ". ".join(parts) + ".")
    return out


#: the test metrics a reference is set against every trained arm on: (run column suffix, words)
REFERENCE_CHECKS = (("ndcg_10", "NDCG@10"), ("tail_item_ndcg_10", "tail-item NDCG@10"))


def reference_sentences(runs: pd.DataFrame, refs: dict, backbones: list[str]) -> list[str]:
    """A sentence wherever a training-free reference scores above the upper end of every trained
    arm's 95 % CI on a test metric: the study's trained numbers are read against that floor, and
    a floor above them is a finding (on Beauty the last item's text leads on tail items)."""
    out = []
    references = refs.get("test", {}) if refs else {}
    for backbone in backbones:
        part = runs[runs["backbone"] == backbone] if not runs.empty else runs
        for column, words in REFERENCE_CHECKS:
            arms = {variant: mean_ci(group[f"test_{column}"].dropna().tolist())
                    for variant, group in part.groupby("variant")} if not part.empty else {}
            arms = {variant: ci for variant, ci in arms.items() if ci["n"]}
            scored = {name: values[column] for name, values in references.items() if column in values}
            if not arms or not scored:
                continue
            name = max(scored, key=scored.get)
            tops = {variant: ci["mean"] + (ci["half_width"] or 0.0) for variant, ci in arms.items()}
            if scored[name] <= max(tops.values()):
                continue
            best = max(arms, key=lambda variant: arms[variant]["mean"])
            ci = arms[best]
            spread = f" ± {ci['half_width']:.4f}" if ci["half_width"] is not None else ""
            label = REFERENCE_LABEL.get(name, name).removeprefix("reference: ")
            out.append(f"**{backbone}**: the training-free \"{label}\" scorer ({scored[name]:.4f}) is above "
                       f"every trained arm on test {words}, beyond each one's 95 % CI (the best, "
                       f"{VARIANT_LABEL.get(best, best)}: {ci['mean']:.4f}{spread} over {ci['n']} seeds).")
    return out
