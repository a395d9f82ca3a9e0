"""``robolearn.device``: name resolution, clear errors for missing devices, and per-device generators."""
import argparse

import pytest
import torch

from robolearn.device import TEST_DEVICE_ENV, add_device_argument, make_generator, resolve_device, test_device


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has an accelerator")
def test_auto_is_cpu_on_a_machine_without_accelerators():
    assert resolve_device("auto") == torch.device("cpu")


def test_explicit_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
        assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_an_error_that_names_it():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device '{name}' is not available: .*no CUDA GPU.*available here: cpu"):
            resolve_device(name)


def test_missing_gpu_index_and_mps_are_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ValueError, match=r"'cuda:3' is not available: only 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'mps' is not available.*available here: cpu, cuda, cuda:0"):
        resolve_device("mps")


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "", "tpu", "meta"])
def test_unknown_names_are_errors(bad):
    with pytest.raises(ValueError, match=rf"(unknown|unsupported) device '{bad}'"):
        resolve_device(bad)


def test_device_argument_is_resolved_by_the_command():
    parser = argparse.ArgumentParser()
    add_device_argument(parser)
    assert parser.parse_args([]).device == "auto"
    assert parser.parse_args(["--device", "cpu"]).device == "cpu"
    assert "auto|cpu|cuda|mps" in parser.format_help()
    other = argparse.ArgumentParser()
    add_device_argument(other, default="cpu")
    assert other.parse_args([]).device == "cpu"


def test_generator_lives_on_the_device_and_repeats_by_seed():
    dev = test_device()
    a, b, c = make_generator(dev, 3), make_generator(dev, 3), make_generator(dev, 4)
    assert a.device.type == dev.type
    x = torch.randn(64, generator=a, device=dev)
    assert x.device.type == dev.type
    assert torch.equal(x, torch.randn(64, generator=b, device=dev))
    assert not torch.equal(x, torch.randn(64, generator=c, device=dev))
    assert make_generator(str(dev), 3).device.type == dev.type


def test_cpu_generator_draws_what_torch_generator_draws():
    """The trainers' CPU runs must keep their random streams: make_generator('cpu', s) is torch.Generator().manual_seed(s)."""
    assert torch.equal(torch.randn(16, generator=make_generator("cpu", 5)),
                       torch.randn(16, generator=torch.Generator().manual_seed(5)))


def test_test_device_reads_the_environment(monkeypatch):
    monkeypatch.delenv(TEST_DEVICE_ENV, raising=False)
    assert test_device() == torch.device("cpu")
    monkeypatch.setenv(TEST_DEVICE_ENV, "cpu")
    assert test_device() == torch.device("cpu")
    monkeypatch.setenv(TEST_DEVICE_ENV, "nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        test_device()


def test_fixture_matches_helper(device):
    assert device == test_device()
