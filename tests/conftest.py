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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks on a shared 2-core machine: extra OpenMP threads only add barrier waits."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
