"""The worker pool that trains a dose-response's and a study's runs: what the driver does before
any worker starts."""

from __future__ import annotations

import pytest

from tuning.config import load_config


class _WorkersStarted(Exception):
    pass


def test_the_driver_prepares_the_data_before_any_worker_starts(tmp_path, monkeypatch):
    """On a cold cache each worker would load the text model and embed the catalogue itself:
    N identical encodes for N workers. The driver prepares once; the workers find it cached."""
    from conftest import SHARED_DATA, TEST_CACHE
    from datasets.cache import is_complete
    from results.orchestration import dose

    cache = tmp_path / "cache"
    cache.mkdir()
    for shared in ("downloads", "text-emb"):          # the wheel and MiniLM vectors, not the prepared data
        if (TEST_CACHE / shared).is_dir():
            (cache / shared).symlink_to(TEST_CACHE / shared)
    config = load_config(None, [
        "data.name=ml-100k", f"data.data_root={SHARED_DATA}", f"data.cache_dir={cache}",
        "dose.shares=[0.1]", "dose.clusterings=[kmeans-8]", "dose.seeds=[42,43]", "dose.workers=4"])

    def no_workers(*args, **kwargs):
        raise _WorkersStarted([path.name for path in cache.iterdir() if is_complete(path)])

    monkeypatch.setattr(dose, "run_pool", no_workers)
    with pytest.raises(_WorkersStarted) as started:
        dose.run_doses(config, tmp_path / "dose", progress=False)
    prepared = started.value.args[0]
    assert len(prepared) == 1 and prepared[0].startswith("ml-100k-"), prepared


def _sleeping(pool, jobs: int) -> tuple[list, list]:
    """`jobs` 60-second sleeps submitted to `pool`, once one runs: the futures and the workers."""
    import time

    futures = [pool.submit(time.sleep, 60) for _ in range(jobs)]
    while not any(future.running() for future in futures):
        time.sleep(0.1)
    return futures, list(pool._processes.values())


def test_ctrl_c_ends_the_runs_in_flight_and_drops_the_queued_ones():
    """A KeyboardInterrupt in the driver (Ctrl-C, or a SIGINT sent to the driver alone) must not
    wait for the pool to train every queued run: the running ones are ended (their last epoch is
    checkpointed), the queued ones cancelled."""
    import time

    from results.orchestration.confirm import run_pool

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with run_pool(2) as pool:
            futures, workers = _sleeping(pool, 4)
            raise KeyboardInterrupt
    assert workers and not any(worker.is_alive() for worker in workers)
    assert time.monotonic() - start < 45                  # not the 2 x 60 s the queue holds
    assert all(future.done() for future in futures)       # none left to run after the driver
    assert not any(not future.cancelled() and future.exception() is None for future in futures)


def test_a_sigterm_to_the_driver_ends_the_pool_too_and_its_handler_comes_back():
    """A scheduler stops a job with SIGTERM: the driver must not die and leave its workers
    training beside the next driver's; it stops them as on Ctrl-C."""
    import os
    import signal
    import time

    from results.orchestration.confirm import run_pool

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with run_pool(2) as pool:
            _, workers = _sleeping(pool, 3)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)                                  # the handler raises long before this ends
    assert workers and not any(worker.is_alive() for worker in workers)
    assert signal.getsignal(signal.SIGTERM) is before
