"""Unknown config keys: each gets its nearest known key ("did you mean") and the message names the file."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robolearn.config_io import ConfigError, from_dict, load_yaml


@dataclass
class _Inner:
    learning_rate: float = 1e-3


@dataclass
class _Outer:
    horizon: int = 16
    n_action_steps: int = 8
    inner: _Inner = field(default_factory=_Inner)


def test_typo_gets_the_nearest_key():
    with pytest.raises(ConfigError) as exc:
        from_dict(_Outer, {"horizn": 4})
    msg = str(exc.value)
    assert "'horizn' (did you mean 'horizon'?)" in msg
    assert "known keys: horizon, inner, n_action_steps" in msg


def test_each_unknown_key_gets_its_own_suggestion_and_no_guess_when_nothing_is_close():
    with pytest.raises(ConfigError) as exc:
        from_dict(_Outer, {"horizn": 4, "n_action_step": 2, "zzzzzz": 1})
    msg = str(exc.value)
    assert "unknown keys" in msg
    assert "'horizn' (did you mean 'horizon'?)" in msg
    assert "'n_action_step' (did you mean 'n_action_steps'?)" in msg
    assert "'zzzzzz'; known keys" in msg  # nothing close: no guess


def test_source_file_is_named_also_in_nested_sections(tmp_path):
    src = tmp_path / "my_recipe.yaml"
    with pytest.raises(ConfigError, match=r"my_recipe\.yaml: policy\.inner: unknown key 'learning_rat' "
                                          r"\(did you mean 'learning_rate'\?\)"):
        from_dict(_Outer, {"inner": {"learning_rat": 0.1}}, where="policy", source=src)
    # a ``where`` that already holds the path does not repeat it
    with pytest.raises(ConfigError) as exc:
        from_dict(_Outer, {"horizn": 1}, where=f"{src}.policy", source=src)
    assert str(exc.value).count(str(src)) == 1


def test_load_yaml_names_the_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("horizon: 4\nn_actoin_steps: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(_Outer, path)
    msg = str(exc.value)
    assert str(path) in msg and "did you mean 'n_action_steps'" in msg


def test_bc_recipe_typo_names_file_and_suggestion(tmp_path):
    from robolearn.train.bc import load_recipe

    bad = tmp_path / "bad.yaml"
    bad.write_text("type: diffusion\npolicy:\n  horizn: 16\ntrain:\n  batch_sise: 8\n")
    with pytest.raises(ConfigError) as exc:
        load_recipe(bad)
    msg = str(exc.value)
    assert str(bad) in msg and "'horizn' (did you mean 'horizon'?)" in msg


def test_rl_recipe_typo_names_file_and_suggestion():
    from robolearn.train.rl_config import build_config

    with pytest.raises(ConfigError) as exc:
        build_config("sac", {"agent": {"actor_lrr": 1e-4}}, where="policies/sac.yaml")
    msg = str(exc.value)
    assert "policies/sac.yaml" in msg and "'actor_lrr' (did you mean 'actor_lr'?)" in msg


def test_check_keys_for_callers_own_sections():
    from robolearn.config_io import check_keys

    check_keys({"type": 1, "policy": {}}, ("type", "policy", "train"), "r.yaml")  # all known: no error
    with pytest.raises(ConfigError, match=r"r\.yaml: unknown section 'tran' \(did you mean 'train'\?\); "
                                          r"known sections: policy, train, type"):
        check_keys({"tran": {}}, ("type", "policy", "train"), "r.yaml", what="section")


def test_a_misspelled_recipe_section_gets_a_did_you_mean_naming_the_file(tmp_path):
    """`tran:` instead of `train:` in a BC or RL recipe: the error names the file and the section it meant."""
    from robolearn.train.bc import load_recipe
    from robolearn.train.rl_config import build_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("type: consistency\ntran:\n  steps: 10\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*'tran'.*did you mean 'train'"):
        load_recipe(bad)
    with pytest.raises(ValueError, match=r"rl\.yaml.*'agnet'.*did you mean 'agent'"):
        build_config("rlpd", {"agnet": {}}, where="rl.yaml")
