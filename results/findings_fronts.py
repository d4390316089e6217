"""The tail-aware fronts as confirmed on test: every trial on an arm's validation front re-run
over `study.front_seeds`, and where each front point came from (a full run, or a short one that
ASHA stopped), so a front drawn on validation is not taken for what full training delivers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from results.stats import ci_text

#: a front point "holds at its epoch" when the confirmation runs reach this share of the search's
#: tail value there (seeds move a validation tail-item NDCG@10 by a few per cent)
HOLDS = 0.9
#: how a search trial ended, in the findings' words
STATE_WORDS = {"stopped_early": "stopped by ASHA", "terminated": "ended by patience or the epoch budget"}


def fronts_on_test_pieces(config: Any, on_test: pd.DataFrame, plots: dict[str, str | None]) -> list[tuple]:
    """The fronts as confirmed: every front trial over `study.front_seeds` on test (none without)."""
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
    said = early_point_sentence(on_test, config.tune.grace_period)
    return head + [("image", plots.get("fronts_on_test")), ("table", shown), *([("p", said)] if said else [])]


def _epoch(value: Any, spec: str = ".0f") -> str:
    return "?" if value is None or pd.isna(value) else f"{float(value):{spec}}"


def early_point_sentence(on_test: pd.DataFrame, grace: int) -> str | None:
    """What the front trials whose point came from their first epochs (within ASHA's grace
    period: stopped there by ASHA, or by patience after an early peak) became at the full budget.
    Their validation point is an almost untrained model's; the confirmation picks its epoch on
    overall NDCG@10 and may move away from it. Says whether the point still holds at the trial's
    own epoch."""
    confirmed = on_test[on_test["seeds"] > 0]
    early = confirmed[confirmed["trial_best_epoch"] <= grace]
    if early.empty:
        return None
    states = early["trial_state"].value_counts()
    return (f"{len(early)} of the {len(confirmed)} confirmed front trials took their validation point within "
            f"ASHA's grace period (best epoch {_span(early['trial_best_epoch'], '.0f')}; "
            f"{', '.join(f'{n} {STATE_WORDS.get(state, state)}' for state, n in states.items())}), at validation tail-item NDCG@10 "
            f"{_span(early['valid_tail_item_ndcg_10'])}; confirmed at the full budget, the epoch chosen on "
            f"overall validation NDCG@10, they peaked at epoch {_span(early['confirmed_best_epoch'], '.0f')} "
            f"with test tail-item NDCG@10 {_span(early['test_tail_item_ndcg_10'])}.{_at_own_epoch(early)} A tail-aware "
            f"choice of configuration needs a tail-aware choice of epoch too.")


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


def _span(values: pd.Series, spec: str = ".4f") -> str:
    low, high = float(values.min()), float(values.max())
    return f"{low:{spec}}" if f"{low:{spec}}" == f"{high:{spec}}" else f"{low:{spec}}-{high:{spec}}"
