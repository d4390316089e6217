"""Training-free reference scorers on real data (Amazon Scientific, validation, full ranking)."""

from __future__ import annotations

import pytest

from model.baselines import BASELINES, baseline_scorer
from model.evaluate import evaluate


@pytest.fixture(scope="module")
def reference(scientific):
    return {name: evaluate(baseline_scorer(name, scientific), scientific, "valid", 50)
            for name in BASELINES}


def test_popularity_never_reaches_the_tail(reference):
    pop = reference["popularity"]
    assert pop["tail_item_hit_10"] == 0.0            # its top 10 are the 10 most popular items
    assert pop["head_item_hit_10"] > 0.0


def test_last_item_text_carries_the_tail(reference):
    text, pop = reference["last_item_text"], reference["popularity"]
    assert text["ndcg_10"] > pop["ndcg_10"]
    assert text["tail_item_ndcg_10"] > 0.03          # measured 0.057: the signal a model must keep


def test_unknown_baseline_names_the_known_ones(scientific):
    with pytest.raises(ValueError, match="baseline: got 'knn'; allowed: last_item_text, popularity"):
        baseline_scorer("knn", scientific)
