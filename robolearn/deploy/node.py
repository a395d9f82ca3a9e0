"""The ROS node core shared by both transports: message handling, the loop, command messages, status."""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robolearn.deploy.action_map import JointStateObs, make_mapper
from robolearn.deploy.loop import ControllerLoop, LoopConfig
from robolearn.deploy.ros_io import (compressed_image_from_msg, forward_msg, image_from_msg,
                                     joint_state_to_robot_state, pose_from_msg, trajectory_msg)
from robolearn.hardware.robot_config import RobotConfig


def loop_config(cfg: RobotConfig, **overrides) -> LoopConfig:
    base = dict(command_hz=cfg.command_hz, policy_hz=cfg.control_hz, stale_periods=cfg.stale_periods,
                max_joint_velocity=cfg.max_joint_velocity, joint_margin=cfg.joint_margin)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return LoopConfig(**base)


def build_kinematics(cfg: RobotConfig, **env_overrides):
    """(kinematics, observation builder) for the robot config: a sim env's MuJoCo model (``kinematics:
    sim/...``) or the arm's DH table (a ``kinematics:`` mapping, robolearn.hardware.kinematics)."""
    if cfg.kinematics_env:
        from robolearn.deploy.sim_kinematics import SimKinematics, SimTaskObs

        kin = SimKinematics(cfg.kinematics_env, **env_overrides)
        return kin, SimTaskObs(kin, cfg.object_pose_topic, cfg.cameras)
    if cfg.arm_kinematics is not None:
        from robolearn.hardware.kinematics import SerialArm

        return SerialArm.from_robot_config(cfg), JointStateObs()
    return None, JointStateObs()


def build_mapper(cfg: RobotConfig, kinematics):
    return make_mapper(cfg.action_mode, lower=cfg.joint_lower, upper=cfg.joint_upper,
                       gripper=cfg.command_gripper and bool(cfg.gripper_joint), kinematics=kinematics,
                       pos_scale=cfg.pos_scale, rot_scale=cfg.rot_scale,
                       workspace_low=cfg.workspace_low, workspace_high=cfg.workspace_high)


class NodeCore:
    """``policy`` runs in a worker thread; with ``inference_spec`` (see inference_proc) it runs in a
    child process instead and ``policy`` must be None."""

    def __init__(self, cfg: RobotConfig, policy, publish_msg: Callable[[Any], None], msgs,
                 loop_overrides: dict | None = None, kinematics=None, obs_builder=None,
                 inference_spec: dict | None = None):
        self.cfg = cfg
        self.msgs = msgs
        self._publish_msg = publish_msg
        lcfg = loop_config(cfg, **(loop_overrides or {}))
        if inference_spec is not None:
            from robolearn.deploy.inference_proc import ProcessInference

            self.loop = ControllerLoop(None, None, None, self._publish, cfg.joint_lower, cfg.joint_upper, lcfg,
                                       inference=ProcessInference(inference_spec, cfg))
        else:
            if obs_builder is None:
                kinematics, obs_builder = build_kinematics(cfg)
            self.loop = ControllerLoop(policy, build_mapper(cfg, kinematics), obs_builder, self._publish,
                                       cfg.joint_lower, cfg.joint_upper, lcfg)
        self._extras: dict = {}
        self._images: dict = {}
        self._lock = threading.Lock()
        self.reach = self.loop.cfg.period  # JTC: reach each streamed point one period from now
        self.latency_log: dict | None = None  # bench: command stamp (sec, nanosec) -> observation stamp

    # ---- inbound ---------------------------------------------------------------------------------------
    def on_joint_state(self, msg) -> None:
        state = joint_state_to_robot_state(msg, self.cfg)
        with self._lock:
            state.extras = dict(self._extras)
        self.loop.on_state(state)

    def on_object_pose(self, msg) -> None:
        pose = pose_from_msg(msg)
        with self._lock:
            self._extras["object_pose"] = pose

    def on_image(self, camera: str, msg) -> None:
        img = compressed_image_from_msg(msg) if hasattr(msg, "format") else image_from_msg(msg)
        with self._lock:
            self._images[camera] = img
            self._extras["images"] = dict(self._images)

    def on_enable(self, msg) -> None:
        self.loop.set_enabled(bool(msg.data))

    def on_estop(self, msg) -> None:
        self.loop.set_estop(bool(msg.data))

    # ---- outbound ----------------------------------------------------------------------------------------
    @property
    def command_topic(self) -> str:
        return self.cfg.trajectory_topic if self.cfg.command_interface == "trajectory" else self.cfg.forward_topic

    def _publish(self, q: np.ndarray, gripper: float | None) -> None:
        if self.cfg.command_interface == "trajectory":
            msg = trajectory_msg(self.msgs, self.cfg, q, gripper, self.reach)
        else:
            msg = forward_msg(self.msgs, self.cfg, q, gripper)
        if self.latency_log is not None and hasattr(msg, "header"):
            self.latency_log[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = self.loop.sent_obs_stamp
        self._publish_msg(msg)

    def image_topics(self) -> dict[str, str]:
        """camera -> topic; a topic ending in /compressed carries sensor_msgs/CompressedImage."""
        return {c: self.cfg.image_topic.format(camera=c) for c in self.cfg.cameras}

    @staticmethod
    def is_compressed(topic: str) -> bool:
        return topic.endswith("/compressed")


def load_policy_object(checkpoint: str | None = None, policy_file: str | None = None, device: str = "cpu"):
    """A policy from a checkpoint folder (BC or RL run), or ``file.py:Name`` (a class / factory called with no
    arguments)."""
    if bool(checkpoint) == bool(policy_file):
        raise ValueError("give exactly one of --checkpoint DIR or --policy FILE.py:NAME")
    if checkpoint:
        from robolearn.train.checkpoint import load_policy

        from robolearn.device import resolve_device

        policy = load_policy(checkpoint, device=resolve_device(device))
        return _NoGrad(policy)
    path, _, name = policy_file.rpartition(":")
    if not path or not name:
        raise ValueError(f"--policy must look like path/to/file.py:Name, got {policy_file!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"robolearn_user_policy_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise KeyError(f"{path} has no {name!r}")
    policy = getattr(module, name)()
    for attr in ("reset", "act"):
        if not callable(getattr(policy, attr, None)):
            raise ValueError(f"{policy_file}: the policy has no {attr}() method")
    return policy


class _NoGrad:
    """Runs a torch policy's act() without autograd (and passes everything else through)."""

    def __init__(self, policy):
        self.policy = policy

    def reset(self):
        self.policy.reset()

    def act(self, obs):
        import torch

        with torch.inference_mode():
            return np.asarray(self.policy.act(obs))

    def __getattr__(self, name):
        return getattr(self.policy, name)
