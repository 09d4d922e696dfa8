"""Hypothesis profiles shared by every test folder.

`ci` is the default and keeps `make test` within its time budget on 2 cores;
`deep` is for long runs: `STORVISOR_HYPOTHESIS=deep make test`.
"""

import os

from hypothesis import HealthCheck, settings

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
settings.load_profile(os.environ.get("STORVISOR_HYPOTHESIS", "ci"))
