"""bench/variants.py's bookkeeping without training: which runs a resume skips, and the paired table
(seeds matched by seed, the p of scipy's paired t-test)."""

from __future__ import annotations

import json
import sys

import pytest
from scipy import stats

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import variants as V  # noqa: E402

OVERRIDES = ["data.name=ml-100k", "train.epochs=2"]


def _record(variant: str, seed: int, ndcg: float, overrides=OVERRIDES) -> dict:
    test = {k: ndcg for k in V.KEYS}
    return {"variant": variant, "seed": seed, "config_file": "configs/default.yaml", "overrides": list(overrides),
            "test": test, "valid": test, "best_epoch": 2, "epochs": 2, "cpu_s": 10.0, "wall_s": 11.0}


def _write(folder, record) -> None:
    V.record_path(folder, record["variant"], record["seed"]).write_text(json.dumps(record))


def test_a_resume_skips_runs_made_with_the_same_settings_only(tmp_path):
    jobs = [(v, "configs/default.yaml", s, OVERRIDES) for s in (42, 43) for v in ("plain", "llmesr")]
    _write(tmp_path, _record("plain", 42, 0.1))
    _write(tmp_path, _record("llmesr", 42, 0.1, overrides=["data.name=ml-100k", "train.epochs=3"]))  # other settings
    left = V.pending(jobs, tmp_path)
    assert [(j[0], j[2]) for j in left] == [("llmesr", 42), ("plain", 43), ("llmesr", 43)]
    assert V.pending(jobs, None) == jobs
    assert len(V.load_records(tmp_path)) == 2


def test_the_paired_table_matches_seeds_and_scipy():
    plain, llmesr = [0.050, 0.052, 0.049], [0.060, 0.061, 0.055]
    records = [_record("plain", s, v) for s, v in zip((42, 43, 44), plain)]
    records += [_record("llmesr", s, v) for s, v in zip((44, 43, 42), llmesr[::-1])]   # written in another order
    records.append(_record("icc", 45, 0.07))                                           # no shared seed: no row
    rows = [r for r in V.paired_table(records) if r.startswith("| llmesr vs plain") and "| ndcg_10 |" in r]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "3"
    assert float(cells[-1]) == pytest.approx(stats.ttest_rel(llmesr, plain).pvalue, abs=5e-4)
    change = 100 * (sum(llmesr) - sum(plain)) / sum(plain)
    assert cells[5] == f"{change:+.1f} %"
    assert not any(r.startswith("| icc vs") for r in V.paired_table(records))
    means = V.means_table(records, {})
    assert any(line.startswith("| plain | 3 | 0.0503 ± ") for line in means)


def test_against_puts_each_run_beside_the_same_variant_and_seed_of_another_folder(tmp_path, capsys):
    first, second = tmp_path / "reference", tmp_path / "lean"
    first.mkdir(), second.mkdir()
    for seed, ndcg in ((42, 0.061), (43, 0.062)):
        _write(first, _record("llmesr", seed, ndcg))
    _write(second, {**_record("llmesr", 43, 0.0625), "cpu_s": 4.0})
    _write(second, _record("plain", 42, 0.05))                          # another variant: not beside seed 42
    V.merge(first, second)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| llmesr")]
    assert rows == ["| llmesr | 43 | 0.062000 / 0.062500 | 0.062000 / 0.062500 | 0.062000 / 0.062500 "
                    "| 2 / 2 and 2 / 2 | 10 / 4 | 5 / 2 |"]
    with pytest.raises(SystemExit, match="no run in"):
        V.merge(first, tmp_path)
