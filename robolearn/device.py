"""The torch device a command runs on, resolved in one place.

Every trainer, evaluator and benchmark takes ``--device auto|cpu|cuda|mps``. Resolving the name here,
before any model is built, turns "no GPU on this machine" into one clear error at start-up instead of a
CUDA assertion deep in the first forward pass. This module sits below every other layer of the
package (it imports only torch and the standard library), so any layer may use it.

Tests run on ``test_device()``: CPU by default, and ``ROBOLEARN_TEST_DEVICE=cuda pytest`` on a GPU
machine runs the same tests on the GPU.
"""
from __future__ import annotations

import argparse
import os

import torch

DEVICE_HELP = "auto|cpu|cuda|mps"
TEST_DEVICE_ENV = "ROBOLEARN_TEST_DEVICE"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Device names that would resolve on this machine (for error messages and ``--help``)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
        names.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if _mps_available():
        names.append("mps")
    return names


def _unavailable(name: str, why: str) -> ValueError:
    return ValueError(f"device {name!r} is not available: {why}; available here: {', '.join(available_devices())}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` prefers cuda, then mps, then cpu; an explicit device must exist, else ValueError.

    ``cuda`` resolves to the current CUDA device with its index (``cuda:0``), so that comparing it with
    a tensor's ``.device`` (always indexed) means what it says.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"unknown device {str(name)!r}: use {DEVICE_HELP} or cuda:N; available here: {', '.join(available_devices())}"
        ) from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise _unavailable(str(name), f"torch {torch.__version__} ({build}) sees no CUDA GPU")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise _unavailable(str(name), f"only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise _unavailable(str(name), "this torch build or machine has no Apple MPS backend")
        return torch.device("mps")
    raise ValueError(f"unsupported device {str(name)!r}: use {DEVICE_HELP} or cuda:N")


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``, kept a plain string: the command resolves it so its error text reaches the user."""
    parser.add_argument("--device", default=default,
                        help=f"{DEVICE_HELP} (or cuda:N; auto: cuda, else mps, else cpu; default {default})")


def make_generator(device: str | torch.device, seed: int) -> torch.Generator:
    """A seeded generator on ``device``: random draws for tensors on a device must come from a generator there."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return torch.Generator(device=dev).manual_seed(int(seed))


def test_device() -> torch.device:
    """The device tests run on: ``$ROBOLEARN_TEST_DEVICE`` (default cpu), resolved (so a missing GPU fails loudly)."""
    return resolve_device(os.environ.get(TEST_DEVICE_ENV, "cpu") or "cpu")


test_device.__test__ = False  # a helper, not a test, when a test module imports it by name
