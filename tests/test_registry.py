"""The env registry: names, prefixes, and helpful errors for unknown names."""
from __future__ import annotations

import pytest

import robolearn
from robolearn.envs import registry
from robolearn.envs.registry import UnknownEnvError, make, register, registered


def test_unknown_name_lists_registered_and_suggests_close_matches():
    with pytest.raises(UnknownEnvError) as exc:
        make("dmc_cartpole-swingup")
    msg = str(exc.value)
    assert "'dmc_cartpole-swingup'" in msg
    assert "Did you mean dmc/cartpole-swingup" in msg
    for name in registered():
        assert name in msg
    assert isinstance(exc.value, KeyError)  # the CLI turns KeyError into a one-line error


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(UnknownEnvError) as exc:
        robolearn.make("zzzz/qqqq")
    assert "Did you mean" not in str(exc.value)
    assert "Registered envs:" in str(exc.value)


def test_registered_is_sorted_and_includes_dmc():
    names = registered()
    assert names == sorted(names)
    assert "dmc/walker-walk" in names


def test_register_exact_and_prefix_and_lazy_string(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_PREFIXES", dict(registry._PREFIXES))
    seen = []
    register("test/exact", lambda **kw: seen.append(("exact", kw)) or "E")
    register("testfam/", lambda rest, **kw: seen.append((rest, kw)) or "P", prefix=True)
    assert make("test/exact", a=1) == "E"
    assert make("testfam/anything-here", b=2) == "P"
    assert seen == [("exact", {"a": 1}), ("anything-here", {"b": 2})]
    assert "test/exact" in registered() and "testfam/" not in registered()
    # "module:attr" strings resolve lazily at make() time.
    register("test/lazy", "robolearn.envs.dmc:make_dmc")
    with pytest.raises(TypeError):  # resolved to make_dmc, which needs the task name
        make("test/lazy")


def test_dmc_prefix_reaches_any_suite_task():
    env = robolearn.make("dmc/acrobot-swingup")  # not registered by name, served by the prefix
    assert env.unwrapped.name == "dmc/acrobot-swingup"
    assert "dmc/acrobot-swingup" not in registered()
    env.close()
