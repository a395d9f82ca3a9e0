"""The robot config: what an action in [-1, 1] means on a given robot, and its limits.

Sim and real load the same dataclass, so a policy sees the same action semantics on both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robolearn.config_io import load_yaml


@dataclass
class RobotConfig:
    name: str = "sim_arm"
    joint_names: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
    # Defaults describe robolearn's simulated arm (robolearn/sim/arm.py).
    joint_lower: tuple[float, ...] = (-2.9, -1.8, -2.9, 0.0, -2.9, -0.5, -2.9)
    joint_upper: tuple[float, ...] = (2.9, 1.8, 2.9, 2.9, 2.9, 3.0, 2.9)
    gripper_joint: str = "finger"
    control_hz: float = 20.0
    # One action unit (1.0) moves the end effector this far per env step.
    pos_scale: float = 0.02  # metres
    rot_scale: float = 0.1  # radians
    # The commanded end-effector target is clipped to this box (metres, robot base frame).
    workspace_low: tuple[float, float, float] = (0.3, -0.3, 0.025)
    workspace_high: tuple[float, float, float] = (0.7, 0.3, 0.4)
    # Out-of-range actions: clip (True) or raise (False). NaN and wrong shapes always raise.
    clip_actions: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.joint_names = tuple(self.joint_names)
        n = len(self.joint_names)
        if len(self.joint_lower) != n or len(self.joint_upper) != n:
            raise ValueError(f"robot {self.name!r}: joint limits must have {n} entries (one per joint)")
        if any(lo >= hi for lo, hi in zip(self.joint_lower, self.joint_upper)):
            raise ValueError(f"robot {self.name!r}: every joint_lower must be < joint_upper")
        if self.control_hz <= 0:
            raise ValueError(f"robot {self.name!r}: control_hz must be positive, got {self.control_hz}")
        if self.pos_scale <= 0 or self.rot_scale <= 0:
            raise ValueError(f"robot {self.name!r}: pos_scale and rot_scale must be positive")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError(f"robot {self.name!r}: workspace_low/high must be xyz triples")
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"robot {self.name!r}: workspace_low must be < workspace_high on every axis")
        self.workspace_low = tuple(float(v) for v in self.workspace_low)
        self.workspace_high = tuple(float(v) for v in self.workspace_high)

    def clip_to_workspace(self, pos: np.ndarray) -> np.ndarray:
        return np.clip(pos, self.workspace_low, self.workspace_high)

    @classmethod
    def load(cls, path: str | Path) -> "RobotConfig":
        return load_yaml(cls, path)
