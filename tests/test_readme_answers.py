"""The README's answer table ("What the studies found") says what the committed dose-responses say.

That table is written by hand from `docs/studies/icc-answers.md` and `.csv`, which
tests/test_icc_answers.py keeps equal to what `launch.py dose --summary` computes from the committed
run files. Here the hand-written table is held to them: every signed percentage (a change or an end
of its 95 % CI) and Holm p-value it quotes is one of the primary family's, a "worse" or "better" is a verdict there, "no help" has no
"better" beside it, and a dose-response still running is "under way" with its true run count. So a
README that falls behind the runs, or quotes an unadjusted p-value, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "docs" / "studies"
METRICS = ("ndcg_10", "tail_item_ndcg_10")            # the README table's two result columns


def readme_rows() -> dict[tuple[str, str, str], tuple[str, str]]:
    """(dataset, backbone, dose-response) -> (overall cell, tail-item cell) of the README's answer
    table; its third column names the dose-response (a link whose text is its name), since one
    dataset and backbone may have several, around differently tuned arms."""
    section = (ROOT / "README.md").read_text().split("## What the studies found", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[0] not in ("dataset", "---"):
            name = re.match(r"\[([^\]]+)\]", cells[2])
            rows[(cells[0], cells[1].lower(), name[1] if name else cells[2])] = (cells[3], cells[4])
    return rows


def summary_counts() -> dict[tuple[str, str, str], tuple[int, int]]:
    """(dataset, backbone, dose-response) -> (runs done, runs planned), from the committed icc-answers.md."""
    counts = {}
    for line in (STUDIES / "icc-answers.md").read_text().splitlines():
        found = re.match(r"\| (\S+) \| (\S+) \| (\S+) \| (\d+) of (\d+) \|", line)
        if found:
            counts[(found[1], found[2], found[3])] = (int(found[4]), int(found[5]))
    return counts


def family() -> pd.DataFrame:
    return pd.read_csv(STUDIES / "icc-answers.csv")


def quoted_percentages(cell: str) -> set[str]:
    """Signed changes the cell quotes ("-1.7 %", "-0.4 to +0.4 %"): every "+x.x" or "-x.x"."""
    return set(re.findall(r"(?<![\w.])[+-]\d+\.\d\b", cell))


def ci_bounds(rows: pd.DataFrame) -> set[str]:
    """The ends of each change's 95 % CI, in % of the control's mean, as the README quotes them."""
    return {f"{100 * (r.diff + sign * r.diff_half_width) / r.control_mean:+.1f}"
            for r in rows.itertuples() for sign in (-1, 1)}


def quoted_holm(cell: str) -> set[str]:
    """p-values quoted as Holm-adjusted: every number inside "(Holm p ...)"."""
    return {p for inside in re.findall(r"Holm p ([^)]*)\)", cell) for p in re.findall(r"\d\.\d{3}", inside)}


def test_the_readme_table_has_a_row_for_every_committed_dose_response():
    rows = readme_rows()
    assert rows, "no answer table under '## What the studies found' in README.md"
    missing = set(summary_counts()) - set(rows)
    assert not missing, f"dose-responses committed but absent from the README's answer table: {missing}"


@pytest.mark.parametrize("key", sorted(readme_rows()), ids="-".join)
def test_each_readme_row_quotes_its_primary_family(key):
    cells = readme_rows()[key]
    counts = summary_counts().get(key)
    rows = family()[(family()["dataset"] == key[0]) & (family()["backbone"] == key[1])
                    & (family()["dose_response"] == key[2])]
    running = counts is not None and counts[0] < counts[1]      # an interim family (confirmation running)
    if rows.empty or running:            # still running (or not started): no claim, the true count
        assert all("under way" in cell for cell in cells), (key, cells)
        stated = re.search(r"(\d+) of (\d+) runs", cells[0])
        if counts is None:
            assert stated is None, f"{key}: the README gives a run count but no runs are committed"
        elif stated:
            assert (int(stated[1]), int(stated[2])) == counts, (key, stated[0], counts)
        return
    for metric, cell in zip(METRICS, cells):
        mine = rows[rows["metric"] == metric]
        assert "under way" not in cell, f"{key} {metric}: the primary family is whole; say what it found"
        changes = {f"{100 * r:+.1f}" for r in mine["relative"]} | ci_bounds(mine)
        assert quoted_percentages(cell) <= changes, (key, metric, quoted_percentages(cell) - changes)
        holm = {f"{p:.3f}" for p in mine["p_holm"]}
        assert quoted_holm(cell) <= holm, (key, metric, quoted_holm(cell) - holm)
        verdicts = set(mine["verdict"])
        for word in ("worse", "better"):
            assert (word in cell) <= (word in verdicts), (key, metric, word, verdicts)
        if "no help" in cell:
            assert "better" not in verdicts, (key, metric, verdicts)


def test_the_checks_catch_a_stale_or_unadjusted_quote():
    """The extraction the checks rest on: a raw p-value or a changed percentage is seen."""
    assert quoted_percentages("KMeans 64 at 5 % -1.7 %, HDBSCAN 5 at 1 % -1.6 % (-0.4 to +0.4 %)") == {
        "-1.7", "-1.6", "-0.4", "+0.4"}
    assert quoted_holm("**worse**: -26.3 % and -25.5 % (Holm p 0.037 and 0.049)") == {"0.037", "0.049"}
    assert quoted_holm("-3.3 % (p = 0.017)") == set()           # an unadjusted p is not passed off as Holm's
    gru = family()[(family()["backbone"] == "gru4rec") & (family()["metric"] == "tail_item_ndcg_10")]
    assert "0.009" not in {f"{p:.3f}" for p in gru["p_holm"]}     # its raw p (0.009) is not a Holm p
