"""The dashboard page in a real headless browser, and optuna-dashboard on a finished study.

Browser: Debian's chromium. When it is missing the set-up installs it with
`apt-get install -y --no-install-recommends chromium` (needs root); the tests skip, saying so,
only where that is impossible. The page must show its tables in the DOM, log nothing to the
console and render (a screenshot that is not blank).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HANG_GUARD_S
from test_results import build_small_experiment

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0")


def _find_browser() -> str | None:
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def _install_browser() -> str:
    """Try apt-get (as root); return what happened, for the skip reason."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    return f"apt-get install chromium exited {done.returncode}: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _find_browser()
    if path is None:
        what = _install_browser()
        path = _find_browser()
        if path is None:
            pytest.skip(f"chromium is not installed and could not be installed ({what})")
    return path


def headless(browser: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=HANG_GUARD_S)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return build_small_experiment(tmp_path_factory.mktemp("dashboard"), num_samples=3)


@pytest.fixture(scope="module")
def report(experiment) -> dict:
    from results.report import write_report

    return write_report(experiment)


def test_page_is_self_contained(report):
    page = Path(report["html"]).read_text()
    assert "<script" not in page.lower()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:") for link in links), [l[:40] for l in links]
    assert "http://" not in page and "https://" not in page
    assert "never reads test metrics" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(report["plots"]) >= 3
    import matplotlib.image

    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.std() > 0


def test_page_opens_in_headless_chromium(chromium, report, experiment):
    url = Path(report["html"]).resolve().as_uri()
    dom = headless(chromium, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    for table in ("best_per_backbone", "segments", "grid_sasrec", "trials"):
        assert f'<table id="{table}"' in dom.stdout, table
    assert dom.stdout.count("<img") == len(report["plots"])
    assert report["best"]["trial_id"] in dom.stdout
    shot = Path(experiment) / "report" / "screenshot.png"
    done = headless(chromium, url, f"--screenshot={shot}", "--window-size=1200,1600")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    import matplotlib.image

    assert matplotlib.image.imread(str(shot)).std() > 0.01   # something was drawn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=HANG_GUARD_S) as answer:
        return answer.status, answer.read()


def test_optuna_dashboard_serves_the_study(experiment):
    executable = Path(sys.executable).with_name("optuna-dashboard")
    if not executable.is_file():
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    port = _free_port()
    storage = f"sqlite:///{(experiment / 'optuna.db').resolve()}"
    server = subprocess.Popen([str(executable), storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, status = time.monotonic() + HANG_GUARD_S, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, page = _get(f"http://127.0.0.1:{port}/dashboard/")
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, server.stderr.read().decode()[-2000:] if server.poll() is not None else status
        status, body = _get(f"http://127.0.0.1:{port}/api/studies")
        names = [s["study_name"] for s in json.loads(body)["study_summaries"]]
        assert status == 200 and names == [experiment.name]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
