"""Inference in a child process: the frame protocol (no pickle) and the backend against the in-process one."""
import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import pytest

from robolearn.deploy.inference import LocalInference
from robolearn.deploy.inference_proc import (ProcessInference, read_frame, state_arrays, state_from_arrays,
                                             write_frame)
from robolearn.deploy.loop import RobotState
from robolearn.hardware.robot_config import RobotConfig

MODE = "ROBOLEARN_TEST_INFER_MODE"


class Affine:
    """Deterministic joint-space policy: chunk rows = state q scaled, plus the step index."""

    def reset(self):
        self.n_reset = getattr(self, "n_reset", 0) + 1

    def act(self, obs):
        mode_file = os.environ.get(MODE)
        if mode_file and os.path.exists(mode_file):
            return np.zeros((3, 2))  # the test switched this policy to a wrong shape
        q = obs["state"][:7]
        return np.concatenate([np.stack([0.5 * q + 0.01 * i for i in range(4)]), np.zeros((4, 1))], 1)


CFG = dataclasses.replace(RobotConfig(), action_mode="joint_position", kinematics="")


def _state():
    return RobotState(q=np.linspace(-0.5, 0.5, 7), dq=np.zeros(7), received=1.5, stamp=2.5, gripper=0.25,
                      extras={"object_pose": (np.ones(3), np.array([1.0, 0, 0, 0])),
                              "images": {"front": np.full((4, 4, 3), 7, np.uint8)}})


def test_frames_roundtrip_without_pickle():
    buf = io.BytesIO()
    s = _state()
    write_frame(buf, {"op": "infer", "x": [1, 2]}, state_arrays(s, np.arange(8.0)))
    buf.seek(0)
    header, arrays = read_frame(buf)
    assert header == {"op": "infer", "x": [1, 2]}
    back = state_from_arrays(arrays)
    np.testing.assert_array_equal(back.q, s.q)
    assert (back.received, back.stamp, back.gripper) == (1.5, 2.5, 0.25)
    np.testing.assert_array_equal(back.extras["images"]["front"], s.extras["images"]["front"])
    np.testing.assert_array_equal(arrays["last_command"], np.arange(8.0))
    buf = io.BytesIO(b"\x05\x00\x00\x00\x00\x00")
    with pytest.raises(EOFError, match="closed its pipe"):
        read_frame(buf)


def test_process_backend_matches_in_process_and_reports_errors(monkeypatch, tmp_path):
    from robolearn.deploy.node import build_kinematics, build_mapper

    flag = tmp_path / "badshape"
    monkeypatch.setenv(MODE, str(flag))  # inherited by the child; the file appears later

    kin, obs_builder = build_kinematics(CFG)
    local = LocalInference(Affine(), obs_builder, build_mapper(CFG, kin))
    proc = ProcessInference({"policy": f"{__file__}:Affine"}, CFG)
    try:
        assert proc.command_dim == 8
        proc.reset()
        s = _state()
        np.testing.assert_allclose(proc.infer(s, None), local.infer(s, None))
        proc.observe(s)  # Affine has no observe(): a no-op, not an error
        flag.write_text("on")
        with pytest.raises(ValueError, match=r"policy returned shape \(3, 2\)"):
            proc.infer(s, None)
    finally:
        proc.close()


def test_process_backend_startup_error_is_clear(tmp_path):
    with pytest.raises(ValueError, match="failed to start: FileNotFoundError: policy file not found"):
        ProcessInference({"policy": str(tmp_path / "nope.py") + ":X"}, CFG)


def test_process_backend_builds_the_loop_benchmark_policies_from_deploy():
    """The {"bench": name} spec is served by robolearn.deploy.synthetic_policies (deploy never imports bench)."""
    with pytest.raises(ValueError, match="failed to start: ValueError: unknown policy 'bogus'; use consistency"):
        ProcessInference({"bench": "bogus"}, CFG)


def test_synthetic_policies_act_with_the_peg_insert_sizes():
    from robolearn.deploy.synthetic_policies import ACTION_DIM, STATE_DIM, build_synthetic_policies

    recipe = Path(__file__).resolve().parents[1] / "policies" / "diffusion.yaml"
    policies = build_synthetic_policies(["consistency", "ddim10", "none"], recipe=str(recipe))
    obs = {"state": np.zeros(STATE_DIM, np.float32)}
    for name, policy in policies.items():
        policy.reset()
        chunk = np.asarray(policy.act(obs))
        assert chunk.ndim == 2 and chunk.shape[1] == ACTION_DIM and np.all(np.isfinite(chunk)), (name, chunk.shape)
    assert not np.any(policies["none"].act(obs))
