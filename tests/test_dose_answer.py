"""The dose-response's answer in words (results.dose_report.answer): what the README and the
study's findings quote must say what the primary family's table says."""

from __future__ import annotations

from hypothesis import given, settings as hyp_settings, strategies as st


def _primary_row(clustering, share, metric, relative, verdict, p_holm=0.5, tost_p=0.01, seeds=5):
    return {"clustering": clustering, "share": share, "metric": metric, "seeds": seeds, "relative": relative,
            "p_holm": p_holm, "tost_p": tost_p, "verdict": verdict}


def test_the_answer_says_where_icc_helps_or_within_what_margin_it_does_not():
    from results.dose_report import answer

    assert answer([], 0.02) == []                                         # no family yet: no answer
    assert answer([], 0.02, missing=4) == []
    helps = [_primary_row("kmeans-16", 0.05, "ndcg_10", 0.031, "better", p_holm=0.004, tost_p=0.9),
             _primary_row("hdbscan-5", 0.01, "ndcg_10", 0.045, "better", p_holm=0.02, tost_p=0.97),
             _primary_row("kmeans-64", 0.01, "ndcg_10", -0.004, "equivalent (within ±2 %)")]
    assert answer(helps, 0.02) == ["ICC helps test NDCG@10 (5+ paired seeds): hdbscan-5 at 1 % of the loss +4.5 % "
                                   "(Holm p 0.020); kmeans-16 at 5 % of the loss +3.1 % (Holm p 0.004); the other "
                                   "clusterings, within ±2 %: kmeans-64 at 1 % of the loss -0.4 %."]
    none = [_primary_row("kmeans-16", 0.01, "tail_item_ndcg_10", 0.004, "equivalent (within ±2 %)", tost_p=0.03),
            _primary_row("hdbscan-5", 0.01, "tail_item_ndcg_10", -0.002, "equivalent (within ±2 %)", tost_p=0.0004)]
    assert answer(none, 0.02) == ["ICC makes no difference to test tail-item NDCG@10 beyond ±2 %: every clustering's "
                                  "best share is within the margin of no ICC (every TOST p ≤ 0.030, 5+ paired seeds)."]
    mixed = [_primary_row("kmeans-16", 0.01, "ndcg_10", -0.051, "worse", p_holm=0.0002, tost_p=0.99),
             _primary_row("kmeans-64", 0.01, "ndcg_10", -0.004, "equivalent (within ±2 %)"),
             _primary_row("hdbscan-5", 0.05, "ndcg_10", 0.012, "inconclusive", seeds=4),
             _primary_row("hdbscan-5", 0.05, "tail_item_ndcg_10", 0.2, "better", p_holm=0.01, tost_p=1.0, seeds=4)]
    overall, tail = answer(mixed, 0.02)
    assert overall == ("ICC does not help test NDCG@10 at any clustering's best share (4+ paired seeds); worse: "
                       "kmeans-16 at 1 % of the loss -5.1 % (Holm p < 0.001); within ±2 %: kmeans-64 at 1 % of the "
                       "loss -0.4 %; inconclusive: hdbscan-5 at 5 % of the loss +1.2 %.")
    assert tail == "ICC helps test tail-item NDCG@10 (4+ paired seeds): hdbscan-5 at 5 % of the loss +20.0 % (Holm p 0.010)."
    assert answer(mixed, 0.02, missing=3) == ["Interim: 3 planned runs are not done yet, so this may change.", overall, tail]


def test_a_significant_change_inside_the_margin_says_so_beside_its_verdict():
    """amazon-scientific's HDBSCAN 5 moved overall NDCG@10 by -1.3 % at Holm p 0.002, and TOST put
    it inside ±2 % (p 0.002): "worse" alone would read as harm the margin calls no difference."""
    from results.dose_report import answer

    rows = [_primary_row("hdbscan-5", 0.01, "ndcg_10", -0.013, "worse", p_holm=0.0024, tost_p=0.0019),
            _primary_row("kmeans-64", 0.01, "ndcg_10", -0.002, "equivalent (within ±2 %)", tost_p=0.0001)]
    (sentence,) = answer(rows, 0.02)
    assert "worse: hdbscan-5 at 1 % of the loss -1.3 % (Holm p 0.002; yet within ±2 %, TOST p 0.002)" in sentence
    assert "kmeans-64 at 1 % of the loss -0.2 %." in sentence                  # no p where no verdict


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["better", "worse", "inconclusive", "equivalent (within ±2 %)"]),
                          st.one_of(st.none(), st.floats(-0.9, 0.9)), st.floats(0, 1), st.integers(2, 7)),
                min_size=1, max_size=5),
       st.sampled_from(["ndcg_10", "tail_item_ndcg_10"]))
def test_the_answer_names_every_clustering_once_and_calls_help_only_on_a_better_verdict(rows, metric):
    from results.dose_report import answer

    family = [_primary_row(f"kmeans-{8 * (i + 1)}", 0.01, metric, relative if verdict != "better" else abs(relative or 0.1),
                           verdict, p_holm=p, tost_p=p, seeds=seeds)
              for i, (verdict, relative, p, seeds) in enumerate(rows)]
    (sentence,) = answer(family, 0.02)
    for row in family:
        assert sentence.count(f"{row['clustering']} at") == (0 if sentence.startswith("ICC makes no difference") else 1)
    assert sentence.startswith("ICC helps") == any(r["verdict"] == "better" for r in family)
    assert f"{min(r['seeds'] for r in family)}+ paired seeds" in sentence and "≤ <" not in sentence
