"""The study findings' rules on small hand-made inputs: the primary family, the search-seed spread,
fronts and their hypervolumes, equivalence, the chosen clustering and range ends (the demo study
end to end is in test_study.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from test_study import DEMO, REPO
from tuning.config import load_config


def test_only_the_pre_registered_primary_family_is_holm_adjusted():
    """study.primary names the family the findings judge by Holm-adjusted p; everything else is
    exploratory, shows its raw p and says so (the first study's summary quoted raw p-values)."""
    import math

    from results.findings_claims import comparisons, sentences
    from results.stats import holm

    rows = []
    for k, (variant, shift) in enumerate((("plain", 0.0), ("llmesr", 0.004), ("icc", 0.006), ("control", 0.0041))):
        for seed, noise in zip((42, 43, 44, 45), (0.0, 0.0004, -0.0003, 0.0001)):
            metrics = {f"test_{m}": 0.05 + shift + noise * (i + 1) * (k + 1) for i, m in enumerate(
                ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "new_target_ndcg_10"))}
            rows.append({"backbone": "sasrec", "variant": variant, "seed": seed, **metrics})
    primary = ["icc-vs-control:ndcg_10", "icc-vs-control:tail_item_ndcg_10"]
    comp = comparisons(pd.DataFrame(rows), ["sasrec"], primary)
    chosen = comp[comp["family"] == "primary"]
    assert sorted(chosen["metric"]) == ["test ndcg_10", "test tail_item_ndcg_10"]
    assert set(chosen["comparison"]) == {"ICC vs no-ICC control"}
    assert chosen["p_holm"].tolist() == pytest.approx(holm(chosen["p"].tolist()))
    assert comp[comp["family"] == "exploratory"]["p_holm"].map(math.isnan).all() and len(comp) == 12
    said = sentences(comp, ["sasrec"])[0]
    assert "Holm p" in said and "exploratory" in said


def test_the_search_seed_spread_is_the_range_of_each_search_winners_confirmed_mean():
    from results.findings_claims import search_seed_spread

    rows = [{"backbone": "sasrec", "variant": variant, "search": search, "seed": seed,
             "test_ndcg_10": value, "test_tail_item_ndcg_10": value / 2}
            for variant, search, seed, value in (
                ("icc", None, 42, 0.080), ("icc", None, 43, 0.082), ("icc", 1, 42, 0.070), ("icc", 1, 43, 0.072),
                ("control", None, 42, 0.5), ("llmesr", None, 42, 0.09), ("llmesr", None, 43, 0.09))]
    spread = search_seed_spread(pd.DataFrame(rows), first_seed=0)
    assert len(spread) == 1 and spread.iloc[0]["search seeds"] == 2        # llmesr had one search: no row
    assert spread.iloc[0]["NDCG@10 spread"] == pytest.approx(0.010)
    assert spread.iloc[0]["NDCG@10 per search seed"] == "0.0810 / 0.0710"
    assert spread.iloc[0]["tail-item NDCG@10 spread %"] == pytest.approx(100 * 0.005 / 0.038)
    assert search_seed_spread(pd.DataFrame(rows[:2]), first_seed=0).empty
    import math

    from scipy import stats

    one_seed = [r for r in rows if r["seed"] == 42 or r["variant"] != "icc"]      # one shared seed: no test
    assert math.isnan(search_seed_spread(pd.DataFrame(one_seed), first_seed=0).iloc[0]["NDCG@10 spread p"])

    noisy = [*rows, {**rows[0], "seed": 44, "test_ndcg_10": 0.079}, {**rows[2], "seed": 44, "test_ndcg_10": 0.075}]
    p = search_seed_spread(pd.DataFrame(noisy), first_seed=0).iloc[0]["NDCG@10 spread p"]
    assert p == pytest.approx(stats.ttest_rel([0.080, 0.082, 0.079], [0.070, 0.072, 0.075]).pvalue)


def test_each_arm_gets_its_own_front_and_hypervolume(tmp_path):
    """Issue 21's tail-aware arms: does ICC move the front? Each arm's front and hypervolume at
    the same budget, errored trials never on it; the plot draws one front per arm."""
    from results.findings_search import arm_fronts
    from results.study_plots import plot_arm_fronts

    rows = [("llmesr-sasrec", "terminated", 0.10, 0.02), ("llmesr-sasrec", "terminated", 0.08, 0.03),
            ("llmesr-sasrec", "terminated", 0.07, 0.01), ("icc-sasrec", "terminated", 0.10, 0.04),
            ("icc-sasrec", "errored", 0.50, 0.50), ("icc-sasrec-search1", "terminated", 0.09, 0.02)]
    trials = pd.DataFrame([{"arm": a, "state": s, "valid_ndcg_10": x, "valid_tail_item_ndcg_10": y,
                            "backbone": "sasrec"} for a, s, x, y in rows])
    fronts = arm_fronts(trials).set_index("arm")
    assert fronts.loc["llmesr-sasrec", "front"] == 2 and fronts.loc["llmesr-sasrec", "trials"] == 3
    assert fronts.loc["llmesr-sasrec", "hypervolume"] == pytest.approx(0.10 * 0.02 + 0.08 * 0.01)
    assert fronts.loc["icc-sasrec", "hypervolume"] == pytest.approx(0.10 * 0.04)      # the errored point ignored
    assert fronts.loc["icc-sasrec", "variant"] == "ICC" and fronts.loc["icc-sasrec-search1", "front"] == 1
    assert Path(plot_arm_fronts(trials, ["sasrec"], tmp_path / "fronts.png")).stat().st_size > 1000


def test_the_chosen_clustering_shows_the_parameter_its_method_searched():
    """A conditional space (n_clusters under KMeans, min_cluster_size under HDBSCAN): the tables
    of each arm's chosen configuration and of the front name the one its method used."""
    from results.findings_search import best_configs, front_table

    trials = pd.DataFrame([
        {"arm": "icc-sasrec", "trial_id": "h", "variant": "icc", "state": "terminated", "best_epoch": 9,
         "valid_ndcg_10": 0.09, "best_valid_ndcg_10": 0.09, "valid_tail_item_ndcg_10": 0.03, "lr": 1e-3, "dropout": 0.3,
         "gamma": 0.5, "icc_share": 0.01, "cluster_method": "hdbscan", "n_clusters": float("nan"), "min_cluster_size": 7},
        {"arm": "icc-sasrec-search1", "trial_id": "k", "variant": "icc", "state": "terminated", "best_epoch": 9,
         "valid_ndcg_10": 0.08, "best_valid_ndcg_10": 0.08, "valid_tail_item_ndcg_10": 0.04, "lr": 1e-3, "dropout": 0.3,
         "gamma": 0.2, "icc_share": 0.05, "cluster_method": "kmeans", "n_clusters": 64, "min_cluster_size": float("nan")}])
    chosen = best_configs(trials).set_index("arm")
    assert chosen.loc["icc-sasrec", "min_cluster_size"] == 7 and pd.isna(chosen.loc["icc-sasrec", "n_clusters"])
    assert chosen.loc["icc-sasrec-search1", "n_clusters"] == 64 and chosen.loc["icc-sasrec-search1", "icc_share"] == 0.05
    front = front_table(trials)
    assert {"icc_share", "n_clusters", "min_cluster_size"} <= set(front.columns) and len(front) == 2


def test_a_difference_that_is_not_significant_is_called_equivalent_only_where_tost_says_so():
    from results.findings_claims import comparisons, sentences

    rows = []
    for variant, shift in (("plain", 0.0), ("llmesr", 0.0), ("icc", 0.0), ("control", 0.0)):
        for seed, noise in zip((42, 43, 44, 45, 46), (0.0001, -0.0002, 0.00015, -0.0001, 0.00005)):
            k = ("plain", "llmesr", "icc", "control").index(variant)
            metrics = {f"test_{m}": 0.08 + noise * (k + 1) for m in
                       ("ndcg_10", "tail_item_ndcg_10", "tail_user_ndcg_10", "new_target_ndcg_10")}
            rows.append({"backbone": "sasrec", "variant": variant, "seed": seed, **metrics})
    primary = ["icc-vs-control:ndcg_10", "icc-vs-control:tail_item_ndcg_10"]
    close = comparisons(pd.DataFrame(rows), ["sasrec"], primary, margin=0.02)
    assert (close["tost_p"] < 0.05).all()                           # within +/-2 % of 0.08, tight
    assert "beyond the equivalence margin" in sentences(close, ["sasrec"])[0]
    strict = comparisons(pd.DataFrame(rows), ["sasrec"], primary, margin=0.0001)
    assert (strict["tost_p"] > 0.05).all() and "not shown equivalent" in sentences(strict, ["sasrec"])[0]
    # the change carries its 95 % CI in % of the control's mean: what an inconclusive one rules out
    row = strict[(strict["comparison"] == "ICC vs no-ICC control") & (strict["metric"] == "test ndcg_10")].iloc[0]
    low, high = ((row["difference"] + sign * row["ci95"]) / row["control_mean"] * 100 for sign in (-1, 1))
    assert f"{row['relative_%']:+.1f} % [{low:+.1f}, {high:+.1f}]" in sentences(strict, ["sasrec"])[0]


def test_each_front_trial_is_measured_on_test_over_the_front_seeds(tmp_path):
    """Issue 21: Pareto points confirmed over seeds. The best trial's values come from its own
    confirmation runs on those seeds, the others from their front runs; other search seeds'
    arms and other seeds are left out; the test hypervolume is of the confirmed means."""
    from results.findings_fronts import fronts_on_test_pieces
    from results.findings_search import confirmed_fronts, confirmed_hypervolumes
    from results.study_plots import plot_confirmed_fronts

    rows = [("llmesr-sasrec", "t1", 0.10, 0.02), ("llmesr-sasrec", "t2", 0.08, 0.03), ("llmesr-sasrec", "t3", 0.07, 0.01),
            ("icc-sasrec", "t4", 0.09, 0.04), ("icc-sasrec-search1", "t5", 0.2, 0.2)]
    trials = pd.DataFrame([{"arm": a, "trial_id": t, "state": "stopped_early" if t == "t2" else "terminated",
                            "best_epoch": 3 if t == "t2" else 12, "epochs": 3 if t == "t2" else 17,
                            "valid_ndcg_10": x, "best_valid_ndcg_10": x,
                            "valid_tail_item_ndcg_10": y, "backbone": "sasrec"} for a, t, x, y in rows])
    every_run = pd.DataFrame([{"arm": arm, "search": None, "seed": seed, "test_ndcg_10": v + d,
                               "test_tail_item_ndcg_10": v / 4 + d} for arm, v in (("llmesr-sasrec", 0.09), ("icc-sasrec", 0.085))
                              for seed, d in ((42, 0.001), (43, -0.001), (44, 0.0))])
    front_runs = [{"arm": "llmesr-sasrec@t2", "seed": seed, "test": {"ndcg_10": 0.07 + d, "tail_item_ndcg_10": 0.03 + d},
                   "best_epoch": peak, "history": [{"valid_tail_item_ndcg_10": 0.05 - 0.005 * e + d} for e in range(30)]}
                  for seed, d, peak in ((42, 0.002, 20), (43, 0.0, 24), (99, 0.5, 1))]
    got = confirmed_fronts(trials, every_run, front_runs, [42, 43]).set_index("trial_id")
    assert sorted(got.index) == ["t1", "t2", "t4"] and set(got["seeds"]) == {2}
    assert got.loc["t1", "best"] and not got.loc["t2", "best"]
    assert got.loc["t1", "test_ndcg_10"] == pytest.approx(0.09) and got.loc["t2", "test_ndcg_10"] == pytest.approx(0.071)
    assert got.loc["t2", "test_tail_item_ndcg_10_ci"] > 0
    volumes = confirmed_hypervolumes(got.reset_index())
    assert volumes["llmesr-sasrec"] == pytest.approx(0.071 * 0.031 + (0.09 - 0.071) * 0.0225)
    assert Path(plot_confirmed_fronts(got.reset_index(), ["sasrec"], tmp_path / "f.png")).stat().st_size > 1000
    config = load_config(DEMO, ["study.front_seeds=[42,43]", "tune.grace_period=3"])
    pieces = fronts_on_test_pieces(config, got.reset_index(), {"fronts_on_test": None})
    table = [p for kind, p in pieces if kind == "table"][0]
    shown = dict(zip(table["trial"], table["test NDCG@10"]))
    assert shown["t2"].startswith("0.0710 ± ") and shown["t1"].startswith("0.0900 ± ")
    # where the short run's point came from: ASHA stopped t2 at epoch 3; its full-budget runs
    # peaked at epochs 20 and 24, and at epoch 3 they had validation tail 0.042 and 0.040
    assert got.loc["t2", "confirmed_best_epoch"] == 22 and got.loc["t2", "trial_best_epoch"] == 3
    assert got.loc["t2", "confirmed_valid_tail_at_trial_epoch"] == pytest.approx(0.041)
    said = [p for kind, p in pieces if kind == "p"][-1]
    assert said.startswith("1 of the 3 confirmed front trials took their validation point within ASHA's grace "
                           "period (best epoch 3; 1 stopped by ASHA), at validation tail-item NDCG@10 0.0300")
    assert "peaked at epoch 22" in said
    assert "0.0410 against the search's 0.0300: the point holds at its epoch" in said
    lower = got.reset_index().assign(confirmed_valid_tail_at_trial_epoch=0.02)
    assert "does not hold even at its epoch" in fronts_on_test_pieces(config, lower, {})[-1][1]



def test_a_confirmed_front_is_measured_seed_by_seed_and_compared_paired():
    """Issue 21 item 3, does ICC move the front: each arm's test hypervolume per seed (only seeds
    on which every front trial ran), its 95 % CI, and the change against LLM-ESR's paired by seed."""
    from results.findings_fronts import hypervolume_comparisons, hypervolume_pieces, seed_hypervolumes
    from results.findings_search import front_points_by_seed

    trials = pd.DataFrame([{"arm": a, "trial_id": t, "state": "terminated", "best_epoch": 9, "epochs": 12,
                            "valid_ndcg_10": x, "best_valid_ndcg_10": x, "valid_tail_item_ndcg_10": y, "backbone": "sasrec"}
                           for a, t, x, y in (("llmesr-sasrec", "t1", 0.10, 0.02), ("llmesr-sasrec", "t2", 0.08, 0.03),
                                              ("icc-sasrec", "t3", 0.09, 0.04))])
    every_run = pd.DataFrame([{"arm": arm, "search": None, "seed": seed, "test_ndcg_10": base + d,
                               "test_tail_item_ndcg_10": base / 4} for arm, base in (("llmesr-sasrec", 0.09), ("icc-sasrec", 0.08))
                              for seed, d in ((42, 0.002), (43, 0.0), (44, -0.001))])
    front_runs = [{"arm": "llmesr-sasrec@t2", "seed": seed, "test": {"ndcg_10": 0.07, "tail_item_ndcg_10": 0.03}}
                  for seed in (42, 43)]                                 # t2 never ran on seed 44
    points = front_points_by_seed(trials, every_run, front_runs, [42, 43, 44])
    assert len(points) == 3 + 2 + 3 and set(points["seed"]) == {42, 43, 44}
    per_seed = seed_hypervolumes(points, {"llmesr-sasrec": 2, "icc-sasrec": 1})
    llmesr = per_seed[per_seed["arm"] == "llmesr-sasrec"].set_index("seed")["hypervolume"]
    assert sorted(llmesr.index) == [42, 43]                             # seed 44 lacks a front point
    assert llmesr[42] == pytest.approx(0.07 * 0.03 + (0.092 - 0.07) * 0.0225)
    icc = per_seed[per_seed["arm"] == "icc-sasrec"].set_index("seed")["hypervolume"]
    assert icc[44] == pytest.approx(0.079 * 0.02)
    compared = hypervolume_comparisons(per_seed).set_index("arm")
    assert compared.loc["icc-sasrec", "paired_seeds"] == 2 and compared.loc["llmesr-sasrec", "seeds"] == 2
    diffs = [icc[s] - llmesr[s] for s in (42, 43)]
    expected = sum(diffs) / 2 / ((llmesr[42] + llmesr[43]) / 2)
    assert compared.loc["icc-sasrec", "change"].startswith(f"{100 * expected:+.1f} % [")
    assert compared.loc["icc-sasrec", "verdict"] in {"better", "worse", "inconclusive"}
    said = [text for kind, text in hypervolume_pieces(compared.reset_index()) if kind == "p"][-1]
    assert said.startswith("ICC's front on test (sasrec): hypervolume ") and "over 2 paired seeds" in said
    assert hypervolume_pieces(pd.DataFrame()) == []




def test_a_chosen_value_at_an_end_of_its_range_is_named():
    """A winner at the edge of the space may have its optimum outside it; an ICC arm at its lowest
    share tests ICC at almost no weight (the first edition's 0.07 % of the loss)."""
    from results.findings import _edge_piece
    from results.findings_search import at_range_ends, edge_note, range_position

    assert range_position(0.005, {"type": "float", "low": 0.005, "high": 0.5, "log": True}) == 0.0
    assert range_position(0.05, {"type": "float", "low": 0.005, "high": 0.5, "log": True}) == pytest.approx(0.5)
    assert range_position(0.35, {"type": "float", "low": 0.1, "high": 0.6}) == pytest.approx(0.5)
    assert range_position("kmeans", {"type": "categorical", "values": ["kmeans"]}) is None
    assert range_position(float("nan"), {"type": "int", "low": 8, "high": 256}) is None
    config = load_config(REPO / "configs" / "study-scientific-2.yaml")
    best = pd.DataFrame([{"arm": "icc-sasrec", "lr": 0.0012, "dropout": 0.59, "icc_share": 0.0051,
                          "n_clusters": float("nan"), "min_cluster_size": 7},
                         {"arm": "llmesr-sasrec", "lr": 0.0098, "dropout": 0.35, "icc_share": 0.0051}])
    notes = [edge_note(f) for f in at_range_ends(best, config.tune.space, config.study.icc_space)]
    assert notes == ["icc-sasrec dropout 0.59 (searched 0.1 to 0.6; the high end)",
                     "icc-sasrec icc_share 0.0051 (searched 0.005 to 0.5, log; the low end)",
                     "llmesr-sasrec lr 0.0098 (searched 0.0001 to 0.01, log; the high end)"]   # no icc_space here
    assert "almost no weight" in _edge_piece(config, best)[1]
    inside = best.assign(dropout=0.35, icc_share=0.05, lr=0.001)
    assert _edge_piece(config, inside)[1].startswith("Every chosen value lies inside its searched range")


def test_a_study_with_no_icc_trial_yet_says_so_under_gamma_and_cluster_count():
    from results.findings import _gamma_pieces

    empty = _gamma_pieces(None, [])
    assert [kind for kind, _ in empty] == ["h2", "p"] and "No ICC search trials yet" in empty[1][1]
    drawn = _gamma_pieces("gamma_clusters.png", ["sasrec: ICC at 1.2 % of the loss"])
    assert ("image", "gamma_clusters.png") in drawn and ("list", ["sasrec: ICC at 1.2 % of the loss"]) in drawn


def test_a_reference_above_every_trained_arm_is_a_finding():
    """The committed Beauty study: its best arm on the tail (ICC at 0.0333 ± 0.0034 over 3 seeds
    when written; LLM-ESR 0.0332) stays below the training-free last item's text, 0.0467; overall
    0.0632 against 0.0403. Only the tail gets the sentence, naming the best arm's mean, and a
    reference inside an arm's CI gets none."""
    import json

    from results.findings import confirmation_frame
    from results.findings_claims import reference_sentences
    from results.orchestration.confirm import load_confirmations

    study = REPO / "docs" / "studies" / "amazon-beauty"
    runs = confirmation_frame(load_confirmations(study))
    refs = json.loads((study / "references.json").read_text())["references"]
    said = reference_sentences(runs, refs, ["sasrec"])
    assert len(said) == 1 and "tail-item NDCG@10" in said[0], said
    best = runs.groupby("variant")["test_tail_item_ndcg_10"].mean().idxmax()       # the best arm on the tail
    tail = runs.loc[runs["variant"] == best, "test_tail_item_ndcg_10"]
    assert f"({refs['test']['last_item_text']['tail_item_ndcg_10']:.4f})" in said[0] and f"{tail.mean():.4f} ± " in said[0]
    inside = {"test": {"last_item_text": {"ndcg_10": 0.0, "tail_item_ndcg_10": float(tail.mean() + tail.std() / 2)}}}
    assert reference_sentences(runs, inside, ["sasrec"]) == []
    assert reference_sentences(runs, {}, ["sasrec"]) == [] and reference_sentences(runs, refs, ["gru4rec"]) == []


def test_the_heavy_icc_trials_sentence_counts_them_in_words_that_agree():
    """The loss-share sentence says how the trials where ICC carried over 20 % of the loss did; one
    such trial is "the one trial ... reached", several "the N trials ... reached at most"."""
    from results.findings import icc_share_sentences

    def trials(carried):
        return pd.DataFrame({"arm": "icc-sasrec", "icc_carried": carried, "gamma": 0.5,
                             "valid_ndcg_10": [0.07 - 0.01 * k for k in range(len(carried))]})

    one = icc_share_sentences(trials([0.01, 0.3]), ["sasrec"])[0]
    assert "the one trial above 20 % reached 0.0600." in one
    two = icc_share_sentences(trials([0.01, 0.3, 0.4]), ["sasrec"])[0]
    assert "the 2 trials above 20 % reached at most 0.0600." in two
    assert icc_share_sentences(trials([0.01, 0.02]), ["sasrec"])[0].endswith("0.0700).")


def test_an_unmeasured_spread_says_whether_the_plan_measures_it_later():
    """Before any arm has confirmed two searchers' winners, the spread section says it is still to
    come when the plan lists several searcher seeds, and not measured when it lists one."""
    from types import SimpleNamespace

    from results.findings import _spread_pieces

    def said(search_seeds):
        config = SimpleNamespace(study=SimpleNamespace(search_seeds=search_seeds, seeds=[42, 43, 44]))
        return _spread_pieces(config, pd.DataFrame())[0][1]

    assert said([0, 1]).startswith("Not measured yet") and "[0, 1]" in said([0, 1])
    assert said([0]).startswith("Not measured: each arm was searched with one searcher seed")


def test_a_significant_change_inside_the_equivalence_margin_says_both():
    """Beauty's ICC arm moved overall NDCG@10 by +0.5 % at Holm p 0.035 with TOST p 0.002 at ±2 %:
    significant, and too small to count as a difference; the sentence must not read as a gain."""
    from results.findings_claims import _effect

    row = {"relative_%": 0.47, "difference": 0.0003, "ci95": 0.0002, "control_mean": 0.0629,
           "family": "primary", "p": 0.035, "p_holm": 0.035, "tost_p": 0.0017}
    said = _effect(pd.Series(row), "NDCG@10")
    assert said.startswith("+0.5 %") and "Holm p = 0.035" in said
    assert said.endswith("yet within the equivalence margin (TOST p = 0.002)")
    assert "margin" not in _effect(pd.Series({**row, "tost_p": 0.4}), "NDCG@10")
    assert _effect(pd.Series({**row, "p_holm": 0.3}), "NDCG@10").startswith("no difference in NDCG@10 beyond")
