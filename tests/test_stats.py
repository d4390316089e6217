"""Significance figures against numbers computed by hand and by scipy: the paired t-test of
`reproduce --seeds` (results.orchestration.reproduce.paired_test) and the study's statistics (results.stats)."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import assume, given, settings as hyp_settings, strategies as st

from results.orchestration.reproduce import SIGNIFICANCE_TEST, paired_test
from results.stats import at_cap, at_cap_sentence, equivalence, holm, mean_ci, paired

# Three seeds; differences 0.02, 0.02, 0.005: mean 0.015, sd sqrt(7.5e-5), so t = 3 exactly.
CONFIG = [0.30, 0.32, 0.31]
CONTROL = [0.28, 0.30, 0.305]
T_BY_HAND = 3.0
# Student's t with 2 degrees of freedom has a closed-form tail: P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2
P_BY_HAND = 1.0 - T_BY_HAND / math.sqrt(T_BY_HAND ** 2 + 2)


def test_paired_test_equals_the_hand_computed_t_and_p():
    out = paired_test(CONFIG, CONTROL)
    assert out["test"] == SIGNIFICANCE_TEST and out["n"] == 3
    assert out["statistic"] == pytest.approx(T_BY_HAND, rel=1e-9)
    assert out["p_value"] == pytest.approx(P_BY_HAND, rel=1e-9)          # 0.0955: two-sided


def test_paired_test_sign_follows_config_minus_control():
    out = paired_test(CONTROL, CONFIG)
    assert out["statistic"] == pytest.approx(-T_BY_HAND, rel=1e-9)
    assert out["p_value"] == pytest.approx(P_BY_HAND, rel=1e-9)


def test_paired_test_equals_scipy_on_five_seeds():
    from scipy import stats

    config = [0.2111, 0.2235, 0.2050, 0.2302, 0.2198]
    control = [0.2080, 0.2101, 0.2097, 0.2150, 0.2120]
    expected = stats.ttest_rel(config, control)
    unpaired = stats.ttest_ind(config, control)
    out = paired_test(config, control)
    assert out["statistic"] == pytest.approx(float(expected.statistic), rel=1e-12)
    assert out["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert out["p_value"] != pytest.approx(float(unpaired.pvalue), rel=1e-3)   # paired, not unpaired


@pytest.mark.parametrize("config, control, note", [
    ([0.3], [0.2], "needs at least 2 seeds"),
    ([0.5, 0.75], [0.25, 0.5], "every paired difference is 0.25"),
])
def test_paired_test_undefined_cases_say_why(config, control, note):
    out = paired_test(config, control)
    assert out["statistic"] is None and out["p_value"] is None and note in out["note"]


def test_differences_equal_up_to_rounding_get_no_test():
    """0.082 - 0.072 and 0.080 - 0.070 differ in the last bit: scipy would return p ~ 1e-16 and
    warn of catastrophic cancellation; the same gap on every seed has no t-test."""
    out = paired([0.080, 0.082], [0.070, 0.072])
    assert out["p_value"] is None and "identical differences" in out["note"]
    assert out["diff"] == pytest.approx(0.010)


def test_study_paired_statistics_by_hand():
    out = paired(CONFIG, CONTROL)
    assert out["n"] == 3 and out["diff"] == pytest.approx(0.015, rel=1e-9)
    assert out["p_value"] == pytest.approx(P_BY_HAND, rel=1e-9)
    sd = math.sqrt(7.5e-5)
    assert out["d_z"] == pytest.approx(0.015 / sd, rel=1e-9)
    assert out["relative"] == pytest.approx(0.015 / (sum(CONTROL) / 3), rel=1e-9)
    # t quantile for 95 % with 2 df, closed form: t = q / sqrt((1 - q^2) / 2) with q = 2 * 0.975 - 1
    q = 0.95
    t_975 = q * math.sqrt(2 / (1 - q ** 2))
    assert out["diff_half_width"] == pytest.approx(t_975 * sd / math.sqrt(3), rel=1e-9)


def test_mean_ci_and_holm_by_hand():
    ci = mean_ci([1.0, 2.0, 3.0])
    t_975 = 0.95 * math.sqrt(2 / (1 - 0.95 ** 2))
    assert (ci["n"], ci["mean"], ci["std"]) == (3, 2.0, 1.0)
    assert ci["half_width"] == pytest.approx(t_975 / math.sqrt(3), rel=1e-9)
    assert mean_ci([5.0]) == {"n": 1, "mean": 5.0, "half_width": None, "std": None}
    # Holm: sorted p 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (kept monotone)
    assert holm([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])


def test_at_cap_counts_runs_that_peak_at_the_epoch_cap_against_the_20_percent_bar():
    # The first study: 36 of its 60 confirmation runs peaked at the 15-epoch cap (README, issue 21).
    first = at_cap([15] * 36 + [14] * 15 + [9] * 9, 15)
    assert (first["runs"], first["at_cap"], first["median_best"], first["long_enough"]) == (60, 36, 15, False)
    assert first["share"] == pytest.approx(0.6)
    assert at_cap([30, 10, 12, 13, 11], 30)["long_enough"] is True          # 1 of 5 = 20 %: at the bar
    assert at_cap([30, 30, 12, 13, 11], 30)["long_enough"] is False         # 40 %
    assert at_cap([], 30)["share"] is None
    assert "36 of 60 runs (60 %)" in at_cap_sentence([15] * 36 + [14] * 24, 15)
    assert "undertrained" in at_cap_sentence([15] * 36 + [14] * 24, 15)
    assert "long enough" in at_cap_sentence([11, 12], 30)


def test_a_confidence_interval_reads_the_same_in_every_table():
    from results.stats import ci_text, mean_ci

    assert ci_text(mean_ci([0.1, 0.2])) == "0.1500 ± 0.6353"
    assert ci_text(mean_ci([0.1])) == "0.1000" and ci_text(mean_ci([])) == ""
    assert ci_text({"mean": float("nan"), "half_width": float("nan")}) == ""
    assert ci_text({"mean": 0.5, "half_width": float("nan")}, digits=2) == "0.50"


@hyp_settings(max_examples=60, deadline=None)
@given(control=st.lists(st.floats(0.01, 0.2), min_size=2, max_size=8),
       shifts=st.lists(st.floats(-0.01, 0.01), min_size=8, max_size=8),
       margin=st.floats(0.005, 0.2))
def test_tost_is_the_larger_p_of_scipys_two_one_sided_paired_tests(control, shifts, margin):
    """TOST rebuilt from scipy's one-sided one-sample t-tests on the paired differences."""
    from scipy import stats

    treatment = [c + s for c, s in zip(control, shifts)]
    diffs = [t - c for t, c in zip(treatment, control)]
    out = equivalence(treatment, control, margin)
    bound = margin * abs(sum(control) / len(control))
    assert out["bound"] == pytest.approx(bound, rel=1e-12)
    assume(statistics.stdev(diffs) > 1e-9)     # identical differences: no t (tested above)
    assert out["p_value"] is not None
    lower = stats.ttest_1samp(diffs, -bound, alternative="greater").pvalue
    upper = stats.ttest_1samp(diffs, bound, alternative="less").pvalue
    assert out["p_value"] == pytest.approx(max(float(lower), float(upper)), rel=1e-6, abs=1e-12)


def test_a_change_reads_with_its_interval_in_percent_of_the_control():
    from results.stats import change_text

    control, treatment = [0.10, 0.10, 0.10], [0.101, 0.099, 0.103]      # diffs +1, -1, +3 (x 1e-3)
    row = {**paired(treatment, control), "control_mean": 0.10}
    half = 4.302653 * statistics.stdev([1.0, -1.0, 3.0]) / math.sqrt(3)   # t(0.975, 2) x sd / sqrt(n), in 1e-3
    assert change_text(row) == f"+1.0 % [{1.0 - half:+.1f}, {1.0 + half:+.1f}]" == "+1.0 % [-4.0, +6.0]"
    assert change_text({**row, "diff_half_width": None}) == "+1.0 %"          # one seed: no interval
    assert change_text({"relative": None}) == "-" and change_text({"relative": float("nan")}) == "-"


@hyp_settings(max_examples=60, deadline=None)
@given(control=st.lists(st.floats(0.01, 0.2), min_size=2, max_size=8),
       shifts=st.lists(st.floats(-0.01, 0.01), min_size=8, max_size=8))
def test_the_interval_of_a_change_excludes_zero_exactly_when_the_paired_test_rejects(control, shifts):
    """A 95 % t interval of the paired difference and the two-sided paired t-test at 0.05 are one
    inference: an inconclusive change's interval always spans no change."""
    treatment = [c + s for c, s in zip(control, shifts)]
    diffs = [t - c for t, c in zip(treatment, control)]
    assume(statistics.stdev(diffs) > 1e-9)
    row = paired(treatment, control)
    low, high = row["diff"] - row["diff_half_width"], row["diff"] + row["diff_half_width"]
    assume(min(abs(low), abs(high)) > 1e-9 * max(abs(low), abs(high), 1e-12))   # not on the boundary
    assert (low > 0 or high < 0) == (row["p_value"] < 0.05)
