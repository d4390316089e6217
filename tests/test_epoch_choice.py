"""Two epoch choices of the same training runs (results.epoch_choice, bench/epoch_choice.py)."""

from __future__ import annotations

import copy
import sys

import pytest

from conftest import REPO
from results.epoch_choice import compare_epoch_choice, pair_by_seed

sys.path.insert(0, str(REPO / "bench"))
CONFIRMED = REPO / "docs" / "studies" / "amazon-scientific-2" / "confirm" / "control-sasrec"


def run(seed: int, best: int, ndcg: float, tail: float, curve_shift: float = 0.0) -> dict:
    history = [{"train_loss": 5.0 - e, "valid_ndcg_10": 0.05 + e / 100 + curve_shift, "valid_tail_item_ndcg_10": 0.02}
               for e in range(4)]
    return {"seed": seed, "best_epoch": best, "history": history,
            "test": {"ndcg_10": ndcg, "tail_item_ndcg_10": tail}}


def test_the_chosen_epoch_is_compared_paired_by_seed_on_one_training_run():
    chosen = [run(43, 4, 0.095, 0.045), run(42, 3, 0.098, 0.040), run(44, 4, 0.097, 0.041)]
    baseline = [run(42, 2, 0.100, 0.030), run(43, 2, 0.099, 0.034)]      # seed 44 has no baseline
    found = compare_epoch_choice(chosen, baseline, metrics=("ndcg_10", "tail_item_ndcg_10"))
    assert found["seeds"] == [42, 43] and found["best_epoch"] == 3.5 and found["baseline_best_epoch"] == 2
    tail = found["metrics"]["tail_item_ndcg_10"]
    assert tail["diff"] == pytest.approx(((0.040 - 0.030) + (0.045 - 0.034)) / 2)
    assert tail["chosen_mean"] == pytest.approx(0.0425) and tail["control_mean"] == pytest.approx(0.032)
    assert found["metrics"]["ndcg_10"]["diff"] < 0 < tail["diff"]


def test_runs_that_did_not_train_alike_are_refused():
    with pytest.raises(ValueError, match="seed 42: the two runs' training curves differ"):
        pair_by_seed([run(42, 3, 0.1, 0.04, curve_shift=0.001)], [run(42, 2, 0.1, 0.03)])
    bare = run(42, 3, 0.1, 0.04)
    bare["history"] = []
    with pytest.raises(ValueError, match="seed 42"):
        pair_by_seed([bare], [copy.deepcopy(bare)])


def test_the_bench_reads_committed_runs_and_refuses_a_bad_pair(tmp_path, capsys):
    """Against themselves the committed confirmation runs change by nothing: a real run file reads."""
    import epoch_choice

    out = tmp_path / "table.md"
    assert epoch_choice.main(["--pair", f"{CONFIRMED}={CONFIRMED}", "--out", str(out)]) == 0
    table = out.read_text()
    assert "control-sasrec vs control-sasrec (5 seeds)" in table and "| 20.4 -> 20.4 |" in table
    assert table.count("| +0.0 % [+0.0, +0.0] |") == 4               # every metric, no change
    with pytest.raises(SystemExit):
        epoch_choice.main(["--pair", f"{CONFIRMED}"])
    assert "CHOSEN=BASELINE" in capsys.readouterr().err


def test_reports_name_the_metric_that_chose_the_epoch_only_where_it_is_not_ndcg():
    from results.dose_report import _epoch_choice
    from results.findings import _by_metric
    from tuning.config import config_from_dict

    default, tail = config_from_dict({}), config_from_dict({"train": {"select_metric": "tail_item_ndcg_10"}})
    assert _epoch_choice(default) == "" and _by_metric(default) == ""
    assert "tail_item_ndcg_10" in _epoch_choice(tail) and "tail_item_ndcg_10" in _by_metric(tail)


def test_runs_with_also_select_are_compared_within_themselves(tmp_path):
    """A run trained with train.also_select holds its second epoch choice: `also_runs` puts it in
    place of the run's own, and the bench's --within compares the two; a run without it is named."""
    import json

    import epoch_choice
    from results.epoch_choice import also_runs

    runs = [{**run(seed, 2, 0.100, 0.030), "also": {"tail_item_ndcg_10": {"best_epoch": 4, "valid": {},
                                                                          "test": {"ndcg_10": 0.098, "tail_item_ndcg_10": t}}}}
            for seed, t in ((42, 0.036), (43, 0.034))]
    moved = also_runs(runs, "tail_item_ndcg_10")
    assert [r["best_epoch"] for r in moved] == [4, 4] and moved[0]["history"] == runs[0]["history"]
    found = compare_epoch_choice(moved, runs, metrics=("tail_item_ndcg_10",))
    assert found["metrics"]["tail_item_ndcg_10"]["diff"] == pytest.approx(0.005)
    with pytest.raises(ValueError, match=r"seeds \[44\]: their runs hold no test at the hit_10 epoch"):
        also_runs([run(44, 2, 0.1, 0.03)], "hit_10")
    for r in runs:
        full = {**r, "test": {**{m: 0.1 for m in ("tail_user_ndcg_10", "hit_10")}, **r["test"]}}
        full["also"]["tail_item_ndcg_10"]["test"].update({"tail_user_ndcg_10": 0.1, "hit_10": 0.1})
        full.update({"arm": "icc", "config": {}, "valid": {}, "epochs": 4, "seconds": 1.0})
        (tmp_path / f"seed-{r['seed']}.json").write_text(json.dumps(full))
    out = tmp_path / "t.md"
    assert epoch_choice.main(["--within", str(tmp_path), "--out", str(out)]) == 0
    assert "at its tail_item_ndcg_10 epoch (2 seeds) | 2.0 -> 4.0 | tail_item_ndcg_10 | 0.0300 | 0.0350 |" in out.read_text()
