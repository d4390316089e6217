"""Statistics of a study: means with 95 % confidence intervals, paired tests, effect sizes.

Seeds are few (5 by default), so intervals use Student's t (not the normal), the paired test is
the two-sided paired t-test on per-seed differences (the same seed in both arms), the effect
size is Cohen's d_z (mean difference / standard deviation of the differences), and p-values of
one family of comparisons are also given Holm-adjusted (no independence assumption).
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

ALPHA = 0.05
AT_CAP_BAR = 0.20      # a set of runs trains long enough when at most this share peaks at the epoch cap


def ci_text(ci: dict[str, Any], digits: int = 4) -> str:
    """A mean_ci as table text: "mean ± half-width", the mean alone from one value, "" from none
    (None or NaN, as a table column holds a missing value)."""
    mean, half = ci.get("mean"), ci.get("half_width")
    if mean is None or mean != mean:
        return ""
    if half is None or half != half:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and the half-width of its t confidence interval (None with fewer than 2 values)."""
    from scipy import stats

    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "half_width": None, "std": None}
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": 1, "mean": mean, "half_width": None, "std": None}
    std = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "half_width": half, "std": std}


def paired(treatment: Sequence[float], control: Sequence[float]) -> dict[str, Any]:
    """Treatment minus control, paired by position (seed): mean difference with its 95 % CI, the
    control's mean, relative change (all `change_text` reads), paired t-test p-value and Cohen's
    d_z. p is None where undefined."""
    from scipy import stats

    if len(treatment) != len(control):
        raise ValueError(f"paired: got {len(treatment)} and {len(control)} values; allowed: equal lengths")
    diffs = [float(a) - float(b) for a, b in zip(treatment, control)]
    ci = mean_ci(diffs)
    base = statistics.fmean(control) if control else math.nan
    out = {"n": len(diffs), "diff": ci["mean"], "diff_half_width": ci["half_width"], "control_mean": base,
           "relative": (ci["mean"] / base) if diffs and base else None,
           "p_value": None, "d_z": None, "test": "paired two-sided t-test over seeds"}
    scale = max(abs(float(v)) for v in (*treatment, *control)) if diffs else 0.0
    if len(diffs) < 2 or ci["std"] <= 1e-12 * scale:   # identical up to rounding: t would be noise
        out["note"] = "fewer than 2 seeds or identical differences: no test"
        return out
    out["p_value"] = float(stats.ttest_rel(treatment, control).pvalue)
    out["d_z"] = ci["mean"] / ci["std"]
    return out


def change_text(row: Mapping[str, Any]) -> str:
    """A paired comparison's relative change with its 95 % CI, in % of the control's mean:
    "+0.7 % [-1.2, +2.6]" (the change alone without an interval, "-" without a change). An
    inconclusive verdict then still says which changes the seeds rule out."""
    relative = row.get("relative")
    if relative is None or relative != relative:
        return "-"
    text = f"{100 * relative:+.1f} %"
    half, base = row.get("diff_half_width"), row.get("control_mean")
    if half is None or half != half or not base:
        return text
    low, high = (row["diff"] - half) / base, (row["diff"] + half) / base
    return f"{text} [{100 * low:+.1f}, {100 * high:+.1f}]"


def equivalence(treatment: Sequence[float], control: Sequence[float], margin: float) -> dict[str, Any]:
    """TOST (two one-sided paired t-tests) of |treatment - control| < margin * mean(control):
    p below ALPHA says the two are equivalent within that relative margin. None where undefined
    (fewer than 2 seeds, identical differences)."""
    from scipy import stats

    diffs = [float(a) - float(b) for a, b in zip(treatment, control)]
    ci = mean_ci(diffs)
    bound = margin * abs(statistics.fmean(control)) if control else math.nan
    out = {"margin": margin, "bound": bound, "p_value": None,
           "test": f"TOST, paired t over seeds, margin ±{100 * margin:g} % of the control's mean"}
    if len(diffs) < 2 or not ci["std"]:
        return out
    se = ci["std"] / math.sqrt(len(diffs))
    above = 1.0 - float(stats.t.cdf((ci["mean"] + bound) / se, len(diffs) - 1))   # H0: diff <= -bound
    below = float(stats.t.cdf((ci["mean"] - bound) / se, len(diffs) - 1))         # H0: diff >= +bound
    out["p_value"] = max(above, below)
    return out


def verdict(difference: Mapping[str, Any], tost: Mapping[str, Any], alpha: float = ALPHA) -> str:
    """better / worse (paired test), equivalent (TOST), or inconclusive: what a comparison says."""
    p, diff = difference.get("p_value"), difference.get("diff")
    if p is not None and p < alpha and diff:
        return "better" if diff > 0 else "worse"
    if tost.get("p_value") is not None and tost["p_value"] < alpha:
        return f"equivalent (within ±{100 * tost['margin']:g} %)"
    return "inconclusive"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None), in the input order."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def at_cap(best_epochs: Sequence[int], cap: int) -> dict[str, Any]:
    """How many runs had their best validation epoch at the epoch cap: a run that peaks there was
    still improving when it stopped, so a large share means the runs are undertrained."""
    epochs = [int(e) for e in best_epochs]
    n = len(epochs)
    hits = sum(e >= cap for e in epochs)
    return {"runs": n, "at_cap": hits, "share": hits / n if n else None, "cap": int(cap),
            "median_best": statistics.median(epochs) if n else None,
            "long_enough": (hits / n <= AT_CAP_BAR) if n else None}


def at_cap_sentence(best_epochs: Sequence[int], cap: int) -> str:
    """`at_cap` in words, against the bar of AT_CAP_BAR."""
    c = at_cap(best_epochs, cap)
    if not c["runs"]:
        return "Training length: no runs yet."
    judged = "long enough" if c["long_enough"] else "undertrained: raise the epoch cap"
    return (f"Training length: {c['at_cap']} of {c['runs']} runs ({100 * c['share']:.0f} %) had their best "
            f"validation epoch at the {cap}-epoch cap (median best epoch {c['median_best']:g}); at most "
            f"{100 * AT_CAP_BAR:.0f} % is the bar, so {judged}.")
