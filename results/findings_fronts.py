"""The tail-aware fronts as confirmed on test: every trial on an arm's validation front re-run
over `study.front_seeds`, and where each front point came from (a full run, or a short one that
ASHA stopped), so a front drawn on validation is not taken for what full training delivers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from model.contract import SELECT_KEY
from results.epoch_choice import chosen_on
from results.pareto import hypervolume, reference_point
from results.stats import ci_text, change_text, mean_ci, paired, verdict
from results.study_plots import VARIANT_LABEL, arm_parts

#: a front point "holds at its epoch" when the confirmation runs reach this share of the search's
#: tail value there (seeds move a validation tail-item NDCG@10 by a few per cent)
HOLDS = 0.9
#: how a search trial ended, in the findings' words
STATE_WORDS = {"stopped_early": "stopped by ASHA", "terminated": "ended by patience or the epoch budget"}


def fronts_on_test_pieces(config: Any, on_test: pd.DataFrame, plots: dict[str, str | None],
                          volumes: pd.DataFrame | None = None) -> list[tuple]:
    """The fronts as confirmed: every front trial over `study.front_seeds` on test (none without),
    and with `volumes` (hypervolume_comparisons) each arm's test hypervolume seed by seed."""
    if not config.study.front_seeds:
        return []
    head = [("h3", f"The fronts on test: every front trial confirmed over seeds {config.study.front_seeds}"),
            ("p", "A front drawn on validation can be luck; each of its trials re-run from scratch on these seeds "
                  "(the best trial's own confirmation runs among them) gives its test NDCG@10 and tail-item "
                  "NDCG@10 with 95 % CIs, and each arm's test hypervolume (the fronts table above).")]
    if on_test.empty:
        return head + [("p", "No front trial confirmed yet.")]
    shown = pd.DataFrame({
        "arm": on_test["arm"], "trial": on_test["trial_id"], "best": on_test["best"].map({True: "yes", False: ""}),
        "valid NDCG@10": on_test["valid_ndcg_10"].round(4), "valid tail NDCG@10": on_test["valid_tail_item_ndcg_10"].round(4),
        "seeds": on_test["seeds"],
        "test NDCG@10": [ci_text({"mean": m, "half_width": h}) for m, h in zip(on_test["test_ndcg_10"], on_test["test_ndcg_10_ci"])],
        "test tail NDCG@10": [ci_text({"mean": m, "half_width": h}) for m, h in
                              zip(on_test["test_tail_item_ndcg_10"], on_test["test_tail_item_ndcg_10_ci"])],
        "trial: state, best / last epoch": [f"{state}, {_epoch(b)} / {_epoch(e)}" for state, b, e in
                                            zip(on_test["trial_state"], on_test["trial_best_epoch"], on_test["trial_epochs"])],
        "confirmed: best epoch": [_epoch(e, ".1f") for e in on_test["confirmed_best_epoch"]],
        "confirmed: valid tail NDCG@10 at the trial's best epoch": on_test["confirmed_valid_tail_at_trial_epoch"].round(4)})
    said = early_point_sentence(on_test, config.tune.grace_period, config.train.select_metric)
    return (head + [("image", plots.get("fronts_on_test")), ("table", shown), *([("p", said)] if said else [])]
            + hypervolume_pieces(volumes if volumes is not None else pd.DataFrame()))


def seed_hypervolumes(points: pd.DataFrame, front_sizes: dict[str, int]) -> pd.DataFrame:
    """Per arm and seed: the hypervolume (origin) of the arm's front trials' test values on that
    seed (results.findings_search.front_points_by_seed). A seed counts only where every trial of
    the arm's front (`front_sizes`) ran on it: a front short of a point is smaller by construction."""
    rows = []
    for (arm, seed), part in (points.groupby(["arm", "seed"], sort=True) if not points.empty else []):
        if part["trial_id"].nunique() == front_sizes.get(arm):
            rows.append({"backbone": arm_parts(arm)[1], "arm": arm, "seed": int(seed), "points": len(part),
                         "hypervolume": hypervolume(list(zip(part["test_ndcg_10"], part["test_tail_item_ndcg_10"])),
                                                    reference_point(2))})
    return pd.DataFrame(rows, columns=["backbone", "arm", "seed", "points", "hypervolume"])


def hypervolume_comparisons(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per backbone: each arm's test hypervolume, mean and 95 % CI over seeds, and every other arm
    against the LLM-ESR arm, paired by seed (exploratory, not Holm-adjusted): whether ICC moves the
    confirmed front by more than the seeds move it."""
    rows = []
    for backbone, part in (per_seed.groupby("backbone", sort=True) if not per_seed.empty else []):
        by_arm = {arm: dict(zip(p["seed"], p["hypervolume"])) for arm, p in part.groupby("arm", sort=True)}
        base = next((arm for arm in by_arm if arm_parts(arm)[0] == "llmesr"), None)
        for arm, volumes in by_arm.items():
            ci = mean_ci(list(volumes.values()))
            row = {"backbone": backbone, "arm": arm, "variant": VARIANT_LABEL.get(arm_parts(arm)[0], arm_parts(arm)[0]),
                   "seeds": ci["n"], "hypervolume": ci["mean"], "ci95": ci["half_width"]}
            if base is not None and arm != base:
                common = sorted(set(volumes) & set(by_arm[base]))
                diff = paired([volumes[s] for s in common], [by_arm[base][s] for s in common])
                row.update({"against": base, "paired_seeds": len(common), "change": change_text(diff),
                            "p": diff["p_value"], "verdict": verdict(diff, {})})
            rows.append(row)
    return pd.DataFrame(rows)


def hypervolume_pieces(volumes: pd.DataFrame) -> list[tuple]:
    """hypervolume_comparisons as a table and one sentence per compared arm."""
    if volumes.empty:
        return []
    shown = pd.DataFrame({
        "arm": volumes["arm"], "seeds": volumes["seeds"],
        "test hypervolume": [ci_text({"mean": m, "half_width": h}, 5) for m, h in zip(volumes["hypervolume"], volumes["ci95"])],
        "against LLM-ESR (paired)": volumes.get("change", pd.Series(dtype=object)).fillna(""),
        "p": [_p_text(p) for p in volumes.get("p", [None] * len(volumes))]})
    return [("p", "Each arm's front measured seed by seed: on each seed, the hypervolume of its front trials' "
                  "test values (a seed counts where every front trial ran on it), mean and 95 % CI over the "
                  "seeds, and the change against the LLM-ESR arm's front paired by seed (exploratory)."),
            ("table", shown), *[("p", said) for said in hypervolume_sentences(volumes)]]


def hypervolume_sentences(volumes: pd.DataFrame) -> list[str]:
    """Whether each arm's confirmed front is larger than LLM-ESR's, in words with its CI."""
    if "against" not in volumes.columns:
        return []
    compared = volumes[volumes["against"].notna()]
    return [f"{_capital(row['variant'])}'s front on test ({row['backbone']}): hypervolume {row['change']} against "
            f"LLM-ESR's over {int(row['paired_seeds'])} paired seeds"
            f"{f' (p {_p_text(row.p)})' if _p_text(row.p) else ''}: {row['verdict']}."
            for _, row in compared.iterrows()]


def _p_text(p: Any) -> str:
    """A p-value to 3 decimals; "" where there is none (None or NaN in a table)."""
    return f"{p:.3f}" if isinstance(p, float) and p == p else ""


def _epoch(value: Any, spec: str = ".0f") -> str:
    return "?" if value is None or pd.isna(value) else f"{float(value):{spec}}"


def early_point_sentence(on_test: pd.DataFrame, grace: int, select_metric: str = SELECT_KEY) -> str | None:
    """What the front trials whose point came from their first epochs (within ASHA's grace
    period: stopped there by ASHA, or by patience after an early peak) became at the full budget.
    Their validation point is an almost untrained model's; the confirmation picks its epoch on
    `select_metric` (train.select_metric) and may move away from it. Says whether the point still
    holds at the trial's own epoch."""
    confirmed = on_test[on_test["seeds"] > 0]
    early = confirmed[confirmed["trial_best_epoch"] <= grace]
    if early.empty:
        return None
    states = early["trial_state"].value_counts()
    return (f"{len(early)} of the {len(confirmed)} confirmed front trials took their validation point within "
            f"ASHA's grace period (best epoch {_span(early['trial_best_epoch'], '.0f')}; "
            f"{', '.join(f'{n} {STATE_WORDS.get(state, state)}' for state, n in states.items())}), at validation tail-item NDCG@10 "
            f"{_span(early['valid_tail_item_ndcg_10'])}; confirmed at the full budget, the epoch chosen on "
            f"{chosen_on(select_metric) or 'overall validation NDCG@10'}, they peaked at epoch {_span(early['confirmed_best_epoch'], '.0f')} "
            f"with test tail-item NDCG@10 {_span(early['test_tail_item_ndcg_10'])}.{_at_own_epoch(early)}"
            + ("" if chosen_on(select_metric) else
               " A tail-aware choice of configuration needs a tail-aware choice of epoch too (train.select_metric)."))


def _at_own_epoch(early: pd.DataFrame) -> str:
    """Whether the confirmation runs reproduce the search's tail value at the trial's own epoch
    (within HOLDS of it): the point is the epoch's, not luck; empty where no run has a history."""
    at_own = early["confirmed_valid_tail_at_trial_epoch"].dropna()
    if at_own.empty:
        return ""
    searched = early.loc[at_own.index, "valid_tail_item_ndcg_10"]
    verdict = ("the point holds at its epoch, and the full-budget run's choice of epoch leaves it."
               if (at_own >= HOLDS * searched).all() else "the point does not hold even at its epoch.")
    return (f" At the trial's own best epoch the confirmation runs had validation tail-item NDCG@10 "
            f"{_span(at_own)} against the search's {_span(searched)}: {verdict}")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _span(values: pd.Series, spec: str = ".4f") -> str:
    low, high = float(values.min()), float(values.max())
    return f"{low:{spec}}" if f"{low:{spec}}" == f"{high:{spec}}" else f"{low:{spec}}-{high:{spec}}"
