"""Every benchmark script runs end to end in its `--smoke` mode (tiny data, seconds to a minute).

The benchmarks print the tables docs/performance.md cites; a refactor that breaks one would otherwise go
unnoticed until someone re-measures. Scripts are found on disk, so a new one is checked too.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import HANG_GUARD_S, REPO
from runtime import quiet_child_environment

#: every runnable script in bench/ (its helper modules have no __main__ block)
SCRIPTS = sorted(path.stem for path in (REPO / "bench").glob("*.py")
                 if 'if __name__ == "__main__":' in path.read_text())
#: what a script needs beyond this CPU machine, or where else its smoke runs
NEEDS = {
    "packing": pytest.mark.gpu,            # fractional trials on one GPU: nothing to measure on CPU
    "tabular": pytest.mark.skip(reason="its --smoke runs in tests/test_bench_tabular.py's fixture, "
                                       "whose table and report that file checks"),
}


def test_every_script_has_a_smoke_mode():
    assert SCRIPTS, "no benchmark scripts found"
    def has_smoke(text: str) -> bool:
        return '"--smoke"' in text or "C.parse_with_smoke(" in text      # bench/_common adds the flag

    missing = [name for name in SCRIPTS if not has_smoke((REPO / "bench" / f"{name}.py").read_text())]
    assert missing == [], f"bench scripts without --smoke: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", [pytest.param(name, marks=NEEDS.get(name, ())) for name in SCRIPTS])
def test_smoke_run_prints_its_table(script):
    done = subprocess.run([sys.executable, f"bench/{script}.py", "--smoke"], cwd=REPO, capture_output=True,
                          text=True, timeout=HANG_GUARD_S, env=quiet_child_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    table_rows = [line for line in done.stdout.splitlines() if line.startswith("|") or "seq/s" in line]
    assert table_rows, done.stdout[-2000:]


@pytest.mark.slow
def test_packing_without_ray_runs_its_levels_on_cpu():
    """`--backend processes` is what a lent GPU machine without Ray runs; here it checks the
    script on CPU: every level trains every run to its epochs."""
    done = subprocess.run([sys.executable, "bench/packing.py", "--smoke", "--backend", "processes", "--device", "cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S, env=quiet_child_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert [[cell.strip() for cell in row[:4]] for row in rows] == [["1", "2", "2", "2"], ["2", "2", "2", "2"]]
    assert all(row[6].strip() == "n/a" for row in rows)                  # no GPU: no utilisation claimed


def test_packing_on_cpu_needs_the_processes_backend():
    done = subprocess.run([sys.executable, "bench/packing.py", "--device", "cpu"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=quiet_child_environment())
    assert done.returncode == 2 and "--device cpu: allowed only with --backend processes" in done.stderr
