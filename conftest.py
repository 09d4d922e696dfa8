"""Hypothesis profiles shared by every test folder.

`ci` is the default and keeps `make test` within its time budget on 2 cores;
`deep` is for long runs: `STORVISOR_HYPOTHESIS=deep make test`. Under `deep` a test
may run for hours (the storage state machine's 10 000 sequences), so the per-test
timeout of pyproject.toml, which stops a hang in CI, is raised for it.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("STORVISOR_HYPOTHESIS", "ci")
DEEP_TIMEOUT_SECONDS = 24 * 3600

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "deep",
    max_examples=5000,
    stateful_step_count=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items):
    """A timeout marker outranks the ini's `timeout` (pytest-timeout)."""
    if PROFILE == "deep":
        for item in items:
            item.add_marker(pytest.mark.timeout(DEEP_TIMEOUT_SECONDS))
