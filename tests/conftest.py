"""Shared test settings.

``device``: the torch device tests run models on, from ``$ROBOLEARN_TEST_DEVICE`` (default cpu), so a
machine with a GPU runs the same tests on it with ``ROBOLEARN_TEST_DEVICE=cuda pytest``.
"""
from __future__ import annotations

import pytest

from robolearn.device import TEST_DEVICE_ENV, test_device


def pytest_report_header(config) -> str:
    try:
        return f"robolearn test device: {test_device()} (${TEST_DEVICE_ENV})"
    except ValueError as exc:  # said once in the header; every test using the fixture fails with it too
        return f"robolearn test device: {exc}"


@pytest.fixture
def device():
    return test_device()
