"""Shared fixtures: real datasets prepared once per test session (cached between runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import quiet_environment, set_torch_threads

REPO = Path(__file__).resolve().parents[1]
#: ../shared/data beside the repository, found from a copy inside it too (mutmut's mutants/)
SHARED_DATA = next((p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()),
                   REPO.parent / "shared" / "data")
TEST_CACHE = REPO / ".cache" / "test"
#: How long a child process or a wait for some state may take before a test calls it hung. A
#: guard against hangs only, never a speed limit: tests wait for states and events, and a busy
#: machine can run them 50x slower than an idle one.
HANG_GUARD_S = 3600

quiet_environment()


def pytest_configure(config):
    """One torch thread in the test process: the suite's models are tiny and Ray trial workers
    run beside it, and oversubscribed OpenMP threads made 2-epoch runs up to 50x slower here."""
    set_torch_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests on machines without CUDA, with the reason shown."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _default_cache_entries() -> set[str]:
    """The prepared datasets (one folder per source and hash) and caches in the repository's
    default data cache. The top level only: a study running beside the tests in the same checkout
    adds cluster files there, never a new dataset, and a clean clone's first stray write is a new
    top-level folder."""
    root = REPO / ".cache" / "icc-tune"
    return {path.name for path in root.glob("*")}


@pytest.fixture(autouse=True)
def _tests_prepare_data_in_the_test_cache():
    """A test that prepares data with the default `data.cache_dir` prepares it a second time
    beside TEST_CACHE: a cold MiniLM pass over amazon-scientific, a minute of every CI run."""
    before = _default_cache_entries()
    yield
    added = sorted(_default_cache_entries() - before)
    assert not added, (f"this test wrote the default data cache .cache/icc-tune ({', '.join(added[:4])}); "
                       f"give it data.cache_dir={TEST_CACHE} (tests/conftest.TEST_CACHE)")


def data_config(name: str, **options):
    from datasets.config import DataConfig

    return DataConfig(name=name, data_root=str(SHARED_DATA), cache_dir=str(TEST_CACHE), **options)


def user_subset(data, n_users: int):
    """The first n_users users of a prepared dataset (PreparedDataset.first_users)."""
    return data.first_users(n_users)


@pytest.fixture(scope="module")
def ray_session():
    """A private local Ray for one test module (address "local": never a cluster someone left
    running on the machine)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ml100k():
    """MovieLens-100K (fetched from the recbole wheel), prepared with default options."""
    from datasets.prepare import prepare_dataset

    return prepare_dataset(data_config("ml-100k"), progress=False)


@pytest.fixture(scope="session")
def scientific():
    """Amazon Scientific (item text, long tail), prepared with default options."""
    from datasets.prepare import prepare_dataset

    return prepare_dataset(data_config("amazon-scientific"), progress=False)
