"""Checkpoint folders: save -> load is bit-identical; bad checkpoints fail with errors naming the problem."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robolearn.policies.consistency.configuration import ConsistencyConfig
from robolearn.policies.diffusion.configuration import DiffusionConfig
from robolearn.policies.registry import policy_class
from robolearn.train import checkpoint as ckpt

torch.set_num_threads(1)
TINY = dict(state_dim=3, action_dim=2, down_dims=(8, 16), n_groups=4, step_embed_dim=8, state_hidden=(16,),
            state_feature_dim=8, horizon=8, n_action_steps=4)


def _policy(kind="diffusion", **kw):
    torch.manual_seed(0)
    cfg = (DiffusionConfig if kind == "diffusion" else ConsistencyConfig)(**{**TINY, **kw})
    p = policy_class(kind)(cfg)
    p.set_normalization(np.array([-2, -1, 0]), np.array([2, 1, 5]), np.array([-0.5, 0]), np.array([0.5, 0.3]))
    return p.eval()


def _sample(p):
    obs = {"state": torch.tensor([[[0.1, -0.2, 3.0], [0.2, 0.0, 2.0]]])}
    return p.sample_actions(obs, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("kind", ["diffusion", "consistency"])
def test_save_load_bit_identical(tmp_path, kind):
    p = _policy(kind)
    ckpt.save_policy(p, tmp_path / "ck", meta={"note": "x"})
    assert sorted(f.name for f in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "normalization.safetensors"]
    q = ckpt.load_policy(tmp_path / "ck")
    assert type(q) is type(p) and q.config == p.config
    assert torch.equal(_sample(p), _sample(q))
    assert torch.equal(q.action_norm.max, p.action_norm.max)
    # a run directory resolves to its checkpoint/ folder
    ckpt.save_policy(p, tmp_path / "run" / "checkpoint")
    assert torch.equal(_sample(ckpt.load_policy(tmp_path / "run")), _sample(p))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt.load_policy(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        ckpt.load_policy(tmp_path / "empty")
    ckpt.save_policy(_policy(), tmp_path / "ck")
    (tmp_path / "ck" / "normalization.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="normalization.safetensors"):
        ckpt.load_policy(tmp_path / "ck")


def test_wrong_shapes_and_corrupt_files(tmp_path):
    ckpt.save_policy(_policy(), tmp_path / "ck")
    # config says bigger network than the stored weights
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    doc["config"]["down_dims"] = [8, 24]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ckpt.CheckpointError, match="has shape"):
        ckpt.load_policy(tmp_path / "ck")
    ckpt.save_policy(_policy(), tmp_path / "ck2")
    model = tmp_path / "ck2" / "model.safetensors"
    tensors = load_file(str(model))
    tensors.pop(next(iter(tensors)))
    save_file(tensors, str(model))
    with pytest.raises(ckpt.CheckpointError, match="missing"):
        ckpt.load_policy(tmp_path / "ck2")
    model.write_bytes(b"\x00" * 10)
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.load_policy(tmp_path / "ck2")
    (tmp_path / "ck2" / "config.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="not valid JSON"):
        ckpt.load_policy(tmp_path / "ck2")


def test_other_policy_type_is_a_clear_error(tmp_path):
    ckpt.save_policy(_policy("consistency"), tmp_path / "cp")
    with pytest.raises(ckpt.CheckpointError, match="holds a 'consistency' policy, expected a 'diffusion'"):
        ckpt.load_policy(tmp_path / "cp", expected_type="diffusion")
    # a consistency config under a diffusion type tag: the unknown keys are named
    doc = json.loads((tmp_path / "cp" / "config.json").read_text())
    doc["type"] = "diffusion"
    (tmp_path / "cp" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="unknown key.*sigma_data"):
        ckpt.load_policy(tmp_path / "cp")
    doc["type"] = "gaussian_mixture"
    (tmp_path / "cp" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(KeyError, match="unknown policy type 'gaussian_mixture'"):
        ckpt.load_policy(tmp_path / "cp")


def test_atomic_directory_keeps_old_on_failure(tmp_path):
    ckpt.save_policy(_policy(), tmp_path / "ck")
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError):
        with ckpt.atomic_directory(tmp_path / "ck") as tmp:
            (tmp / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("killed mid-write")
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
