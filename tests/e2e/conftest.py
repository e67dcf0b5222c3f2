from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.cluster import E2E_ENV, Cluster


@pytest.fixture
def e2e_settings(settings):
    """The test process agrees with the cluster about timing (the sweeper reads these)."""
    settings.HERALD_RETRY_SCHEDULE = [float(d) for d in E2E_ENV["HERALD_RETRY_SCHEDULE"].split(",")]
    settings.HERALD_LEASE_SECONDS = int(E2E_ENV["HERALD_LEASE_SECONDS"])
    return settings


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Extra environment for the cluster; a test module overrides this fixture to change it."""
    return {}


@pytest.fixture
def cluster(transactional_db, e2e_settings, cluster_env, tmp_path):
    """A running qcluster; the test may kill and restart it."""
    running = Cluster(tmp_path / "qcluster.log", cluster_env)
    running.start()
    yield running
    running.stop()


def wait_until(condition: Callable[[], bool], *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting until {message}")
